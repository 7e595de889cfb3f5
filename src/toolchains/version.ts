// ESP-IDF's own version record: tools/cmake/version.cmake (set(IDF_VERSION_MAJOR 5) …).

export function parseVersionCmake(text: string): string | undefined {
  const part = (name: string) =>
    new RegExp(`set\\s*\\(\\s*IDF_VERSION_${name}\\s+(\\d+)\\s*\\)`).exec(text)?.[1];
  const major = part('MAJOR');
  const minor = part('MINOR');
  const patch = part('PATCH');
  if (major === undefined || minor === undefined || patch === undefined) return undefined;
  return `${major}.${minor}.${patch}`;
}

/** Compare dotted numeric versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
