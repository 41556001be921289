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
 * Errors are {"error": "...", "code": "FLIMCD_ERR_…"} with 400 (bad body),
 * 404, 405 or 413: the HTTP side is control/http.ts, shared with the agents'
 * control endpoint; control/client.ts `controlRequest()` is the client.
 */
import type { Address } from '../util/address.ts';
import { parseBitRate, parseDuration } from '../util/units.ts';
import { UsageError, ErrorCode } from '../errors.ts';
import { HttpError, JsonHttpServer, requireLoopback, type HttpReply, type HttpRequest } from '../control/http.ts';
import type { WanProxy } from './proxy.ts';

export interface ControlServer {
  address: Address;
  close(): Promise<void>;
}

const ROUTES: Record<string, string[]> = {
  '/stats': ['GET'],
  '/cut': ['POST'],
  '/stall': ['POST'],
  '/set': ['POST'],
};

/** A body field that fails validation: 400. */
class BadRequest extends HttpError {
  constructor(message: string) {
    super(400, message, ErrorCode.CONTROL_BODY);
  }
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

function handle(proxy: WanProxy, { path, body }: HttpRequest): HttpReply {
  switch (path) {
    case '/stats':
      return { json: proxy.stats() };
    case '/cut': {
      const refuseMs = durationField(body, 'refuseMs', 'refuse') ?? 0;
      return { json: { ok: true, ...proxy.cut({ refuseMs }), refuseMs } };
    }
    case '/stall': {
      const ms = durationField(body, 'ms', 'duration');
      if (ms === undefined) throw new BadRequest('stall needs "ms" (a number) or "duration" (e.g. "500ms")');
      proxy.stall(ms);
      return { json: { ok: true, ms } };
    }
    case '/set': {
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
      return { json: { ok: true, ...proxy.setLink(change) } };
    }
  }
  throw new HttpError(404, `no such endpoint ${path}`, ErrorCode.CONTROL_NOT_FOUND);
}

/** Serves the control endpoint for `proxy` at `addr` (tcp on a loopback host, or unix). Throws at once for another host. */
export function startControlServer(proxy: WanProxy, addr: Address): Promise<ControlServer> {
  requireLoopback(addr, '--control', 'the control endpoint has no authentication');
  const server = new JsonHttpServer({
    what: '--control',
    routes: ROUTES,
    handle: (req) => handle(proxy, req),
    // The proxy and the unit parsers refuse bad values with these.
    refusal: (e) => (e instanceof RangeError || e instanceof UsageError ? new BadRequest(e.message) : undefined),
  });
  return server.listen(addr).then((address) => ({ address, close: () => server.close(0) }));
}
