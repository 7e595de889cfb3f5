// The ESP-IDF stand-in, driven like the agent drives a real install: export.sh + idf.py in real
// processes, a real pty for the interactive and terminal cases. Builds live in temp dirs.
import fs from 'node:fs/promises';
import path from 'node:path';
import * as pty from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EXAMPLES,
  FIXTURES,
  PtyCapture,
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
  tmp = await makeTempDir('idf-sim-test-');
  await fs.mkdir(path.join(tmp, 'home'));
  env = simEnv(path.join(tmp, 'home'));
});

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

const V53_TARGETS = [
  'esp32',
  'esp32s2',
  'esp32c3',
  'esp32s3',
  'esp32c2',
  'esp32c6',
  'esp32h2',
  'esp32p4',
];
const V51_TARGETS = ['esp32', 'esp32s2', 'esp32c3', 'esp32s3', 'esp32c2', 'esp32c6', 'esp32h2'];

describe.each([
  {
    install: SIM_V53,
    version: 'v5.3.1',
    targets: V53_TARGETS,
    preview: ['linux', 'esp32c5', 'esp32c61'],
  },
  { install: SIM_V51, version: 'v5.1.4', targets: V51_TARGETS, preview: ['linux'] },
])('idf.py of $version', ({ install, version, targets, preview }) => {
  it('reports its version', async () => {
    const r = await runIdf(install, ['--version'], { env });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(`ESP-IDF ${version}`);
  });

  it('lists the supported targets, and the preview ones with --preview', async () => {
    const plain = await runIdf(install, ['--list-targets'], { env });
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout.trim().split('\n')).toEqual(targets);
    const all = await runIdf(install, ['--preview', '--list-targets'], { env });
    expect(all.exitCode).toBe(0);
    expect(all.stdout.trim().split('\n')).toEqual([...targets, ...preview]);
  });

  it('export.sh sets the ESP-IDF variables from its own location', async () => {
    const { execa } = await import('execa');
    const r = await execa(
      'bash',
      ['--noprofile', '--norc', '-c', '. "$0/export.sh" && env', install],
      {
        env,
        extendEnv: false,
        reject: false,
      },
    );
    expect(r.exitCode).toBe(0);
    const out = String(r.stdout);
    expect(out).toContain(`Setting IDF_PATH to '${install}'`);
    expect(out).toContain(
      'Done! You can now compile ESP-IDF projects.\nGo to the project directory and run:\n\n  idf.py build',
    );
    expect(out).toMatch(new RegExp(`^IDF_PATH=${install}$`, 'm'));
    expect(out).toMatch(
      new RegExp(`^ESP_IDF_VERSION=${version.slice(1, 4).replace('.', '\\.')}$`, 'm'),
    );
    expect(out).toMatch(new RegExp(`^IDF_TOOLS_PATH=${env['HOME']}/\\.espressif$`, 'm'));
    expect(out).toMatch(/^IDF_PYTHON_ENV_PATH=\S+$/m);
    expect(out).toMatch(new RegExp(`^PATH=${install}/tools:`, 'm'));
  });
});

