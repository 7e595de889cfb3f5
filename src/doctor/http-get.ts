// One bounded HTTP(S) GET for doctor: a deadline over the whole exchange, a cap on the body,
// and the socket error itself on failure (with its code), so the caller can name the cause.
import http from 'node:http';
import https from 'node:https';

export interface HttpGetResult {
  status: number;
  contentType: string;
  body: string;
  /** Local epoch ms when the request was sent and when the answer was complete. */
  sentAt: number;
  doneAt: number;
}

export class HttpGetTimeout extends Error {
  override readonly name = 'HttpGetTimeout';
}

/** Larger bodies are cut: /health is a few dozen bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

export function httpGet(url: string, timeoutMs: number): Promise<HttpGetResult> {
  const target = new URL(url);
  const get = target.protocol === 'https:' ? https.get : http.get;
  return new Promise((resolve, reject) => {
    const sentAt = Date.now();
    const req = get(target, { headers: { accept: 'application/json' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size >= MAX_BODY_BYTES) return;
        size += chunk.length;
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type'] ?? ''),
          body: Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8'),
          sentAt,
          doneAt: Date.now(),
        });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new HttpGetTimeout(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
