// The project as the agent receives it: a tar.gz of the directory without build/ (and without
// VCS metadata), made in memory (ESP-IDF projects are small; the agent caps the size anyway).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import * as tar from 'tar';
import { AegisError } from '../errors.js';

const SKIP = new Set(['build', '.git', '.svn', '.hg', 'node_modules']);

export interface PackedSource {
  bytes: Buffer;
  sha256: string;
  format: 'tar.gz';
  files: number;
}

export async function packProject(dir: string): Promise<PackedSource> {
  const root = path.resolve(dir);
  if (!fs.existsSync(path.join(root, 'CMakeLists.txt'))) {
    throw new AegisError(
      'AEGIS_ERR_SOURCE_UNSAFE',
      `${root} is not an ESP-IDF project: it has no CMakeLists.txt.`,
    );
  }
  const entries = fs.readdirSync(root).filter((n) => !SKIP.has(n));
  let files = 0;
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    out.on('end', resolve);
    out.on('error', reject);
  });
  tar
    .c(
      {
        gzip: true,
        cwd: root,
        portable: true,
        // Links are refused by the agent: leave them out rather than fail the whole upload.
        filter: (_p, st) => {
          const stat = st as fs.Stats;
          if (stat.isSymbolicLink()) return false;
          if (stat.isFile()) files++;
          return true;
        },
      },
      entries,
    )
    .pipe(out);
  await done;
  const bytes = Buffer.concat(chunks);
  return {
    bytes,
    sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
    format: 'tar.gz',
    files,
  };
}
