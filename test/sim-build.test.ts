// Example and fixture builds with the ESP-IDF stand-in: the image files must be valid ESP
// images/partition tables, the description files must carry the right offsets and target, and
// the test knobs and fixtures must behave as later tests rely on.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseEspImage,
  parsePartitionTable,
  PARTITION_TABLE_LEN,
  validateEspImage,
} from './helpers/esp-image.js';
import {
  EXAMPLES,
  FIXTURES,
  SIM_V51,
  SIM_V53,
  copyProject,
  makeTempDir,
  runIdf,
  simEnv,
} from './helpers/sim.js';

let tmp: string;
let env: Record<string, string>;

beforeAll(async () => {
  tmp = await makeTempDir('idf-sim-build-');
  await fs.mkdir(path.join(tmp, 'home'));
  env = simEnv(path.join(tmp, 'home'));
});

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

async function setTargetAndBuild(install: string, example: string, target: string, tag: string) {
  const proj = await copyProject(path.join(EXAMPLES, example), tmp, `${example}-${tag}`);
  const build = path.join(tmp, `${example}-${tag}-build`);
  const set = await runIdf(install, ['-C', proj, '-B', build, 'set-target', target], { env });
  expect(set.exitCode, set.all).toBe(0);
  expect(set.stdout).toContain(`Set Target to: ${target}, new sdkconfig will be created.`);
  const r = await runIdf(install, ['-C', proj, '-B', build, 'build'], { env });
  expect(r.exitCode, r.all).toBe(0);
  return { proj, build, out: r.stdout };
}

const BOOTLOADER_OFFSET: Record<string, string> = { esp32: '0x1000', esp32c3: '0x0' };

async function checkBuildDir(build: string, project: string, target: string, proj: string) {
  const bin = await fs.readFile(path.join(build, `${project}.bin`));
  expect(validateEspImage(bin, target)).toEqual([]);
  const img = parseEspImage(bin);
  expect(img.segments.length).toBeGreaterThanOrEqual(2);
  expect(bin.length).toBeGreaterThan(100 * 1024);
  const boot = await fs.readFile(path.join(build, 'bootloader', 'bootloader.bin'));
  expect(validateEspImage(boot, target)).toEqual([]);
  expect(boot.length).toBeLessThan(0x8000);

  const table = await fs.readFile(path.join(build, 'partition_table', 'partition-table.bin'));
  expect(table.length).toBe(PARTITION_TABLE_LEN);
  const pt = parsePartitionTable(table);
  expect(pt.hasMd5 && pt.md5Ok && pt.fillOk).toBe(true);
  expect(pt.entries).toEqual([
    { name: 'nvs', type: 1, subtype: 2, offset: 0x9000, size: 0x6000, flags: 0 },
    { name: 'phy_init', type: 1, subtype: 1, offset: 0xf000, size: 0x1000, flags: 0 },
    { name: 'factory', type: 0, subtype: 0, offset: 0x10000, size: 0x100000, flags: 0 },
  ]);

  const boff = BOOTLOADER_OFFSET[target]!;
  const flashArgs = await fs.readFile(path.join(build, 'flash_args'), 'utf8');
  const freq = target === 'esp32' ? '40m' : '80m';
  expect(flashArgs.trim().split('\n')).toEqual([
    `--flash_mode dio --flash_freq ${freq} --flash_size 2MB`,
    `${boff} bootloader/bootloader.bin`,
    '0x8000 partition_table/partition-table.bin',
    `0x10000 ${project}.bin`,
  ]);
  const flasher = JSON.parse(await fs.readFile(path.join(build, 'flasher_args.json'), 'utf8'));
  expect(flasher).toEqual({
    write_flash_args: ['--flash_mode', 'dio', '--flash_size', '2MB', '--flash_freq', freq],
    flash_settings: { flash_mode: 'dio', flash_size: '2MB', flash_freq: freq },
    flash_files: {
      [boff]: 'bootloader/bootloader.bin',
      '0x8000': 'partition_table/partition-table.bin',
      '0x10000': `${project}.bin`,
    },
    bootloader: { offset: boff, file: 'bootloader/bootloader.bin', encrypted: 'false' },
    'partition-table': {
      offset: '0x8000',
      file: 'partition_table/partition-table.bin',
      encrypted: 'false',
    },
    app: { offset: '0x10000', file: `${project}.bin`, encrypted: 'false' },
    extra_esptool_args: { after: 'hard_reset', before: 'default_reset', stub: true, chip: target },
  });
  const desc = JSON.parse(await fs.readFile(path.join(build, 'project_description.json'), 'utf8'));
  expect(desc).toMatchObject({
    project_name: project,
    project_path: proj,
    build_dir: build,
    config_file: path.join(proj, 'sdkconfig'),
    app_elf: `${project}.elf`,
    app_bin: `${project}.bin`,
    bootloader_elf: path.join(build, 'bootloader', 'bootloader.elf'),
    target,
  });
  expect(desc.build_components).toContain('main');
  await fs.access(path.join(build, `${project}.elf`));
  const logs = await fs.readdir(path.join(build, 'log'));
  expect(logs.some((f) => /^idf_py_stdout_output_\d+$/.test(f))).toBe(true);
  expect(logs.some((f) => /^idf_py_stderr_output_\d+$/.test(f))).toBe(true);
}

