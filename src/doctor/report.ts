// What a doctor check produces and how a list of them is shown: aligned text lines or one JSON
// object, with every secret value scrubbed on the way out. Pure; no I/O.

export type CheckStatus = 'ok' | 'warn' | 'error' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** One line: what was found. */
  detail: string;
  /** One line: what to do about it (only when not ok). */
  fix?: string;
}

export interface DoctorReport {
  checks: CheckResult[];
  /** No check is an error (warnings and skips alone still pass). */
  ok: boolean;
}

export const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });

export const warn = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'warn',
  detail,
  fix,
});

export const error = (name: string, detail: string, fix: string): CheckResult => ({
  name,
  status: 'error',
  detail,
  fix,
});

export const skip = (name: string, reason: string): CheckResult => ({
  name,
  status: 'skip',
  detail: reason,
});

export function makeReport(checks: readonly CheckResult[]): DoctorReport {
  return { checks: [...checks], ok: !checks.some((c) => c.status === 'error') };
}

/** Shorter values are not scrubbed: they would mangle ordinary words. */
const MIN_SECRET_LENGTH = 4;

/** Replace every occurrence of a secret value, whatever the check put in its text. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length >= MIN_SECRET_LENGTH && out.includes(s)) out = out.split(s).join('[redacted]');
  }
  return out;
}

const STATUS_WIDTH = 7;
const MIN_NAME_WIDTH = 15;

/** The report with every secret value scrubbed from its texts (before any encoding). */
export function redactReport(report: DoctorReport, secrets: readonly string[]): DoctorReport {
  return {
    ok: report.ok,
    checks: report.checks.map((c) => ({
      ...c,
      detail: redact(c.detail, secrets),
      ...(c.fix !== undefined ? { fix: redact(c.fix, secrets) } : {}),
    })),
  };
}

/** One line per check: `ok     config         valid (34 settings)`, the fix after an em dash. */
export function formatText(report: DoctorReport): string {
  const width = Math.max(MIN_NAME_WIDTH, ...report.checks.map((c) => c.name.length + 1));
  return report.checks
    .map((c) => {
      const fix = c.fix !== undefined ? ` — fix: ${c.fix}` : '';
      return `${c.status.padEnd(STATUS_WIDTH)}${c.name.padEnd(width)}${c.detail}${fix}`;
    })
    .join('\n');
}

/** `{"checks":[{name, status, detail, fix?}], "ok": bool}`. */
export function formatJson(report: DoctorReport): string {
  return JSON.stringify(report, null, 2);
}
