// What every figure gets: one temp dir for the run (removed at the end), random artifact files
// made once per size, and a progress line on stderr.
import fs from 'node:fs';
import path from 'node:path';
import { randomFile, tmpDir, type Row } from './lib.js';

export interface Artifact {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
}

export interface FigureOutput {
  rows: Row[];
  details: Record<string, unknown>;
}

export class BenchContext {
  readonly root = tmpDir('aegis-bench-');
  readonly #artifacts = new Map<number, Artifact>();
  #figure = '';

  set figure(id: string) {
    this.#figure = id;
  }

  /** A fresh directory under the run's temp dir. */
  dir(prefix: string): string {
    return fs.mkdtempSync(path.join(this.root, prefix));
  }

  /** A file of `bytes` random bytes (made once per size). */
  artifact(bytes: number): Artifact {
    const have = this.#artifacts.get(bytes);
    if (have) return have;
    const dir = path.join(this.root, 'artifacts');
    fs.mkdirSync(dir, { recursive: true });
    const name = `firmware-${bytes}.bin`;
    const file = path.join(dir, name);
    const a = { name, path: file, bytes, sha256: randomFile(file, bytes) };
    this.#artifacts.set(bytes, a);
    return a;
  }

  progress(msg: string): void {
    process.stderr.write(`  ${this.#figure}: ${msg}\n`);
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
