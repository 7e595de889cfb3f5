// Packs a project directory (without build/) the way a client does, for feeding the intake.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';

export interface PackedProject {
  bytes: Buffer;
  sha256: string;
  format: 'tar' | 'tar.gz';
}

export async function packProject(dir: string, gzip = true): Promise<PackedProject> {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-pack-')), 'src.tar');
  const entries = fs.readdirSync(dir).filter((n) => n !== 'build' && n !== 'sdkconfig');
  await tar.c({ gzip, file: out, cwd: dir, portable: true }, entries);
  const bytes = fs.readFileSync(out);
  return {
    bytes,
    sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
    format: gzip ? 'tar.gz' : 'tar',
  };
}
