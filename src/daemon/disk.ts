// Free disk in the work dir: read with statfs, cached for a second so heartbeats and a burst of
// offers do not each pay a syscall.
import fs from 'node:fs/promises';

export interface DiskGauge {
  /** Bytes available to unprivileged writers in the work dir (fresh within 1 s). */
  free(): Promise<number>;
  /** The last value read (0 before the first read). */
  readonly last: number;
}

export function createDiskGauge(
  dir: string,
  maxAgeMs = 1000,
  now: () => number = Date.now,
): DiskGauge {
  let last = 0;
  let at = -Infinity;
  return {
    get last() {
      return last;
    },
    async free() {
      if (now() - at < maxAgeMs) return last;
      const st = await fs.statfs(dir);
      last = st.bavail * st.bsize;
      at = now();
      return last;
    },
  };
}