describe('set-target', () => {
  it('rejects a target the install does not know (esp32p4 on v5.1)', async () => {
    const proj = await copyProject(path.join(EXAMPLES, 'blink'), tmp, 'p4-on-51');
    const r = await runIdf(
      SIM_V51,
      ['-C', proj, '-B', path.join(proj, 'build'), 'set-target', 'esp32p4'],
      { env },
    );
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("'esp32p4' is not one of");
    expect(r.stderr).toMatch(/^Usage: idf\.py set-target/m);
    await expect(fs.access(path.join(proj, 'sdkconfig'))).rejects.toThrow();
  });

  it('needs --preview for a preview target (esp32c5 on v5.3)', async () => {
    const proj = await copyProject(path.join(EXAMPLES, 'blink'), tmp, 'c5-on-53');
    const build = path.join(tmp, 'c5-build');
    const r = await runIdf(SIM_V53, ['-C', proj, '-B', build, 'set-target', 'esp32c5'], { env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(
      "esp32c5 is still in preview. You have to append '--preview' option",
    );
    const ok = await runIdf(
      SIM_V53,
      ['--preview', '-C', proj, '-B', build, 'set-target', 'esp32c5'],
      { env },
    );
    expect(ok.exitCode, ok.all).toBe(0);
    expect(ok.stdout).toContain('Set Target to: esp32c5, new sdkconfig will be created.');
    expect(ok.stdout).toContain('-- Configuring done');
    const sdkconfig = await fs.readFile(path.join(proj, 'sdkconfig'), 'utf8');
    expect(sdkconfig).toContain('CONFIG_IDF_TARGET="esp32c5"');
    expect(sdkconfig).toContain('CONFIG_BLINK_GPIO=8');
    const flasher = JSON.parse(await fs.readFile(path.join(build, 'flasher_args.json'), 'utf8'));
    expect(flasher.bootloader.offset).toBe('0x2000');
  });

  it('rejects an unknown command', async () => {
    const r = await runIdf(SIM_V53, ['frobnicate'], { env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("Error: No such command 'frobnicate'.");
  });
});

describe('build failures', () => {
  it('reports the compiler error and ninja failure of the c_error fixture', async () => {
    const proj = await copyProject(path.join(FIXTURES, 'c_error'), tmp);
    const build = path.join(tmp, 'c_error-build');
    const r = await runIdf(SIM_V53, ['-C', proj, '-B', build, 'build'], { env });
    expect(r.exitCode).toBe(2);
    expect(r.all).toMatch(/main\/main\.c:9:\d+: error: .*undeclared_blink_counter/);
    const m = /ninja failed with exit code 1, output of the command is in the (\S+) and (\S+)/.exec(
      r.all,
    );
    expect(m, r.all).not.toBeNull();
    expect(m![1]).toMatch(new RegExp(`^${build}/log/idf_py_stderr_output_\\d+$`));
    expect(m![2]).toMatch(new RegExp(`^${build}/log/idf_py_stdout_output_\\d+$`));
    const logged = await fs.readFile(m![2]!, 'utf8');
    expect(logged).toContain('error:');
    expect(r.all).not.toContain('Project build complete');
  });
});

describe('menuconfig', () => {
  it('refuses to run without a terminal', async () => {
    const proj = await copyProject(path.join(EXAMPLES, 'blink'), tmp, 'menuconfig-notty');
    const r = await runIdf(SIM_V53, ['-C', proj, 'menuconfig'], { env });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/menuconfig needs an interactive terminal/);
  });

  it('edits, saves and follows terminal resizes under a pty', async () => {
    const proj = await copyProject(path.join(EXAMPLES, 'blink'), tmp, 'menuconfig-pty');
    const p = pty.spawn(
      'bash',
      [
        '--noprofile',
        '--norc',
        '-c',
        `. "${SIM_V53}/export.sh" >/dev/null; exec idf.py -C "${proj}" menuconfig`,
      ],
      {
        name: 'xterm-256color',
        cols: 100,
        rows: 30,
        cwd: tmp,
        env: { ...env, TERM: 'xterm-256color' },
      },
    );
    const cap = new PtyCapture(p);
    try {
      await cap.waitFor(/\[100x30\]/, 30_000);
      await cap.waitFor(/\(8\) Blink GPIO number/);
      let mark = cap.output.length;
      p.resize(132, 43);
      await cap.waitFor(/\[132x43\]/, 10_000, mark);
      mark = cap.output.length;
      // The cursor starts on BLINK_GPIO: Enter edits, clear "8", type 21, accept, save, quit.
      p.write('\r');
      await cap.waitFor(/\(8_\)/, 10_000, mark);
      p.write('\x7f');
      p.write('21');
      await cap.waitFor(/\(21_\)/, 10_000, mark);
      p.write('\r');
      await cap.waitFor(/\(21\) Blink GPIO number/, 10_000, mark);
      mark = cap.output.length;
      p.write('S');
      await cap.waitFor(/Configuration saved to '[^']*sdkconfig'/, 10_000, mark);
      p.write('q');
      const exit = await cap.waitExit(10_000);
      expect(exit.exitCode).toBe(0);
    } finally {
      if (cap.exit === undefined) p.kill();
    }
    const sdkconfig = await fs.readFile(path.join(proj, 'sdkconfig'), 'utf8');
    expect(sdkconfig).toMatch(/^CONFIG_BLINK_GPIO=21$/m);
    expect(sdkconfig).toMatch(/^CONFIG_BLINK_PERIOD=1000$/m);
    const header = await fs.readFile(path.join(proj, 'build', 'config', 'sdkconfig.h'), 'utf8');
    expect(header).toContain('#define CONFIG_BLINK_GPIO 21');
  });
});

describe('terminal output', () => {
  it('ninja rewrites progress lines in place under a pty, and prints plain lines without one', async () => {
    const proj = await copyProject(path.join(EXAMPLES, 'blink'), tmp, 'tty-build');
    const ttyBuild = path.join(tmp, 'tty-build-out');
    const plainBuild = path.join(tmp, 'plain-build-out');
    const setTty = await runIdf(SIM_V53, ['-C', proj, '-B', ttyBuild, 'set-target', 'esp32c3'], {
      env,
    });
    expect(setTty.exitCode, setTty.all).toBe(0);

    const p = pty.spawn(
      'bash',
      [
        '--noprofile',
        '--norc',
        '-c',
        `. "${SIM_V53}/export.sh" >/dev/null; exec idf.py -C "${proj}" -B "${ttyBuild}" build`,
      ],
      {
        name: 'xterm-256color',
        cols: 160,
        rows: 40,
        cwd: tmp,
        env: { ...env, TERM: 'xterm-256color' },
      },
    );
    const cap = new PtyCapture(p);
    const exit = await cap.waitExit(45_000);
    expect(exit.exitCode, cap.output).toBe(0);
    // Smart terminal: "\r[n/N] …\x1b[K" status lines overwritten in place.
    const ESC = String.fromCharCode(27);
    expect(cap.output).toMatch(new RegExp(`\\r\\[1/\\d+\\] [^\\n]*${ESC}\\[K`));
    expect(cap.output).toMatch(new RegExp(`${ESC}\\[K\\r\\[\\d+/\\d+\\] `));
    expect(cap.output).toContain('Project build complete. To flash, run:');

    const plain = await runIdf(SIM_V53, ['-C', proj, '-B', plainBuild, 'build'], { env });
    expect(plain.exitCode, plain.all).toBe(0);
    expect(plain.stdout).not.toContain('\r');
    expect(plain.stdout).not.toContain('\x1b');
    const lines = plain.stdout.split('\n');
    const progress = lines.filter((l) => /^\[\d+\/\d+\] /.test(l));
    expect(progress.length).toBeGreaterThan(10);
    expect(progress[0]).toMatch(/^\[\d+\/\d+\] /);
    // No progress marker in the middle of a line.
    expect(lines.filter((l) => /.\[\d+\/\d+\] (Building|Linking)/.test(l))).toEqual([]);
  });
});