describe('examples', () => {
  it('blink builds for esp32c3 (v5.3) into valid images, and a code change changes the image', async () => {
    const { proj, build, out } = await setTargetAndBuild(SIM_V53, 'blink', 'esp32c3', 'c3');
    await checkBuildDir(build, 'blink', 'esp32c3', proj);
    expect(out).toContain('Executing action: all (aliases: build)');
    expect(out).toContain(`Running ninja in directory ${build}`);
    expect(out).toContain('Executing "ninja all"...');
    expect(out).toMatch(
      /^\[\d+\/\d+\] Building C object esp-idf\/main\/CMakeFiles\/__idf_main\.dir\/blink_example_main\.c\.obj$/m,
    );
    expect(out).toContain('Project build complete. To flash, run:\n idf.py flash\nor\n');
    expect(out).toContain(
      ' python -m esptool --chip esp32c3 -b 460800 --before default_reset --after hard_reset write_flash ' +
        '--flash_mode dio --flash_size 2MB --flash_freq 80m 0x0 ',
    );
    const sdkconfig = await fs.readFile(path.join(proj, 'sdkconfig'), 'utf8');
    expect(sdkconfig).toContain('CONFIG_IDF_TARGET="esp32c3"');
    expect(sdkconfig).toMatch(/^CONFIG_BLINK_GPIO=8$/m);

    const before = await fs.readFile(path.join(build, 'blink.bin'));
    const src = path.join(proj, 'main', 'blink_example_main.c');
    await fs.writeFile(
      src,
      (await fs.readFile(src, 'utf8')).replace('"LED %s"', '"The LED is %s"'),
    );
    const again = await runIdf(SIM_V53, ['-C', proj, '-B', build, 'build'], { env });
    expect(again.exitCode, again.all).toBe(0);
    const after = await fs.readFile(path.join(build, 'blink.bin'));
    expect(validateEspImage(after, 'esp32c3')).toEqual([]);
    expect(after.equals(before)).toBe(false);
  });

  it('blink builds for esp32 with the bootloader at 0x1000', async () => {
    const { proj, build, out } = await setTargetAndBuild(SIM_V53, 'blink', 'esp32', 'esp32');
    await checkBuildDir(build, 'blink', 'esp32', proj);
    expect(out).toMatch(/--flash_freq 40m 0x1000 \S*bootloader\/bootloader\.bin 0x8000 /);
  });

  it('hello_world builds for esp32c3 with the v5.1 install', async () => {
    const { proj, build } = await setTargetAndBuild(SIM_V51, 'hello_world', 'esp32c3', 'v51');
    await checkBuildDir(build, 'hello_world', 'esp32c3', proj);
    const desc = JSON.parse(
      await fs.readFile(path.join(build, 'project_description.json'), 'utf8'),
    );
    expect(desc.idf_path).toBe(SIM_V51);
    expect(desc.git_revision).toBe('v5.1.4');
  });
});

