// Progress on stderr: a bar redrawn in place on a terminal, a line every 25 % otherwise, so
// stdout stays the build's own log.
export interface Progress {
  update(label: string, done: number, total: number): void;
  done(line: string): void;
}

const WIDTH = 30;

function human(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY;
  const lastQuarter = new Map<string, number>();
  let drawn = false;
  return {
    update(label, done, total) {
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      if (tty) {
        const fill = Math.round(frac * WIDTH);
        stream.write(
          `\r\x1b[K${label} [${'#'.repeat(fill)}${'.'.repeat(WIDTH - fill)}] ${human(done)}/${human(total)}`,
        );
        drawn = true;
        return;
      }
      const q = Math.floor(frac * 4);
      if (lastQuarter.get(label) === q) return;
      lastQuarter.set(label, q);
      stream.write(`${label}: ${Math.round(frac * 100)}% (${human(done)} of ${human(total)})\n`);
    },
    done(line) {
      if (tty && drawn) stream.write('\r\x1b[K');
      drawn = false;
      stream.write(`${line}\n`);
    },
  };
}

export { human as humanBytes };
