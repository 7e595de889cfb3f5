// The grant replay cache (PROTOCOL §2): each jti is accepted once and refused until its exp has
// passed, across restarts. Bounded by REPLAY_CACHE_MAX; at the limit new grants are refused and
// live entries are never evicted (evicting one would reopen its replay window). Persisted as one
// JSON snapshot, written to a temp file, fsynced and renamed, so a crash leaves the old or the
// new snapshot and never a torn one.
//
// File: STATE_DIR/grants/replay.json = {"version":1,"entries":[["<jti>",<exp s>],…]}
// (pairs, not an object keyed by jti, so a jti such as "__proto__" stays plain data).
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AegisError } from '../errors.js';

export const REPLAY_FILE_VERSION = 1;

const fileSchema = z.object({
  version: z.literal(REPLAY_FILE_VERSION),
  entries: z.array(z.tuple([z.string(), z.number().finite()])),
});

export type ReserveResult = 'ok' | 'replayed' | 'full';

export interface ReplayCacheOptions {
  file: string;
  max: number;
  /**
   * jose accepts a grant until exp + tolerance, so an entry must outlive its exp by as much,
   * or the same token could be replayed in that last window.
   */
  toleranceS: number;
}

export interface LoadedReplayCache {
  cache: ReplayCache;
  /** Why the file on disk could not be used (it was moved aside), when it could not. */
  lost?: string;
}

export class ReplayCache {
  readonly file: string;
  readonly max: number;
  private readonly toleranceS: number;
  /** jti → exp (s). Map keeps insertion order; nothing depends on it. */
  private readonly entries = new Map<string, number>();
  private generation = 0;
  private writtenGeneration = 0;
  private chain: Promise<void> = Promise.resolve();

  private constructor(options: ReplayCacheOptions) {
    this.file = options.file;
    this.max = options.max;
    this.toleranceS = options.toleranceS;
  }

  /**
   * Read the snapshot (missing = empty) and drop expired entries. An unreadable snapshot is
   * moved aside and reported in `lost`, so the caller can refuse grants that may predate it
   * rather than refuse to start.
   */
  static async load(options: ReplayCacheOptions, nowS: number): Promise<LoadedReplayCache> {
    const cache = new ReplayCache(options);
    await fs.promises.mkdir(path.dirname(options.file), { recursive: true });
    let text: string;
    try {
      text = await fs.promises.readFile(options.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { cache };
      throw new AegisError(
        'AEGIS_ERR_CONFIG',
        `Cannot read the grant replay cache ${options.file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); check STATE_DIR's ownership and permissions.`,
        { cause: err },
      );
    }
    let parsed: z.infer<typeof fileSchema>;
    try {
      parsed = fileSchema.parse(JSON.parse(text));
    } catch (err) {
      const aside = `${options.file}.corrupt-${Date.now()}`;
      await fs.promises.rename(options.file, aside);
      return {
        cache,
        lost: `${options.file} was unreadable (moved to ${aside}): ${(err as Error).message.split('\n')[0] ?? ''}`,
      };
    }
    for (const [jti, exp] of parsed.entries) cache.entries.set(jti, exp);
    if (cache.purge(nowS) > 0) await cache.persist();
    return { cache };
  }

  get size(): number {
    return this.entries.size;
  }

  has(jti: string, nowS: number): boolean {
    const exp = this.entries.get(jti);
    return exp !== undefined && !this.isExpired(exp, nowS);
  }

  /**
   * Record `jti` unless it is live already or the cache is full of live ids. Synchronous, so two
   * offers racing with one jti cannot both pass; call persist() before accepting the grant.
   */
  reserve(jti: string, exp: number, nowS: number): ReserveResult {
    this.purge(nowS);
    if (this.entries.has(jti)) return 'replayed';
    if (this.entries.size >= this.max) return 'full';
    this.entries.set(jti, exp);
    this.generation++;
    return 'ok';
  }

  /** Resolves once a snapshot holding every reservation made before the call is on disk. */
  persist(): Promise<void> {
    const wanted = this.generation;
    const run = this.chain.then(async () => {
      // Writes are serialized; one that already covered this generation makes this one moot.
      if (this.writtenGeneration >= wanted) return;
      const generation = this.generation;
      await this.write();
      this.writtenGeneration = generation;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private isExpired(exp: number, nowS: number): boolean {
    return exp + this.toleranceS <= nowS;
  }

  private purge(nowS: number): number {
    let removed = 0;
    for (const [jti, exp] of this.entries) {
      if (this.isExpired(exp, nowS)) {
        this.entries.delete(jti);
        removed++;
      }
    }
    if (removed > 0) this.generation++;
    return removed;
  }

  private async write(): Promise<void> {
    const body = JSON.stringify({ version: REPLAY_FILE_VERSION, entries: [...this.entries] });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const handle = await fs.promises.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tmp, this.file);
    // The rename is durable only once the directory entry is.
    const dir = await fs.promises.open(path.dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
