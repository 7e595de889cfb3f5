// The logger factory: pino JSON lines to stderr, journald priority prefixes when stderr is the
// journal, and two layers of secret redaction (by field path, and by value on every line).
import { pino, type DestinationStream, type Logger } from 'pino';
import { isJournalStream, withPriorityPrefix } from './journald.js';

export type { Logger } from 'pino';

export const REDACTED = '[redacted]';

/** Field paths that never reach a log line, whatever their value. */
export const REDACT_PATHS = [
  'secret',
  '*.secret',
  'token',
  '*.token',
  'grant',
  '*.grant',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'agentAuthSecret',
  '*.agentAuthSecret',
  'mcpAuthSecret',
  '*.mcpAuthSecret',
  'AGENT_AUTH_SECRET',
  '*.AGENT_AUTH_SECRET',
  'MCP_AUTH_SECRET',
  '*.MCP_AUTH_SECRET',
  'credential',
  '*.credential',
];

export interface LoggerOptions {
  level?: string;
  /** Secret values to scrub from every line, wherever they appear. */
  secrets?: readonly string[];
  /** Where lines go; default stderr (fd 2), synchronously so nothing is lost on a crash. */
  destination?: DestinationStream;
  /** Force or forbid journald prefixes; default: detect via $JOURNAL_STREAM. */
  journald?: boolean;
  env?: NodeJS.ProcessEnv;
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const journald =
    options.journald ?? (options.destination ? false : isJournalStream(options.env ?? process.env));
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 4);
  const scrub = (line: string): string => {
    let out = line;
    for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    return out;
  };
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      level: options.level ?? 'info',
      ...(options.name ? { name: options.name } : {}),
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      hooks: {
        streamWrite: (line: string) => {
          const clean = scrub(line);
          return journald ? withPriorityPrefix(clean) : clean;
        },
      },
    },
    destination,
  );
}
