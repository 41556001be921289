/**
 * The agent control endpoint: a small HTTP server on a unix socket or a
 * loopback TCP port through which an operator (or `flimcd status|cutover|abort`,
 * or Prometheus) watches and steers a running migration. It has no
 * authentication and can abort a migration, so it refuses non-loopback hosts
 * unless `allowRemote` is set.
 *
 *   GET  /status    200 AgentStatus JSON
 *   POST /cutover   202 {"accepted":true,"phase":…}; 409 {"error","code"} when this role/phase cannot cut over
 *   POST /abort     body {"reason":"…","reclaim":true} optional (reclaim: the source takes the VM's
 *                   disk back even after cut-over, for a hypervisor switch-over that failed); 202 {"accepted":true,"reason","phase"}; 409 when already done/failed
 *   GET  /metrics   200 Prometheus text exposition (per-server prom-client Registry)
 *
 * Errors are JSON {"error": "...", "code": "FLIMCD_ERR_…"}: 400 malformed body,
 * 404 unknown route, 405 wrong method (with Allow), 413 body over the limit,
 * 500 when the agent throws.
 */
import http from 'node:http';
import net from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { ErrorCode, FlimcdError, UsageError } from '../errors.ts';
import type { Logger } from '../util/log.ts';
import { MetricsMirror, statusSamples } from './metrics.ts';
import { createStatusEnricher } from './status.ts';
import { CUTOVER_PHASES, FINAL_PHASES, type AgentControl, type AgentStatus } from './types.ts';

export const DEFAULT_MAX_BODY = 64 * 1024;
const MAX_REASON = 1000;

export const ROUTES: Record<string, string[]> = {
  '/status': ['GET'],
  '/cutover': ['POST'],
  '/abort': ['POST'],
  '/metrics': ['GET'],
};

export interface ControlServerOptions {
  control: AgentControl;
  /** unix:PATH, or tcp on a loopback host (port 0 picks one). */
  address: Address;
  /** Permit a non-loopback TCP host. The endpoint has no authentication: only behind a firewall. */
  allowRemote?: boolean;
  /** Request body limit in bytes (default 64 KiB). */
  maxBodyBytes?: number;
  log?: Logger;
  /** Milliseconds clock for the observed transfer rate (tests). */
  now?: () => number;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code: ErrorCode, readonly extra: Record<string, unknown> = {}) {
    super(message);
  }
}

