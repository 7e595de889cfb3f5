// /metrics (Prometheus text) and /healthz on METRICS_ADDR, a loopback address by default.
// /healthz is 200 only while the control plane link is up and heartbeats are fresh.
import http from 'node:http';
import type { AgentMetrics } from './registry.js';

export interface Health {
  healthy: boolean;
  detail: Record<string, unknown>;
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(
  addr: string,
  metrics: AgentMetrics,
  health: () => Health,
): Promise<MetricsServer> {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(addr.slice(i + 1));
  const server = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/metrics') {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
      } else if (path === '/healthz') {
        const h = health();
        res
          .writeHead(h.healthy ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: h.healthy ? 'ok' : 'unhealthy', ...h.detail }));
      } else {
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try /metrics or /healthz\n');
      }
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
