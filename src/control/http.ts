/**
 * The one JSON-over-HTTP server behind every control endpoint (the agents'
 * control/server.ts, the WAN emulator's link/control.ts). Neither endpoint
 * has authentication, so this module owns what keeps them safe and uniform:
 *
 * - listening on an Address: tcp only on a loopback host unless the caller
 *   allows remote hosts; unix after removing a stale socket (never a live
 *   one, never a regular file: util/unix-socket.ts);
 * - routing by a table of paths and methods (404 lists the routes, 405 sends
 *   Allow), ignoring the query string and a trailing slash; HEAD is GET;
 * - a request body limit (413, checked against content-length and while
 *   reading) and POST bodies parsed as one JSON object (400 otherwise);
 * - errors as JSON {"error": "...", "code": "FLIMCD_ERR_…", ...extra}.
 *
 * The matching client is control/client.ts.
 */
import http from 'node:http';
import type net from 'node:net';
import { formatAddress, isLoopbackHost, type Address } from '../util/address.ts';
import { removeStaleSocket } from '../util/unix-socket.ts';
import { FlimcdError, UsageError, ErrorCode } from '../errors.ts';

export const DEFAULT_MAX_BODY = 64 * 1024;

/** A refusal the client should see: status, message and a stable code (plus fields merged into the JSON). */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code: ErrorCode, readonly extra: Record<string, unknown> = {}) {
    super(message);
  }
}

/** What a route answers: JSON by default, or text (Prometheus exposition) with its content type. */
export interface HttpReply {
  status?: number;
  json?: unknown;
  text?: string;
  contentType?: string;
}

export interface HttpRequest {
  /** The method, with HEAD read as GET. */
  method: string;
  /** The path without query string or trailing slash. */
  path: string;
  /** A POST's JSON object ({} when empty); {} for other methods. */
  body: Record<string, unknown>;
}

export interface JsonHttpServerOptions {
  /** Names the endpoint in errors, e.g. "control endpoint" or "--control". */
  what: string;
  /** Path → allowed methods. */
  routes: Record<string, string[]>;
  handle: (req: HttpRequest) => HttpReply | Promise<HttpReply>;
  /** Turns an error the handler threw into a refusal (e.g. a validation error into 400); others are 500. */
  refusal?: (e: unknown) => HttpError | undefined;
  /** Request body limit in bytes (default 64 KiB). */
  maxBodyBytes?: number;
  /** Told about 500s and listener errors after listening. */
  onError?: (e: unknown, what: string) => void;
}

/** Throws a UsageError unless `addr` is unix or on a loopback host; `why` says what an open endpoint would risk. */
export function requireLoopback(addr: Address, what: string, why: string): void {
  if (addr.kind === 'tcp' && !isLoopbackHost(addr.host)) {
    throw new UsageError(`${what}: ${formatAddress(addr)} is not a loopback address; ${why} (use unix:PATH or tcp:127.0.0.1:PORT)`);
  }
}

export class JsonHttpServer {
  private readonly server: http.Server;
  private readonly maxBody: number;
  private bound: Address | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly o: JsonHttpServerOptions) {
    this.maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.requestTimeout = 15_000;
    this.server.headersTimeout = 10_000;
    this.server.keepAliveTimeout = 2_000;
  }

  /** The bound address (TCP port filled in), once listening. */
  get address(): Address | undefined {
    return this.bound;
  }

  /** Starts listening at `a`; resolves with the bound address. A stale unix socket is replaced, a live one refused. */
  async listen(a: Address): Promise<Address> {
    const what = this.o.what;
    if (a.kind === 'unix') await removeStaleSocket(a.path, what);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(
          e.code === 'EADDRINUSE'
            ? new UsageError(`${what}: address already in use: ${formatAddress(a)}`)
            : e.code === 'EACCES' || e.code === 'ENOENT'
              ? new UsageError(`${what}: cannot listen at ${formatAddress(a)} (${e.code})`)
              : new FlimcdError(`${what}: cannot listen at ${formatAddress(a)}: ${e.message}`, ErrorCode.CONTROL, { cause: e }),
        );
      };
      this.server.once('error', onError);
      const done = () => {
        this.server.off('error', onError);
        resolve();
      };
      if (a.kind === 'unix') this.server.listen(a.path, done);
      else this.server.listen(a.port, a.host, done);
    });
    this.server.on('error', (e) => this.o.onError?.(e, `${what} error`));
    this.bound = a.kind === 'unix' ? a : { kind: 'tcp', host: a.host, port: (this.server.address() as net.AddressInfo).port };
    return this.bound;
  }

  /** Stops accepting, lets in-flight requests finish (up to `timeoutMs`), then drops the rest. Idempotent. */
  close(timeoutMs = 2000): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      const timer = setTimeout(() => this.server.closeAllConnections(), timeoutMs);
      timer.unref();
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.server.closeIdleConnections();
    });
    return this.closing;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    const refuseBody = () => {
      tooBig = true;
      reply(res, 413, { error: `request body over ${this.maxBody} bytes`, code: ErrorCode.CONTROL_BODY }, { connection: 'close' });
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxBody) return refuseBody();
    req.on('data', (d: Buffer) => {
      if (tooBig) return;
      size += d.length;
      if (size > this.maxBody) return refuseBody();
      chunks.push(d);
    });
    req.on('error', () => {});
    req.on('end', () => {
      if (tooBig || res.headersSent) return;
      const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '') || '/';
      this.route(req, path, Buffer.concat(chunks)).then(
        (r) => {
          const status = r.status ?? 200;
          if (r.text === undefined) return reply(res, status, r.json);
          if (res.headersSent) return;
          res.writeHead(status, { 'content-type': r.contentType ?? 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(r.text) });
          res.end(req.method === 'HEAD' ? undefined : r.text);
        },
        (e: unknown) => {
          const refused = e instanceof HttpError ? e : this.o.refusal?.(e);
          if (refused) {
            const allow = refused.status === 405 ? { allow: (this.o.routes[path] ?? []).join(', ') } : undefined;
            return reply(res, refused.status, { error: refused.message, code: refused.code, ...refused.extra }, allow);
          }
          this.o.onError?.(e, `${this.o.what}: request failed`);
          reply(res, 500, { error: (e as Error)?.message ?? String(e), code: (e as FlimcdError)?.code ?? ErrorCode.CONTROL_INTERNAL });
        },
      );
    });
  }

  private async route(req: http.IncomingMessage, path: string, raw: Buffer): Promise<HttpReply> {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const allowed = this.o.routes[path];
    if (!allowed) {
      const list = Object.entries(this.o.routes).map(([p, m]) => `${m.join('|')} ${p}`).join(', ');
      throw new HttpError(404, `no such endpoint ${path} (${list})`, ErrorCode.CONTROL_NOT_FOUND);
    }
    if (!allowed.includes(method)) throw new HttpError(405, `${req.method} not allowed on ${path} (use ${allowed.join(' or ')})`, ErrorCode.CONTROL_METHOD);
    return this.o.handle({ method, path, body: method === 'POST' ? parseJsonObject(raw) : {} });
  }
}

function reply(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(value) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A request body as one JSON object; empty is {}. */
export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  const text = raw.toString('utf8').trim();
  if (!text) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON', ErrorCode.CONTROL_BODY);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'request body must be a JSON object', ErrorCode.CONTROL_BODY);
  return v as Record<string, unknown>;
}