/** Is something accepting connections on this unix socket? */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private readonly server: http.Server;
  private readonly mirror = new MetricsMirror();
  private readonly maxBody: number;
  private readonly enrich: (raw: Record<string, unknown>) => AgentStatus;
  private bound: Address | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly o: ControlServerOptions) {
    const a = o.address;
    if (a.kind === 'tcp' && !o.allowRemote && !isLoopbackHost(a.host)) {
      throw new UsageError(
        `control endpoint: ${formatAddress(a)} is not a loopback address; it has no authentication and can abort the migration ` +
          '(use unix:PATH or tcp:127.0.0.1:PORT)',
      );
    }
    this.maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.enrich = createStatusEnricher({ role: o.control.role, ...(o.now ? { now: o.now } : {}) });
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.requestTimeout = 15_000;
    this.server.headersTimeout = 10_000;
    this.server.keepAliveTimeout = 2_000;
  }

  /** The bound address (TCP port filled in), once listening. */
  get address(): Address | undefined {
    return this.bound;
  }

  /** Starts listening; resolves with the bound address. A stale unix socket (nobody listening) is replaced. */
  async listen(): Promise<Address> {
    const a = this.o.address;
    if (a.kind === 'unix') {
      let st;
      try {
        st = lstatSync(a.path);
      } catch {
        st = undefined;
      }
      if (st) {
        if (!st.isSocket()) throw new UsageError(`control endpoint: ${a.path} exists and is not a socket; refusing to replace it`);
        if (await socketAlive(a.path)) throw new UsageError(`control endpoint: another process is listening at ${formatAddress(a)}`);
        unlinkSync(a.path);
      }
    }
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(
          e.code === 'EADDRINUSE'
            ? new UsageError(`control endpoint: address already in use: ${formatAddress(a)}`)
            : e.code === 'EACCES' || e.code === 'ENOENT'
              ? new UsageError(`control endpoint: cannot listen at ${formatAddress(a)} (${e.code})`)
              : new FlimcdError(`control endpoint: cannot listen at ${formatAddress(a)}: ${e.message}`, ErrorCode.CONTROL, { cause: e }),
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
    this.server.on('error', (e) => this.o.log?.warn({ err: e }, 'control endpoint error'));
    this.bound = a.kind === 'unix' ? a : { kind: 'tcp', host: a.host, port: (this.server.address() as net.AddressInfo).port };
    this.o.log?.info({ address: formatAddress(this.bound) }, 'control endpoint listening');
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
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxBody) {
      tooBig = true;
      this.reply(res, 413, { error: `request body over ${this.maxBody} bytes`, code: ErrorCode.CONTROL_BODY }, true);
      return;
    }
    req.on('data', (d: Buffer) => {
      if (tooBig) return;
      size += d.length;
      if (size > this.maxBody) {
        tooBig = true;
        this.reply(res, 413, { error: `request body over ${this.maxBody} bytes`, code: ErrorCode.CONTROL_BODY }, true);
        return;
      }
      chunks.push(d);
    });
    req.on('error', () => {});
    req.on('end', () => {
      if (tooBig || res.headersSent) return;
      this.route(req, Buffer.concat(chunks)).then(
        (r) => {
          if (r.text !== undefined) {
            res.writeHead(r.status, { 'content-type': r.contentType ?? 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(r.text) });
            res.end(req.method === 'HEAD' ? undefined : r.text);
          } else {
            this.reply(res, r.status, r.json, false, r.headers);
          }
        },
        (e: unknown) => {
          if (e instanceof HttpError) return this.reply(res, e.status, { error: e.message, code: e.code, ...e.extra }, false, e.status === 405 ? { allow: (ROUTES[new URL(req.url ?? '/', 'http://x').pathname] ?? []).join(', ') } : undefined);
          this.o.log?.warn({ err: e }, 'control endpoint: request failed');
          this.reply(res, 500, { error: (e as Error)?.message ?? String(e), code: (e as FlimcdError)?.code ?? ErrorCode.CONTROL_INTERNAL });
        },
      );
    });
  }

  private reply(res: http.ServerResponse, status: number, value: unknown, closeAfter = false, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    const text = JSON.stringify(value) + '\n';
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...(closeAfter ? { connection: 'close' } : {}), ...headers });
    res.end(text);
  }

  private async status(): Promise<AgentStatus> {
    return this.enrich(await this.o.control.status());
  }

  private async route(req: http.IncomingMessage, raw: Buffer): Promise<{ status: number; json?: unknown; text?: string; contentType?: string; headers?: Record<string, string> }> {
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '') || '/';
    const allowed = ROUTES[path];
    if (!allowed) {
      throw new HttpError(404, `no such endpoint ${path} (${Object.entries(ROUTES).map(([p, m]) => `${m.join('|')} ${p}`).join(', ')})`, ErrorCode.CONTROL_NOT_FOUND);
    }
    if (!allowed.includes(method)) throw new HttpError(405, `${req.method} not allowed on ${path} (use ${allowed.join(' or ')})`, ErrorCode.CONTROL_METHOD);
    const body = method === 'POST' ? parseBody(raw) : {};

    switch (path) {
      case '/status':
        return { status: 200, json: await this.status() };
      case '/metrics': {
        const s = await this.status();
        const samples = statusSamples(s, this.o.control.role);
        if (this.o.control.metrics) samples.push(...this.o.control.metrics());
        return { status: 200, text: await this.mirror.render(samples), contentType: this.mirror.contentType };
      }
      case '/cutover': {
        const c = this.o.control;
        if (!c.cutover) {
          throw new HttpError(409, `the ${c.role} agent cannot cut over; ask the source agent`, ErrorCode.CUTOVER_REFUSED, { role: c.role });
        }
        const phase = (await this.status()).phase;
        if (!CUTOVER_PHASES.includes(phase)) {
          const why =
            phase === 'cutover' ? 'cut-over is already in progress'
            : phase === 'failed' ? 'the migration has failed'
            : `the migration is already past cut-over (phase ${phase})`;
          throw new HttpError(409, `cannot cut over: ${why}`, ErrorCode.CUTOVER_REFUSED, { phase });
        }
        try {
          await c.cutover();
        } catch (e) {
          if (e instanceof FlimcdError) throw new HttpError(409, `cannot cut over: ${e.message}`, ErrorCode.CUTOVER_REFUSED, { phase });
          throw e;
        }
        this.o.log?.info({ phase }, 'cut-over requested through the control endpoint');
        return { status: 202, json: { accepted: true, phase } };
      }
      case '/abort': {
        const r = body.reason;
        if (r !== undefined && typeof r !== 'string') throw new HttpError(400, 'reason must be a string', ErrorCode.CONTROL_BODY);
        const reason = (r?.trim() || 'requested through the control endpoint').slice(0, MAX_REASON);
        const phase = (await this.status()).phase;
        if (FINAL_PHASES.includes(phase)) {
          throw new HttpError(409, `nothing to abort: the migration is already ${phase === 'done' ? 'done' : 'failed'}`, ErrorCode.ABORT_REFUSED, { phase });
        }
        if (body.reclaim !== undefined && typeof body.reclaim !== 'boolean') throw new HttpError(400, 'reclaim must be a boolean', ErrorCode.CONTROL_BODY);
        if (body.reclaim) await this.o.control.abort(reason, { reclaim: true });
        else await this.o.control.abort(reason);
        this.o.log?.warn({ phase, reason }, 'migration aborted through the control endpoint');
        return { status: 202, json: { accepted: true, reason, phase } };
      }
    }
    throw new HttpError(404, `no such endpoint ${path}`, ErrorCode.CONTROL_NOT_FOUND);
  }
}

function parseBody(raw: Buffer): Record<string, unknown> {
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

/** Creates and starts a control server; resolves once it listens. */
export async function startControlServer(o: ControlServerOptions): Promise<ControlServer> {
  const s = new ControlServer(o);
  await s.listen();
  return s;
}
