// A pino destination that parses each line, so tests assert on fields (codes), not on text.
import type { DestinationStream } from 'pino';

export interface LogSink extends DestinationStream {
  lines: Record<string, unknown>[];
  raw: string[];
  /** Lines whose `code` field equals `code`. */
  withCode(code: string): Record<string, unknown>[];
  /** Resolves with the first line (already written or future) matching `pred`. */
  waitFor(
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
}

export function createLogSink(): LogSink {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const waiters: {
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  return {
    lines,
    raw,
    write(chunk: string) {
      for (const text of chunk.split('\n').filter((t) => t !== '')) {
        raw.push(text);
        const line = JSON.parse(text.replace(/^<\d>/, '')) as Record<string, unknown>;
        lines.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          const w = waiters[i]!;
          if (w.pred(line)) {
            waiters.splice(i, 1);
            w.resolve(line);
          }
        }
      }
    },
    withCode(code) {
      return lines.filter((l) => l['code'] === code);
    },
    waitFor(pred, timeoutMs = 10_000) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log line matched within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}
