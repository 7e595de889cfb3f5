// CORS for browser clients: exact origins only, checked at start so a typo such as
// "esphome.cloud/" fails loudly instead of silently blocking every browser request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AegisError } from '../errors.js';

/** Check every ALLOWED_ORIGINS entry is a bare origin (scheme://host[:port]); return them. */
export function validateOrigins(entries: readonly string[]): ReadonlySet<string> {
  const origins = new Set<string>();
  for (const entry of entries) {
    const problem = originProblem(entry);
    if (problem !== undefined) {
      throw new AegisError(
        'AEGIS_ERR_CONFIG',
        `ALLOWED_ORIGINS entry "${entry}" is not an exact origin: ${problem}.`,
      );
    }
    origins.add(entry);
  }
  return origins;
}

function originProblem(entry: string): string | undefined {
  if (entry === '*' || entry.includes('*'))
    return 'wildcards are not allowed; list each origin such as https://esphome.cloud';
  const bare = entry.replace(/\/+$/, '');
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) {
    return `the scheme is missing; write https://${bare.replace(/^\/+/, '')}`;
  }
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return 'it does not parse as a URL; write it like https://esphome.cloud';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `the scheme must be http or https, not ${url.protocol.slice(0, -1)}`;
  if (url.origin === entry) return undefined;
  if (url.origin === bare) return `remove the trailing slash; write ${url.origin}`;
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') {
    return `it has a path, query or credentials; write just the origin ${url.origin}`;
  }
  return `browsers send this origin as ${url.origin} (lower case, no default port); write that`;
}

/** Set the CORS headers for a listed origin; true when the request is a preflight (answered). */
export function applyCors(
  req: IncomingMessage,
  res: ServerResponse,
  allowed: ReadonlySet<string>,
): boolean {
  res.setHeader('vary', 'Origin');
  const origin = req.headers.origin;
  if (origin !== undefined && allowed.has(origin)) {
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('access-control-allow-headers', 'authorization, content-type');
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader('access-control-max-age', '600');
  }
  if (req.method !== 'OPTIONS') return false;
  // An unlisted origin gets an empty 204 without Allow-Origin: the browser then blocks it.
  res.writeHead(204);
  res.end();
  return true;
}
