// Job records on disk (STATE_DIR/jobs/<job_id>.json), written atomically (tmp + fsync + rename)
// so a crash leaves either the old record or the new one, never half of one.
import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { Id, JobState, WireArtifact } from '../control/messages.js';
import type { JobRecord } from './job.js';

const RecordSchema = z.object({
  jobId: Id,
  target: z.string(),
  idf: z.string().optional(),
  toolchainId: z.string(),
  timeoutS: z.number().int().positive().optional(),
  state: JobState,
  createdAt: z.number(),
  updatedAt: z.number(),
  startedAt: z.number().optional(),
  finishedAt: z.number().optional(),
  exitCode: z.number().int().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  logBytes: z.number().int().nonnegative(),
  artifacts: z.array(WireArtifact).optional(),
  buildPgid: z.number().int().positive().optional(),
  buildBootId: z.string().optional(),
});

export class JobStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'jobs');
  }

  private file(jobId: string): string {
    Id.parse(jobId); // never join an unchecked id into a path
    return path.join(this.dir, `${jobId}.json`);
  }

  async save(record: JobRecord): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(record.jobId);
    const tmp = `${file}.tmp`;
    const handle = await fs.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  }

  async remove(jobId: string): Promise<void> {
    await fs.rm(this.file(jobId), { force: true });
  }

  /** Every readable record; unreadable ones are returned as problems, not thrown. */
  async loadAll(): Promise<{ records: JobRecord[]; problems: { file: string; reason: string }[] }> {
    const records: JobRecord[] = [];
    const problems: { file: string; reason: string }[] = [];
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return { records, problems };
    }
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      const file = path.join(this.dir, name);
      try {
        const parsed = RecordSchema.safeParse(JSON.parse(await fs.readFile(file, 'utf8')));
        if (parsed.success) records.push(stripUndefined(parsed.data) as JobRecord);
        else problems.push({ file, reason: parsed.error.issues[0]?.message ?? 'invalid record' });
      } catch (err) {
        problems.push({ file, reason: (err as Error).message });
      }
    }
    return { records, problems };
  }
}

/** zod's optional fields come back as `undefined`; records keep them absent. */
function stripUndefined(value: object): unknown {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}
