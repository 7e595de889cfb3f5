// Turning a build's end into the one sentence the client and the operator see: for a failed
// build, the compiler's own error line from the tail of the log when there is one.
import fs from 'node:fs/promises';

const TAIL_BYTES = 64 * 1024;
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;

/** The last compiler/ninja error line in the last 64 KiB of the log, if any. */
export async function lastErrorLine(logFile: string): Promise<string | undefined> {
  let text: string;
  try {
    const handle = await fs.open(logFile, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, TAIL_BYTES);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      text = buf.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
  const lines = text
    .replace(ANSI, '')
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const hit =
    lines.reverse().find((l) => /\b(error|fatal error):/i.test(l)) ??
    lines.find((l) => l.startsWith('FAILED:'));
  return hit?.slice(0, 300);
}
