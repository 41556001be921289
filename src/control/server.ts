/**
 * The agent control endpoint: a small HTTP server on a unix socket or a
 * loopback TCP port through which an operator (or `flimcd status|cutover|abort`,
 * or Prometheus) watches and steers a running migration. It has no
 * authentication and can abort a migration, so it refuses non-loopback hosts
 * unless `allowRemote` is set.
 *
 *   GET  /status    200 AgentStatus JSON
 *   POST /cutover   body {"vmPaused":true} optional (the hypervisor paused the VM: hold at once, no drain);
 *                   202 {"accepted":true,"phase":…}; 409 {"error","code"} when this role/phase cannot cut over
 *   POST /abort     body {"reason":"…","reclaim":true} optional (reclaim: the source takes the VM's
 *                   disk back even after cut-over, for a hypervisor switch-over that failed); answered once the
 *                   migration has wound down (at most abortWindDownMs): 202 {"accepted":true,"reason","abortedIn","phase"},
 *                   phase being the one after (the source's idle, or aborting while it still winds down);
 *                   409 when already done/failed, and on the source after cut-over without reclaim (the VM runs at the target)
 *   POST /retry     202 {"accepted":true}: the source starts a new migration after one ended with the VM's
 *                   disk here (phase idle); 409 while one runs, on the target, or after the VM moved
 *   GET  /metrics   200 Prometheus text exposition (per-server prom-client Registry)
 *
 * Errors are JSON {"error": "...", "code": "FLIMCD_ERR_…"}: 400 malformed body,
 * 404 unknown route, 405 wrong method (with Allow), 413 body over the limit,
 * 500 when the agent throws.
 */
import type { Address } from '../util/address.ts';
import { formatAddress } from '../util/address.ts';
import { FlimcdError, ErrorCode } from '../errors.ts';
import type { Logger } from '../util/log.ts';
import { HttpError, JsonHttpServer, requireLoopback, type HttpReply, type HttpRequest } from './http.ts';
import { MetricsMirror, statusSamples } from './metrics.ts';
import { createStatusEnricher } from './status.ts';
import { AFTER_CUTOVER_PHASES, CUTOVER_PHASES, FINAL_PHASES, IDLE_PHASE, type AgentControl, type AgentStatus } from './types.ts';

export { DEFAULT_MAX_BODY } from './http.ts';
const MAX_REASON = 1000;
/** How long POST /abort waits for the migration to wind down before it answers `aborting`. */
export const ABORT_WIND_DOWN_MS = 3000;

export const ROUTES: Record<string, string[]> = {
  '/status': ['GET'],
  '/cutover': ['POST'],
  '/abort': ['POST'],
  '/retry': ['POST'],
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
  /**
   * Also sample the status this often while listening, so the transfer rate (and the ETA the
   * target can only derive from it) is known at the first request, not only from the second.
   */
  rateSampleMs?: number;
  /** POST /abort answers after the wind-down, or after this long (default ABORT_WIND_DOWN_MS) with the phase meanwhile. */
  abortWindDownMs?: number;
}

export class ControlServer {
  private readonly http: JsonHttpServer;
  private readonly mirror = new MetricsMirror();
  private readonly enrich: (raw: Record<string, unknown>) => AgentStatus;
  private sampler: NodeJS.Timeout | undefined;

  constructor(private readonly o: ControlServerOptions) {
    if (!o.allowRemote) requireLoopback(o.address, 'control endpoint', 'it has no authentication and can abort the migration');
    this.enrich = createStatusEnricher({ role: o.control.role, ...(o.now ? { now: o.now } : {}) });
    this.http = new JsonHttpServer({
      what: 'control endpoint',
      routes: ROUTES,
      handle: (req) => this.route(req),
      ...(o.maxBodyBytes ? { maxBodyBytes: o.maxBodyBytes } : {}),
      onError: (err, what) => this.o.log?.warn({ err }, what),
    });
  }

  /** The bound address (TCP port filled in), once listening. */
  get address(): Address | undefined {
    return this.http.address;
  }

