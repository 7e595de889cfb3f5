// HTTP plumbing of the dev control plane: bounded JSON bodies, JSON replies, and one error type
// that carries its status and AEGIS_ERR_* code to the response.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';

/** Largest request body accepted (413 beyond it). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** A failed request: becomes `status` with `{"code","message"}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    /** An ErrorCode, or an agent's own code relayed as is (session.rejected). */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { code: err.code, message: err.message });
}

/**
 * Read the whole body as JSON, at most MAX_BODY_BYTES; non-JSON bodies are refused.
 * `curl -d '{...}'` labels a JSON body application/x-www-form-urlencoded: accepted too, because
 * that is how operators and the docs call this development plane; the body must still be JSON.
 */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'];
  const accepted =
    /^application\/([\w.+-]+\+)?json\b/i.test(type ?? '') ||
    /^application\/x-www-form-urlencoded\b/i.test(type ?? '');
  if (type !== undefined && !accepted) {
    throw new HttpError(
      415,
      'AEGIS_ERR_PROTOCOL',
      `Send the body as JSON with Content-Type: application/json, not ${type}.`,
    );
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge(req);
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      reject(tooLarge(req));
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(
      400,
      'AEGIS_ERR_PROTOCOL',
      `The body is not valid JSON: ${(err as Error).message}.`,
    );
  }
}

function tooLarge(req: IncomingMessage): HttpError {
  // Discard the rest rather than buffer it (so the client can read the 413 before the close).
  req.resume();
  return new HttpError(413, 'AEGIS_ERR_PROTOCOL', `The body exceeds ${MAX_BODY_BYTES} bytes.`);
}

/** Validate a parsed body; the first schema issues become the 400's message. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const reason = result.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
    .join('; ');
  throw new HttpError(400, 'AEGIS_ERR_PROTOCOL', `Invalid request body: ${reason}.`);
}

/** Require `Authorization: Bearer <secret>` when a secret is configured. */
export function requireBearer(req: IncomingMessage, secret: string | undefined): void {
  if (secret === undefined) return;
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  const given = Buffer.from(m?.[1]?.trim() ?? '');
  const want = Buffer.from(secret);
  if (given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new HttpError(
      401,
      'AEGIS_ERR_AUTH',
      m
        ? 'The bearer token does not match MCP_AUTH_SECRET.'
        : 'Send Authorization: Bearer <MCP_AUTH_SECRET>.',
    );
  }
}
