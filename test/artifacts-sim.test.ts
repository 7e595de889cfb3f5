// Artifacts of a real (simulated) ESP-IDF build: examples/blink built with toolchains/esp-idf-sim.
// Skipped until both exist in the tree.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { esptoolCommand } from '../src/client/esptool.js';
import { collectArtifacts } from '../src/jobs/artifacts.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXPORT = path.join(ROOT, 'toolchains/esp-idf-sim/export.sh');
const BLINK = path.join(ROOT, 'examples/blink');
const ready = fs.existsSync(EXPORT) && fs.existsSync(BLINK);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!ready)('artifacts of an esp-idf-sim build', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-artifacts-sim-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('match the build dir byte for byte', async () => {
    const project = path.join(tmp, 'blink');
    const build = path.join(tmp, 'build');
    fs.cpSync(BLINK, project, { recursive: true });
    execFileSync(
      'bash',
      [
        '-c',
        '. "$1" >/dev/null && idf.py -C "$2" -B "$3" set-target esp32c3 && idf.py -C "$2" -B "$3" build',
        'build',
        EXPORT,
        project,
        build,
      ],
      { stdio: 'pipe', timeout: 120_000 },
    );
    const logFile = path.join(tmp, 'build.log');
    fs.writeFileSync(logFile, 'log\r\n');
    const m = await collectArtifacts({
      buildDir: build,
      artifactsDir: path.join(tmp, 'artifacts'),
      logFile,
    });
    expect(m.chip).toBe('esp32c3');
    const args = JSON.parse(fs.readFileSync(path.join(build, 'flasher_args.json'), 'utf8')) as {
      flash_files: Record<string, string>;
    };
    const merged = fs.readFileSync(m.resolve('merged.bin'));
    for (const [offset, name] of Object.entries(args.flash_files)) {
      const data = fs.readFileSync(path.join(build, name));
      expect(m.file(name)).toEqual({
        name,
        size: data.length,
        sha256: sha(data),
        flash_offset: Number(offset),
      });
      expect(merged.subarray(Number(offset), Number(offset) + data.length).equals(data)).toBe(true);
    }
    const elf = fs.readFileSync(path.join(build, 'blink.elf'));
    expect(m.file('blink.elf').sha256).toBe(sha(elf));
    expect(esptoolCommand(m.toBody())).toContain('--chip esp32c3');
  });
});
