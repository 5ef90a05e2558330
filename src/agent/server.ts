/**
 * The agent's HTTP endpoints: GET /metrics (Prometheus text exposition),
 * GET /debug/pprof/close_wait (pprof, src/agent/profile.ts),
 * /-/healthy (the process serves), /-/ready (200 once attached and the sockets
 * that predate the agent are seeded, 503 before). Only POST /-/reload changes
 * what the agent does (from loopback only: it re-reads --config, as SIGHUP does). It listens on loopback by default: process names are
 * sensitive, so serving them beyond the host is an explicit --listen.
 */
import { createServer, type Server } from 'node:http';
import { TcptraceError } from '../errors.js';
import type { AgentMetrics } from './metrics.js';

/** what the endpoints serve, computed at request time */
export interface AgentContent {
  metrics: AgentMetrics;
  /** the gzipped pprof profile of /debug/pprof/close_wait */
  profile(): Buffer;
  /** POST /-/reload: re-read the settings; false and why when they stay as they were */
  reload(): { ok: boolean; message: string };
}

/** a peer on this host: 127.0.0.0/8, ::1, or IPv4-mapped loopback */
export function isLoopback(addr: string | undefined): boolean {
  return !!addr && (addr === '::1' || /^(?:::ffff:)?127\./.test(addr));
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:9465", "[::1]:9465", ":9465" (every address) */
export function parseListen(v: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export const ENDPOINTS = 'GET /metrics, /debug/pprof/close_wait, /-/healthy or /-/ready; POST /-/reload';

export class AgentServer {
  ready = false;
  private readonly server: Server;

  constructor(private readonly content: AgentContent) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/-/reload') {
        // the one endpoint that changes the agent: POST, and only from this host
        if (req.method !== 'POST' && req.method !== 'PUT') {
          res.writeHead(405, { allow: 'POST, PUT' }).end('POST /-/reload reloads the settings\n');
        } else if (!isLoopback(req.socket.remoteAddress)) {
          res.writeHead(403, { 'content-type': 'text/plain' }).end('reload is accepted from this host only (loopback)\n');
        } else {
          const r = this.content.reload();
          res.writeHead(r.ok ? 200 : 400, { 'content-type': 'text/plain' }).end(`${r.message}\n`);
        }
        req.resume();
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end('only GET (and POST /-/reload)\n');
        return;
      }
      if (path === '/-/healthy') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('tcptrace agent is healthy\n');
      } else if (path === '/-/ready') {
        res.writeHead(this.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(this.ready ? 'tcptrace agent is ready\n' : 'attaching\n');
      } else if (path === '/metrics') {
        const { registry } = this.content.metrics;
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
      } else if (path === '/debug/pprof/close_wait') {
        try {
          const body = this.content.profile();
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': 'attachment; filename="close_wait.pb.gz"' }).end(body);
        } catch (err) {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
        }
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${ENDPOINTS}\n`);
      }
    });
  }

  /** listens; the address actually bound (port 0 picks one) */
  listen(at: ListenAddress): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(new TcptraceError('CANNOT_LISTEN', `cannot listen on ${at.host}:${at.port}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EADDRNOTAVAIL' ? 'not an address of this host' : (err.code ?? err.message)}`));
      this.server.once('error', onError);
      this.server.listen(at.port, at.host, () => {
        this.server.off('error', onError);
        const a = this.server.address();
        resolve(a && typeof a === 'object' ? { host: a.address, port: a.port } : at);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
