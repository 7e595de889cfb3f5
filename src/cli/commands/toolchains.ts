// `aegis-agent toolchains [--json]`: what this machine can build, and what is broken and why.
import { discoverToolchains } from '../../toolchains/index.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

export const toolchainsCommand: Command = {
  name: 'toolchains',
  summary: 'List the ESP-IDF installs under TOOLCHAINS_DIR; exit 1 if none is usable.',
  usage: `Usage: aegis-agent toolchains [--json]

Scans every directory of TOOLCHAINS_DIR (":"-separated) for ESP-IDF installs (a subdirectory
with tools/idf.py and tools/cmake/version.cmake), reads each one's version and targets, and
captures its export.sh environment (cached in CACHE_DIR). Broken installs are listed with why.

  --json    One JSON object: {"toolchains":[{id, idf_version, targets, preview_targets, path, status, reason?}]}

Exit code 1 when no install is usable.`,
  options: { json: { type: 'boolean' } },
  async run(ctx: CommandContext): Promise<number> {
    const config = ctx.config();
    const scan = await discoverToolchains({
      roots: config.toolchainsDir,
      cacheDir: config.cacheDir,
      idfToolsPath: config.idfToolsPath,
    });
    const rows = [
      ...scan.toolchains.map((tc) => ({
        id: tc.id,
        idf_version: tc.idfVersion,
        targets: tc.targets,
        preview_targets: tc.previewTargets,
        preview_offered: config.toolchainsPreview,
        path: tc.path,
        status: 'ok' as const,
      })),
      ...scan.broken.map((b) => ({
        id: b.id,
        path: b.path,
        status: 'broken' as const,
        reason: b.reason,
      })),
    ];
    if (ctx.values['json']) {
      ctx.out(JSON.stringify({ toolchains: rows }, null, 2));
    } else if (rows.length === 0) {
      ctx.err(
        `No ESP-IDF install found under ${config.toolchainsDir.join(':')}. Provision one with scripts/provision-toolchain.sh.`,
      );
    } else {
      for (const r of rows) {
        if (r.status === 'ok') {
          const preview = r.preview_targets.length
            ? ` (preview${r.preview_offered ? '' : ', not offered'}: ${r.preview_targets.join(' ')})`
            : '';
          ctx.out(
            `ok      ${r.id}  v${r.idf_version}  ${r.path}\n        targets: ${r.targets.join(' ')}${preview}`,
          );
        } else {
          ctx.out(`broken  ${r.id}  ${r.path}\n        ${r.reason}`);
        }
      }
    }
    return scan.toolchains.length > 0 ? EXIT.ok : EXIT.failure;
  },
};
