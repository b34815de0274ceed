/**
 * Test helper: a small HTTP proxy on loopback in front of a real S3 server that injects the
 * failures a network and a busy store produce — 503 SlowDown, 429, 500, connections reset before
 * or during a body, requests that hang, bodies that stall — on the requests a plan picks, and
 * forwards everything else untouched (Host header included, so SigV4 signatures stay valid).
 * Test code, not product code.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does with one request. */
export type Fault =
  | { readonly type: 'pass' }
  /** An S3 error response with this status and error code (e.g. 503 SlowDown). */
  | { readonly type: 'status'; readonly status: number; readonly code: string }
  /** Destroys the client connection before any response. */
  | { readonly type: 'reset' }
  /** Forwards the headers and about half of the body, then destroys the connection. */
  | { readonly type: 'reset-mid-body' }
  /** Never answers (until the proxy closes or the client gives up). */
  | { readonly type: 'hang' }
  /** Forwards the headers and some of the body, then sends nothing more. */
  | { readonly type: 'stall-mid-body' };

/** One request the proxy saw, in arrival order. */
export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly range: string | undefined;
  readonly fault: Fault['type'];
}

/**
 * Chooses the fault for the `n`-th request (1-based, all requests counted). A promise holds the
 * request until it settles, so a test can change the store between two requests.
 */
export type FaultPlan = (request: http.IncomingMessage, n: number) => Fault | Promise<Fault>;

/** A running proxy. */
export interface FaultProxy {
  /** The endpoint to give the S3 client, e.g. `http://127.0.0.1:40123`. */
  readonly endpoint: string;
  readonly requests: SeenRequest[];
  /** The most requests that were open at once. */
  readonly peakConcurrency: number;
  /** Replaces the plan (the default passes everything). */
  plan: FaultPlan;
  close(): Promise<void>;
}

const PASS: Fault = { type: 'pass' };

/** Starts a proxy to `target` (e.g. MinIO's `http://127.0.0.1:9000`). */
export async function startFaultProxy(target: string, plan: FaultPlan = () => PASS): Promise<FaultProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  let count = 0;
  let open = 0;

  const proxy: FaultProxy = {
    endpoint: '',
    requests: [],
    peakConcurrency: 0,
    plan,
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };

  const server = http.createServer(async (req, res) => {
    count += 1;
    const fault = await proxy.plan(req, count);
    proxy.requests.push({ method: req.method ?? '', url: req.url ?? '', range: req.headers.range, fault: fault.type });
    open += 1;
    (proxy as { peakConcurrency: number }).peakConcurrency = Math.max(proxy.peakConcurrency, open);
    res.on('close', () => (open -= 1));
    switch (fault.type) {
      case 'status': {
        req.resume();
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected by the test proxy</Message><RequestId>proxy-${count}</RequestId></Error>`;
        res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'hang':
        req.resume();
        return;
      default:
        forward(req, res, fault);
    }
  });

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, fault: Fault): void => {
    const out = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (fault.type === 'pass') {
          up.pipe(res);
          return;
        }
        const half = Math.floor(Number(up.headers['content-length'] ?? 0) / 2);
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          const part = chunk.subarray(0, half - sent);
          sent += part.length;
          if (part.length > 0) res.write(part);
          if (sent < half) return;
          up.destroy();
          // Let the half that was written reach the client before the connection dies.
          if (fault.type === 'reset-mid-body') setTimeout(() => res.socket?.resetAndDestroy(), 20);
        });
      },
    );
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  };

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (proxy as { endpoint: string }).endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