describe('test knobs', () => {
  it('IDF_SIM_EXTRA_SECONDS and IDF_SIM_EXTRA_OUTPUT_MB extend a build', async () => {
    const { proj, build } = await setTargetAndBuild(SIM_V53, 'blink', 'esp32c3', 'knobs');
    const slow = await runIdf(SIM_V53, ['-C', proj, '-B', build, 'build'], {
      env: { ...env, IDF_SIM_EXTRA_SECONDS: '1' },
    });
    expect(slow.exitCode, slow.all).toBe(0);
    expect(
      slow.stdout.match(/^idf_sim: extra build work [\d.]+\/1 s$/gm)?.length,
    ).toBeGreaterThanOrEqual(2);
    const big = await runIdf(SIM_V53, ['-C', proj, '-B', build, 'build'], {
      env: { ...env, IDF_SIM_EXTRA_OUTPUT_MB: '2' },
    });
    expect(big.exitCode).toBe(0);
    expect(big.stdout.length).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect(big.stdout).toMatch(
      /blink_example_main\.c:\d+:5: warning: unused variable 'sim_extra_\d+' \[-Wunused-variable\]\n/,
    );
    expect(big.stdout).toContain('Project build complete.');
  });
});

describe('fixtures', () => {
  it('env_dump prints the environment of a process the build started', async () => {
    const proj = await copyProject(path.join(FIXTURES, 'env_dump'), tmp);
    const r = await runIdf(SIM_V53, ['-C', proj, '-B', path.join(tmp, 'env_dump-build'), 'build'], {
      env: { ...env, SIM_TEST_MARKER: 'marker-value-42' },
    });
    expect(r.exitCode, r.all).toBe(0);
    const dump = /=== ENV BEGIN ===\n([\s\S]*?)=== ENV END ===/.exec(r.stdout);
    expect(dump, r.stdout).not.toBeNull();
    const [envPart, procPart] = dump![1]!.split('=== PROC ENVIRON ===\n');
    expect(envPart).toMatch(/^SIM_TEST_MARKER=marker-value-42$/m);
    expect(procPart).toMatch(/^SIM_TEST_MARKER=marker-value-42$/m);
    expect(procPart).toMatch(/^IDF_PATH=/m);
  });

  it('grandchildren starts background processes that die with the build process group', async () => {
    const proj = await copyProject(path.join(FIXTURES, 'grandchildren'), tmp);
    const child = spawn(
      'bash',
      [
        '--noprofile',
        '--norc',
        '-c',
        '. "$0/export.sh" >/dev/null && exec idf.py -C "$1" -B "$1/build" build',
        SIM_V53,
        proj,
      ],
      { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const pids = await new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no GRANDCHILD_PIDS line: ${out.slice(-500)}`)),
        40_000,
      );
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /GRANDCHILD_PIDS (\d+) (\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve([Number(m[1]), Number(m[2])]);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`build exited (${code}) before GRANDCHILD_PIDS: ${out.slice(-500)}`));
      });
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    for (const pid of pids) expect(() => process.kill(pid, 0)).not.toThrow();
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    // The sleeps were in the build's process group, so the group kill took them too (dead, or a
    // zombie until whoever inherited them reaps it). Poll the process table with a deadline.
    const dead = async (pid: number) => {
      const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      return stat === '' || /^\d+ \([^)]*\) [ZX]/.test(stat);
    };
    const gone = async (pid: number) => {
      const deadline = Date.now() + 5000;
      while (!(await dead(pid))) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 20));
      }
      return true;
    };
    for (const pid of pids) expect(await gone(pid)).toBe(true);
  });
});
