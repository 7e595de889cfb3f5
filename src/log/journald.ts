// journald integration without a native addon: when stderr is the journal stream systemd set up
// ($JOURNAL_STREAM = "<dev>:<inode>" of that stream), each line gets the sd-daemon "<N>" priority
// prefix, so `journalctl -p err` filters by the pino level.
import fs from 'node:fs';

/** True when file descriptor `fd` is the stream named by $JOURNAL_STREAM. */
export function isJournalStream(env: NodeJS.ProcessEnv, fd = 2): boolean {
  const want = env['JOURNAL_STREAM'];
  if (!want) return false;
  try {
    const st = fs.fstatSync(fd);
    return want === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** sd-daemon(3) priority for a pino numeric level. */
export function syslogPriority(pinoLevel: number): number {
  if (pinoLevel >= 60) return 2; // crit
  if (pinoLevel >= 50) return 3; // err
  if (pinoLevel >= 40) return 4; // warning
  if (pinoLevel >= 30) return 6; // info
  return 7; // debug
}

const LEVEL_FIELD = /^\{"level":(\d+)/;

/** Prefix one serialized pino line with its "<N>" priority. */
export function withPriorityPrefix(line: string): string {
  const m = LEVEL_FIELD.exec(line);
  const level = m ? Number(m[1]) : 30;
  return `<${syslogPriority(level)}>${line}`;
}
