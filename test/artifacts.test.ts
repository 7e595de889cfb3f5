import { esptoolCommand } from '../src/client/esptool.js';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAegisError, type ErrorCode } from '../src/errors.js';
import {
  collectArtifacts,
  readManifest,
  writeManifest,
  type ArtifactManifest,
} from '../src/jobs/artifacts.js';
import { parseFlasherArgs } from '../src/jobs/flasher-args.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/flasher_args/', import.meta.url));

let tmp: string;
let buildDir: string;
let artifactsDir: string;
let logFile: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-artifacts-'));
  buildDir = path.join(tmp, 'build');
  artifactsDir = path.join(tmp, 'artifacts');
  logFile = path.join(tmp, 'build.log');
  fs.mkdirSync(buildDir);
  fs.writeFileSync(logFile, 'I (0) build: done\r\n');
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Known, distinct, non-0xFF-only bytes for each file. */
function bytesFor(name: string, size: number): Buffer {
  const b = Buffer.alloc(size);
  let h = createHash('sha256').update(name).digest();
  for (let i = 0; i < size; i += h.length) {
    h.copy(b, i);
    h = createHash('sha256').update(h).digest();
  }
  return b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `files` (name → size) into the build dir and the fixture as flasher_args.json. */
function makeBuild(fixture: string | object, files: Record<string, number>): Map<string, Buffer> {
  const json =
    typeof fixture === 'string'
      ? fs.readFileSync(path.join(FIXTURES, fixture), 'utf8')
      : JSON.stringify(fixture);
  fs.writeFileSync(path.join(buildDir, 'flasher_args.json'), json);
  const out = new Map<string, Buffer>();
  for (const [name, size] of Object.entries(files)) {
    const data = bytesFor(name, size);
    fs.mkdirSync(path.dirname(path.join(buildDir, name)), { recursive: true });
    fs.writeFileSync(path.join(buildDir, name), data);
    out.set(name, data);
  }
  return out;
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: ErrorCode, text?: string) {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isAegisError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
  if (text !== undefined) expect((err as Error).message).toContain(text);
}

const collect = () => collectArtifacts({ buildDir, artifactsDir, logFile });

/** Checks names, sizes, hashes and merged.bin's layout against the bytes written. */
function checkManifest(
  m: ArtifactManifest,
  flash: [offset: number, name: string][],
  written: Map<string, Buffer>,
) {
  const byName = new Map(m.files.map((f) => [f.name, f]));
  for (const [offset, name] of flash) {
    const data = written.get(name)!;
    expect(byName.get(name)).toEqual({
      name,
      size: data.length,
      sha256: sha(data),
      flash_offset: offset,
    });
    expect(fs.readFileSync(m.resolve(name)).equals(data)).toBe(true);
  }
  const merged = fs.readFileSync(path.join(artifactsDir, 'merged.bin'));
  expect(byName.get('merged.bin')).toEqual({
    name: 'merged.bin',
    size: merged.length,
    sha256: sha(merged),
    flash_offset: 0,
  });
  const sorted = [...flash].sort((a, b) => a[0] - b[0]);
  const [lastOffset, lastName] = sorted[sorted.length - 1]!;
  expect(merged.length).toBe(lastOffset + written.get(lastName)!.length);
  let cursor = 0;
  for (const [offset, name] of sorted) {
    const data = written.get(name)!;
    const gap = merged.subarray(cursor, offset);
    expect(gap.every((b) => b === 0xff)).toBe(true);
    expect(merged.subarray(offset, offset + data.length).equals(data)).toBe(true);
    cursor = offset + data.length;
  }
  const log = fs.readFileSync(logFile);
  expect(byName.get('build.log')).toEqual({
    name: 'build.log',
    size: log.length,
    sha256: sha(log),
  });
  expect(m.resolve('build.log')).toBe(logFile);
}

const C3_LAYOUT: [number, string][] = [
  [0x0, 'bootloader/bootloader.bin'],
  [0x8000, 'partition_table/partition-table.bin'],
  [0x10000, 'blink.bin'],
];
const C3_FILES = {
  'bootloader/bootloader.bin': 20_721,
  'partition_table/partition-table.bin': 3072,
  'blink.bin': 150_001,
};

describe('artifacts', () => {
  it.each([
    ['v4.4-esp32c3.json', 'esp32c3', { flash_mode: 'dio', flash_size: '2MB', flash_freq: '80m' }],
    [
      'v6-esp32c3-hyphens.json',
      'esp32c3',
      { flash_mode: 'dio', flash_size: '2MB', flash_freq: '80m' },
    ],
    [
      'no-flash-settings-esp32s3.json',
      'esp32s3',
      { flash_mode: 'qio', flash_size: '8MB', flash_freq: '80m' },
    ],
  ])('reads %s', async (fixture, chip, settings) => {
    const written = makeBuild(fixture, { ...C3_FILES, 'blink.elf': 4321 });
    const m = await collect();
    expect(m.chip).toBe(chip);
    expect(m.flashSettings).toEqual(settings);
    checkManifest(m, C3_LAYOUT, written);
    // No project_description.json: the .elf is found from the app bin's name.
    expect(m.file('blink.elf')).toEqual({
      name: 'blink.elf',
      size: 4321,
      sha256: sha(written.get('blink.elf')!),
    });
    expect(m.files.map((f) => f.name)).toEqual([
      'bootloader/bootloader.bin',
      'partition_table/partition-table.bin',
      'blink.bin',
      'blink.elf',
      'merged.bin',
      'build.log',
    ]);
  });

  it('reads an esp32 build (bootloader at 0x1000, otadata) with project_description.json', async () => {
    const written = makeBuild('v5-esp32-ota.json', {
      'bootloader/bootloader.bin': 26_000,
      'partition_table/partition-table.bin': 3072,
      'ota_data_initial.bin': 8192,
      'blink.bin': 99_999,
      'elf/blink-app.elf': 777,
    });
    fs.writeFileSync(
      path.join(buildDir, 'project_description.json'),
      JSON.stringify({ project_name: 'blink', app_elf: 'elf/blink-app.elf', app_bin: 'blink.bin' }),
    );
    const m = await collect();
    expect(m.chip).toBe('esp32');
    expect(m.flashSettings).toEqual({ flash_mode: 'dio', flash_size: '4MB', flash_freq: '40m' });
    checkManifest(
      m,
      [
        [0x1000, 'bootloader/bootloader.bin'],
        [0x8000, 'partition_table/partition-table.bin'],
        [0xd000, 'ota_data_initial.bin'],
        [0x10000, 'blink.bin'],
      ],
      written,
    );
    expect(m.file('elf/blink-app.elf').size).toBe(777);
    expect(esptoolCommand(m.toBody(), '/dev/ttyUSB0')).toBe(
      'python -m esptool --chip esp32 -p /dev/ttyUSB0 -b 460800 --before default_reset --after hard_reset ' +
        'write_flash --flash_mode dio --flash_size 4MB --flash_freq 40m ' +
        '0x1000 bootloader/bootloader.bin 0x8000 partition_table/partition-table.bin ' +
        '0xd000 ota_data_initial.bin 0x10000 blink.bin',
    );
  });

  it('skips the .elf when there is none; gives the wire list and the manifest body', async () => {
    makeBuild('v4.4-esp32c3.json', C3_FILES);
    const m = await collect();
    expect(m.files.some((f) => f.name.endsWith('.elf'))).toBe(false);
    expect(m.toWire()).toEqual(m.files);
    const body = m.toBody();
    expect(Object.keys(body)).toEqual(['chip', 'flash_settings', 'files']);
    expect(JSON.stringify(body)).not.toContain(tmp); // paths never leave the agent
    expect(esptoolCommand(body)).toBe(
      'python -m esptool --chip esp32c3 -b 460800 --before default_reset --after hard_reset ' +
        'write_flash --flash_mode dio --flash_size 2MB --flash_freq 80m ' +
        '0x0 bootloader/bootloader.bin 0x8000 partition_table/partition-table.bin 0x10000 blink.bin',
    );
  });

  it('resolves only names in the manifest', async () => {
    makeBuild('v6-esp32c3-hyphens.json', C3_FILES);
    const m = await collect();
    expect(m.resolve('blink.bin')).toBe(path.join(fs.realpathSync(buildDir), 'blink.bin'));
    for (const name of [
      '../etc/passwd',
      'blink.bin/../x',
      '/etc/passwd',
      './blink.bin',
      'bootloader',
      'flasher_args.json',
      '__proto__',
      '',
    ]) {
      await expectCode(() => m.resolve(name), 'AEGIS_ERR_ARTIFACT_NOT_FOUND');
      await expectCode(() => m.file(name), 'AEGIS_ERR_ARTIFACT_NOT_FOUND');
    }
  });

  it.each([
    ['../x.bin', 'leaves the build dir'],
    ['bootloader/../../x.bin', 'leaves the build dir'],
    ['/etc/passwd', 'not a path relative'],
  ])('refuses a flash file path %s', async (bad, text) => {
    fs.writeFileSync(path.join(tmp, 'x.bin'), 'outside');
    makeBuild(
      {
        flash_files: { '0x0': bad, '0x10000': 'blink.bin' },
        extra_esptool_args: { chip: 'esp32c3' },
      },
      { 'blink.bin': 100 },
    );
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', text);
  });

  it('refuses a flash file that is a symlink out of the build dir', async () => {
    makeBuild('v4.4-esp32c3.json', {
      'partition_table/partition-table.bin': 3072,
      'blink.bin': 100,
    });
    fs.mkdirSync(path.join(buildDir, 'bootloader'));
    fs.symlinkSync('/etc/passwd', path.join(buildDir, 'bootloader/bootloader.bin'));
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', 'resolves outside the build dir');
    // A directory symlink leading out is caught the same way.
    fs.rmSync(path.join(buildDir, 'bootloader'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'elsewhere'));
    fs.writeFileSync(path.join(tmp, 'elsewhere/bootloader.bin'), 'x');
    fs.symlinkSync(path.join(tmp, 'elsewhere'), path.join(buildDir, 'bootloader'));
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', 'resolves outside the build dir');
  });

  it('refuses overlapping flash files, naming both', async () => {
    makeBuild(
      {
        flash_files: { '0x0': 'bootloader/bootloader.bin', '0x4000': 'partition_table/pt.bin' },
        extra_esptool_args: { chip: 'esp32c3' },
      },
      { 'bootloader/bootloader.bin': 0x4001, 'partition_table/pt.bin': 3072 },
    );
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', 'bootloader/bootloader.bin');
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', 'partition_table/pt.bin');
    expect(fs.existsSync(path.join(artifactsDir, 'merged.bin'))).toBe(false);
  });

  it('refuses a missing flash file and a missing flasher_args.json', async () => {
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', 'flasher_args.json');
    makeBuild('v4.4-esp32c3.json', { 'blink.bin': 10 });
    await expectCode(collect(), 'AEGIS_ERR_BUILD_FAILED', 'bootloader/bootloader.bin');
  });

  it.each([
    ['not json', '{"flash_files":', 'not JSON'],
    ['no flash_files', '{"extra_esptool_args":{"chip":"esp32"}}', 'flash_files'],
    [
      'empty flash_files',
      '{"flash_files":{},"extra_esptool_args":{"chip":"esp32"}}',
      'flash_files',
    ],
    ['a bad offset', '{"flash_files":{"zz":"a.bin"},"extra_esptool_args":{"chip":"esp32"}}', 'zz'],
    ['no chip', '{"flash_files":{"0x0":"a.bin"}}', 'extra_esptool_args'],
    ['a bad chip', '{"flash_files":{"0x0":"a.bin"},"extra_esptool_args":{"chip":"x; rm"}}', 'chip'],
    [
      'a number path',
      '{"flash_files":{"0x0":5},"extra_esptool_args":{"chip":"esp32"}}',
      'flash_files',
    ],
    [
      'the same offset twice',
      '{"flash_files":{"0x8000":"a.bin","32768":"b.bin"},"extra_esptool_args":{"chip":"esp32"}}',
      '0x8000',
    ],
  ])('refuses flasher_args.json with %s', async (_what, text, detail) => {
    await expectCode(
      () => parseFlasherArgs(text, '/b/flasher_args.json'),
      'AEGIS_ERR_BUILD_FAILED',
      'flasher_args.json /b/flasher_args.json: ',
    );
    await expectCode(() => parseFlasherArgs(text), 'AEGIS_ERR_BUILD_FAILED', detail);
  });

  it('falls back to "keep" for flash settings it cannot find', () => {
    const args = parseFlasherArgs(
      '{"write_flash_args":["--flash_size","detect"],"flash_files":{"0x0":"a.bin"},"extra_esptool_args":{"chip":"esp32"}}',
    );
    expect(args.flashSettings).toEqual({
      flash_mode: 'keep',
      flash_size: 'detect',
      flash_freq: 'keep',
    });
  });

  it('writes and reads the manifest, re-validating it', async () => {
    makeBuild('v4.4-esp32c3.json', { ...C3_FILES, 'blink.elf': 10 });
    const m = await collect();
    const file = path.join(tmp, 'manifest.json');
    await writeManifest(m, file);
    const back = await readManifest(file);
    expect(back.toBody()).toEqual(m.toBody());
    for (const f of m.files) expect(back.resolve(f.name)).toBe(m.resolve(f.name));
    await expectCode(() => back.resolve('../x'), 'AEGIS_ERR_ARTIFACT_NOT_FOUND');

    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    json.paths[0] = 'relative/path.bin';
    fs.writeFileSync(file, JSON.stringify(json));
    await expectCode(readManifest(file), 'AEGIS_ERR_INTERNAL', 'malformed');
    fs.writeFileSync(file, '{');
    await expectCode(readManifest(file), 'AEGIS_ERR_INTERNAL');
  });

  it('quotes what a shell would misread in the esptool line', () => {
    expect(
      esptoolCommand({
        chip: 'esp32c3',
        flash_settings: { flash_mode: 'dio', flash_size: '2MB', flash_freq: '80m' },
        files: [
          { name: "my app's.bin", flash_offset: 0x10000 },
          { name: 'bootloader/bootloader.bin', flash_offset: 0 },
          { name: 'merged.bin', flash_offset: 0 },
          { name: 'build.log' },
        ],
      }),
    ).toBe(
      'python -m esptool --chip esp32c3 -b 460800 --before default_reset --after hard_reset ' +
        "write_flash --flash_mode dio --flash_size 2MB --flash_freq 80m 0x0 bootloader/bootloader.bin 0x10000 'my app'\\''s.bin'",
    );
  });
});