  /** Starts listening; resolves with the bound address. A stale unix socket (nobody listening) is replaced. */
  async listen(): Promise<Address> {
    const bound = await this.http.listen(this.o.address);
    this.o.log?.info({ address: formatAddress(bound) }, 'control endpoint listening');
    if (this.o.rateSampleMs) {
      this.sampler = setInterval(() => void this.status().catch(() => {}), this.o.rateSampleMs);
      this.sampler.unref();
    }
    return bound;
  }

  /** Stops accepting, lets in-flight requests finish (up to `timeoutMs`), then drops the rest. Idempotent. */
  close(timeoutMs = 2000): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
    return this.http.close(timeoutMs);
  }

  private async status(): Promise<AgentStatus> {
    return this.enrich(await this.o.control.status());
  }

  private async route({ path, body }: HttpRequest): Promise<HttpReply> {
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
            : phase === IDLE_PHASE ? 'no migration is running (the last one ended; POST /retry starts a new one)'
            : phase === 'failed' ? 'the migration has failed'
            : `the migration is already past cut-over (phase ${phase})`;
          throw new HttpError(409, `cannot cut over: ${why}`, ErrorCode.CUTOVER_REFUSED, { phase });
        }
        const vmPaused = body.vmPaused;
        if (vmPaused !== undefined && typeof vmPaused !== 'boolean') throw new HttpError(400, 'vmPaused must be true or false', ErrorCode.CONTROL_BODY);
        try {
          await c.cutover(vmPaused ? { vmPaused } : undefined);
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
        if (phase === IDLE_PHASE) {
          throw new HttpError(409, 'nothing to abort: no migration is running (the last one ended; the VM\'s disk is served here)', ErrorCode.ABORT_REFUSED, { phase });
        }
        if (FINAL_PHASES.includes(phase)) {
          throw new HttpError(409, `nothing to abort: the migration is already ${phase === 'done' ? 'done' : 'failed'}`, ErrorCode.ABORT_REFUSED, { phase });
        }
        if (body.reclaim !== undefined && typeof body.reclaim !== 'boolean') throw new HttpError(400, 'reclaim must be a boolean', ErrorCode.CONTROL_BODY);
        // Past the cut-over the VM runs at the target and reads its missing blocks from here: aborting
        // would take its disk away. Only `reclaim` (the VM never switched over) may stop the source then.
        if (this.o.control.role === 'source' && !body.reclaim && AFTER_CUTOVER_PHASES.includes(phase)) {
          throw new HttpError(409, `cannot abort after the cut-over (phase ${phase}): the VM already runs at the target and reads its remaining blocks from this source; the only way forward is to let the migration finish`, ErrorCode.ABORT_REFUSED, { phase });
        }
        const woundDown = body.reclaim ? this.o.control.abort(reason, { reclaim: true }) : this.o.control.abort(reason);
        // The answer says where the agent is after the abort: once wound down (idle), or still aborting.
        await within(Promise.resolve(woundDown), this.o.abortWindDownMs ?? ABORT_WIND_DOWN_MS);
        const now = (await this.status()).phase;
        this.o.log?.warn({ abortedIn: phase, phase: now, reason }, 'migration aborted through the control endpoint');
        return { status: 202, json: { accepted: true, reason, abortedIn: phase, phase: now } };
      }
      case '/retry': {
        const c = this.o.control;
        if (!c.retry) throw new HttpError(409, `the ${c.role} agent cannot start a migration; ask the source agent`, ErrorCode.RETRY_REFUSED, { role: c.role });
        try {
          await c.retry();
        } catch (e) {
          if (e instanceof FlimcdError) throw new HttpError(409, `cannot start a new migration: ${e.message}`, ErrorCode.RETRY_REFUSED, { phase: (await this.status()).phase });
          throw e;
        }
        this.o.log?.info('new migration requested through the control endpoint');
        return { status: 202, json: { accepted: true } };
      }
    }
    throw new HttpError(404, `no such endpoint ${path}`, ErrorCode.CONTROL_NOT_FOUND);
  }
}

/** Waits for `p` (its rejection thrown), but no longer than `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Creates and starts a control server; resolves once it listens. */
export async function startControlServer(o: ControlServerOptions): Promise<ControlServer> {
  const s = new ControlServer(o);
  await s.listen();
  return s;
}
