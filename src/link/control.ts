/**
 * A small JSON-over-HTTP control endpoint for a running WanProxy, on
 * loopback or a unix socket (it has no authentication, so never anywhere
 * else):
 *
 *   GET  /stats                          → WanStats
 *   POST /cut    {"refuseMs"?: 2000 | "refuse"?: "2s"}      → {"ok":true,"connections":N}
 *   POST /stall  {"ms": 500 | "duration": "500ms"}          → {"ok":true,"ms":500}
 *   POST /set    {"bandwidthBps"?: 1e8 | "bandwidth"?: "100Mbit", "rttMs"?: 50 | "rtt"?: "50ms"}
 *                                                          → {"ok":true,"bandwidthBps":…,"rttMs":…}
 *
 * Errors are {"error": "..."} with 400 (bad body), 404 or 405.
 * `controlRequest()` is the matching client (tests, scripts, other processes).
 */
import http from 'node:http';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { parseBitRate, parseDuration } from '../util/units.ts';
import { ErrorCode, FlimcdError, UsageError } from '../errors.ts';
import type { WanProxy } from './proxy.ts';

const MAX_BODY = 64 * 1024;

export interface ControlServer {
  address: Address;
  close(): Promise<void>;
}

class BadRequest extends Error {}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Reads a duration given as a number of ms or a string with a unit ("500ms", "2s"). */
function durationField(body: Record<string, unknown>, msKey: string, textKey: string): number | undefined {
  const n = body[msKey];
  const t = body[textKey];
  if (n !== undefined && t !== undefined) throw new BadRequest(`give either ${msKey} or ${textKey}, not both`);
  if (n !== undefined) {
    if (typeof n !== 'number' || !(n >= 0) || !Number.isFinite(n)) throw new BadRequest(`${msKey} must be a number of milliseconds >= 0`);
    return n;
  }
  if (t !== undefined) {
    if (typeof t !== 'string') throw new BadRequest(`${textKey} must be a string such as "500ms" or "2s"`);
    try {
      return parseDuration(t, textKey);
    } catch (e) {
      throw new BadRequest((e as Error).message);
    }
  }
  return undefined;
}

function handle(proxy: WanProxy, method: string, path: string, body: Record<string, unknown>): unknown {
  switch (path) {
    case '/stats':
      if (method !== 'GET') return 405;
      return proxy.stats();
    case '/cut': {
      if (method !== 'POST') return 405;
      const refuseMs = durationField(body, 'refuseMs', 'refuse') ?? 0;
      return { ok: true, ...proxy.cut({ refuseMs }), refuseMs };
    }
    case '/stall': {
      if (method !== 'POST') return 405;
      const ms = durationField(body, 'ms', 'duration');
      if (ms === undefined) throw new BadRequest('stall needs "ms" (a number) or "duration" (e.g. "500ms")');
      proxy.stall(ms);
      return { ok: true, ms };
    }
    case '/set': {
      if (method !== 'POST') return 405;
      const change: { bandwidthBps?: number; rttMs?: number } = {};
      const bps = body.bandwidthBps;
      const text = body.bandwidth;
      if (bps !== undefined && text !== undefined) throw new BadRequest('give either bandwidthBps or bandwidth, not both');
      if (bps !== undefined) {
        if (typeof bps !== 'number' || !(bps > 0) || !Number.isFinite(bps)) throw new BadRequest('bandwidthBps must be a positive number of bits/s');
        change.bandwidthBps = bps;
      } else if (text !== undefined) {
        if (typeof text !== 'string') throw new BadRequest('bandwidth must be a string such as "100Mbit"');
        try {
          change.bandwidthBps = parseBitRate(text, 'bandwidth');
        } catch (e) {
          throw new BadRequest((e as Error).message);
        }
      }
      const rtt = durationField(body, 'rttMs', 'rtt');
      if (rtt !== undefined) change.rttMs = rtt;
      if (change.bandwidthBps === undefined && change.rttMs === undefined) throw new BadRequest('set needs bandwidth/bandwidthBps and/or rtt/rttMs');
      return { ok: true, ...proxy.setLink(change) };
    }
    default:
      return 404;
  }
}

/** Serves the control endpoint for `proxy` at `addr` (tcp on a loopback host, or unix). */
export function startControlServer(proxy: WanProxy, addr: Address): Promise<ControlServer> {
  if (addr.kind === 'tcp' && !isLoopback(addr.host)) {
    throw new UsageError(`--control: ${formatAddress(addr)} is not a loopback address; the control endpoint has no authentication (use tcp:127.0.0.1:PORT or unix:PATH)`);
  }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const reply = (status: number, value: unknown) => {
      const text = JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) {
        reply(413, { error: 'body too large' });
        req.destroy();
        return;
      }
      chunks.push(d);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let body: Record<string, unknown> = {};
      const raw = Buffer.concat(chunks).toString('utf8').trim();
      if (raw) {
        try {
          const v: unknown = JSON.parse(raw);
          if (typeof v !== 'object' || v === null || Array.isArray(v)) return reply(400, { error: 'body must be a JSON object' });
          body = v as Record<string, unknown>;
        } catch {
          return reply(400, { error: 'body is not valid JSON' });
        }
      }
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      try {
        const out = handle(proxy, req.method ?? 'GET', path, body);
        if (out === 404) return reply(404, { error: `no such endpoint ${path} (GET /stats, POST /cut, /stall, /set)` });
        if (out === 405) return reply(405, { error: `${req.method} not allowed on ${path}` });
        reply(200, out);
      } catch (e) {
        if (e instanceof BadRequest || e instanceof RangeError || e instanceof UsageError) return reply(400, { error: e.message });
        reply(500, { error: (e as Error).message });
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE' ? new UsageError(`--control: address already in use: ${formatAddress(addr)}`) : e);
    });
    const done = () => {
      const bound: Address = addr.kind === 'unix' ? addr : { kind: 'tcp', host: addr.host, port: (server.address() as { port: number }).port };
      resolve({
        address: bound,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    };
    if (addr.kind === 'unix') {
      if (existsSync(addr.path) && lstatSync(addr.path).isSocket()) unlinkSync(addr.path);
      server.listen(addr.path, done);
    } else {
      server.listen(addr.port, addr.host, done);
    }
  });
}

/** Calls a control endpoint; resolves with the parsed JSON answer, throws FlimcdError on a non-2xx status. */
export function controlRequest<R = Record<string, unknown>>(addr: Address, method: 'GET' | 'POST', path: string, body?: unknown): Promise<R> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? '' : JSON.stringify(body);
    const req = http.request(
      {
        ...(addr.kind === 'unix' ? { socketPath: addr.path } : { host: addr.host, port: addr.port }),
        method,
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let v: unknown;
          try {
            v = JSON.parse(text);
          } catch {
            return reject(new FlimcdError(`control ${method} ${path}: answer is not JSON: ${text.slice(0, 200)}`, ErrorCode.CONTROL));
          }
          if ((res.statusCode ?? 500) >= 300) {
            return reject(new FlimcdError(`control ${method} ${path}: ${res.statusCode} ${(v as { error?: string }).error ?? text}`, ErrorCode.CONTROL));
          }
          resolve(v as R);
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
