// `npm run demo` end to end (dist is built by pretest): exit 0, firmware verified in the out
// dir, and no process of the demo left behind.
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, tmpDir } from './helpers/agent-env.js';

function processesMentioning(text: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return (
          fs.readFileSync(`/proc/${p}/environ`, 'utf8').includes(text) ||
          fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text)
        );
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('npm run demo', () => {
  it('builds blink through the whole stack, verifies the firmware, and leaves nothing running', async () => {
    const out = path.join(tmpDir('aegis-demo-test-'), 'out');
    const r = await execa('node', [path.join(REPO, 'scripts', 'demo.mjs')], {
      cwd: REPO,
      env: { DEMO_OUT: out },
      reject: false,
      timeout: 120_000,
      all: true,
    });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('every sha256 verified');
    expect(r.all).toContain('write_flash');
    expect(r.all).toMatch(/agent drained \(exit 0\)/);
    for (const f of [
      'blink.bin',
      'bootloader/bootloader.bin',
      'partition_table/partition-table.bin',
      'merged.bin',
    ]) {
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(processesMentioning(out)).toEqual([]);
  }, 150_000);
});
