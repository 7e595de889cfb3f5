// KEY=VALUE files: the format of /etc/aegis/agent.env and /etc/aegis/secrets.env (systemd
// EnvironmentFile semantics, minus variable expansion): blank lines and # comments skipped,
// optional `export `, values optionally in single or double quotes.

export interface EnvFileIssue {
  line: number;
  text: string;
}

export function parseEnvFile(text: string): {
  values: Record<string, string>;
  issues: EnvFileIssue[];
} {
  const values: Record<string, string> = {};
  const issues: EnvFileIssue[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) {
      issues.push({ line: i + 1, text: 'expected KEY=VALUE' });
      return;
    }
    const key = m[1] as string;
    let value = m[2] as string;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\(["\\$`])/g, '$1').replace(/\\n/g, '\n');
    }
    values[key] = value;
  });
  return { values, issues };
}
