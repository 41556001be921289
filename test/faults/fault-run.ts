/**
 * Runs one fault schedule end to end: source and target agents as child
 * processes (`flimcd source` / `flimcd target`), the WAN emulator between
 * them (in this process, so it can cut, stall and delay), a workload writing
 * and checking through NBD as a VM would (reconnecting when an agent dies,
 * moving to the target at cut-over), and the faults of the schedule. Agents
 * are killed with SIGKILL and restarted with the same arguments. Passes only
 * if the migration ends verified, the target image is byte-exact against the
 * workload's model, no read saw wrong data, and no state is left behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import type { Disk } from '../../src/block/disk.ts';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FLIMCD_BIN } from '../helpers/cli.ts';
import { PEER_PATH } from '../helpers/peers.ts';
import { ReconnectingDisk } from '../helpers/reconnecting-disk.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { WanProxy } from '../../src/wan-emulator/proxy.ts';
import { formatPskFile } from '../../src/cli/security-options.ts';
import { ExpectedDisk, finalVerify } from '../../src/workload/expected.ts';
import { RequestGenerator } from '../../src/workload/generator.ts';
import { resolveProfile, type ProfileName } from '../../src/workload/profiles.ts';
import { WorkloadExecutor } from '../../src/workload/executor.ts';
import { describeSchedule, phaseIndex, type FaultEvent, type FaultSchedule } from './schedule.ts';
import { freePort } from '../helpers/net.ts';

export interface FaultRunResult {
  ok: boolean;
  /** Why it failed (empty when ok). */
  problems: string[];
  /** Faults actually set off, and those whose phase had passed before they were due. */
  fired: string[];
  missed: string[];
  verified: boolean | undefined;
  /** The final report of the source process that finished (covers that process's session only). */
  report: Record<string, unknown> | undefined;
  mismatches: number;
  restarts: { source: number; target: number };
  elapsedMs: number;
  dir: string;
}

const DEFAULT_SIZE = 16 * 1024 * 1024;
const BLOCK = 65536;

/** A flimcd agent as a child process that can be killed and started again with the same arguments. */
class AgentProcess {
  child: ChildProcess | undefined;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: null, signal: null });
  starts = 0;
  /** Processes this harness killed (their exit is not the migration's end). */
  readonly killed = new Set<ChildProcess>();
  private readonly logFile: WriteStream;
  /** Kill-and-restart faults on this agent run one after another (never two copies of it at once). */
  private bouncing: Promise<void> = Promise.resolve();
  private readonly all: ChildProcess[] = [];
  private lineFns: Array<(line: string, obj: Record<string, unknown> | undefined) => void> = [];

  constructor(readonly name: string, private readonly args: string[], logPath: string) {
    this.logFile = createWriteStream(logPath, { flags: 'a' });
  }

  onLine(fn: (line: string, obj: Record<string, unknown> | undefined) => void): void {
    this.lineFns.push(fn);
  }

  start(): void {
    this.starts++;
    const child = spawn(process.execPath, [FLIMCD_BIN, ...this.args], {
      env: { ...process.env, PATH: PEER_PATH, FLIMCD_LOG_LEVEL: process.env.FLIMCD_FAULT_LOG_LEVEL ?? 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.all.push(child);
    this.logFile.write(`--- start ${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.logFile.write(`out: ${line}\n`);
        let obj: Record<string, unknown> | undefined;
        try { obj = JSON.parse(line) as Record<string, unknown>; } catch { /* not JSON */ }
        for (const f of this.lineFns) f(line, obj);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => this.logFile.write(d));
    this.exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal })));
  }

  async kill9(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.killed.add(this.child);
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** kill -9, stay down `downMs`, start again with the same arguments. */
  bounce(downMs: number, wanted: () => boolean = () => true): Promise<void> {
    this.bouncing = this.bouncing.then(async () => {
      if (!wanted()) return;
      await this.kill9();
      await new Promise((r) => setTimeout(r, downMs));
      this.start();
    });
    return this.bouncing;
  }

  /** Safety net at the end: no process of this agent outlives the run. */
  killAll(): void {
    for (const c of this.all) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  close(): void {
    this.logFile.end();
  }
}


export interface FaultRunOptions {
  timeoutMs?: number;
  size?: number;
  /** The VM's workload profile (default moderate). */
  profile?: ProfileName;
}

export async function runFaultSchedule(s: FaultSchedule, dir: string, opts: FaultRunOptions = {}): Promise<FaultRunResult> {
  const SIZE = opts.size ?? DEFAULT_SIZE;
  const started = Date.now();
  const problems: string[] = [];
  const fired: string[] = [];
  const missed: string[] = [];
  const src = join(dir, 'source.img');
  const dst = join(dir, 'target.img');
  await generateImage(src, SIZE, { seed: s.seed, blockSize: BLOCK });
  const port = await freePort();
  // The link runs TLS-PSK, as in production: reconnects and restarts redo the TLS handshake.
  const psk = join(dir, 'link.psk');
  writeFileSync(psk, formatPskFile('flimcd-faults', randomBytes(32)), { mode: 0o600 });
  const target = new AgentProcess('target', [
    'target', '--psk-file', psk, '--image', dst, '--listen', `tcp:127.0.0.1:${port}`, '--nbd', `unix:${join(dir, 'target.sock')}`, '--json', '--fetch-timeout', '120s',
  ], join(dir, 'target.log'));
  const wan = new WanProxy({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, to: { kind: 'tcp', host: '127.0.0.1', port }, bandwidthBps: s.bandwidthBps, rttMs: 4 });
  const wanAddr = await wan.listen();
  const source = new AgentProcess('source', [
    'source', '--psk-file', psk, '--image', src, '--to', `tcp:127.0.0.1:${(wanAddr as { port: number }).port}`, '--nbd', `unix:${join(dir, 'source.sock')}`,
    '--algorithm', s.algorithm, '--bandwidth', `${s.bandwidthBps}bit`, '--json', '--link-timeout', '60s',
  ], join(dir, 'source.log'));

  let phase = 'starting';
  let phaseSeen = -1;
  const phaseWaiters: Array<() => void> = [];
  let report: Record<string, unknown> | undefined;
  let targetVerified: boolean | undefined;
  source.onLine((_l, o) => {
    if (o?.event === 'phase' && typeof o.phase === 'string') {
      phase = o.phase;
      phaseSeen = Math.max(phaseSeen, phaseIndex(o.phase));
      for (const f of phaseWaiters.splice(0)) f();
    }
    if (o?.event === 'report') report = o;
  });
  target.onLine((_l, o) => {
    if (o?.event === 'result') targetVerified = o.verified === true;
  });

  const opened: ReconnectingDisk[] = [];
  let expected: ExpectedDisk | undefined;
  let exec: WorkloadExecutor | undefined;
  let running: ReturnType<WorkloadExecutor['run']> | undefined;
  let sourceDone = false;
  const deadline = started + (opts.timeoutMs ?? 90_000);
  try {
    target.start();
    source.start();
    const primary = await ReconnectingDisk.connect({ kind: 'unix', path: join(dir, 'source.sock') }, 60_000, () => sourceDone);
    opened.push(primary);
    expected = await ExpectedDisk.create(SIZE, s.seed, { base: src });
    const requests = new RequestGenerator(resolveProfile(opts.profile ?? 'moderate', { linkBitsPerSecond: s.bandwidthBps, imageBytes: SIZE, blockSize: BLOCK }).params, s.seed);
    exec = new WorkloadExecutor({
      disk: primary,
      switchTo: async () => {
        const d = await ReconnectingDisk.connect({ kind: 'unix', path: join(dir, 'target.sock') }, 60_000);
        opened.push(d);
        return d;
      },
      requests, durationMs: 24 * 3600 * 1000, expected, blockSize: BLOCK,
    });
    running = exec.run();

    // The source's life: a kill is followed by a restart; any other exit ends the migration.
    const sourceEnd = (async () => {
      for (;;) {
        const proc = source.child;
        const r = await source.exited;
        if (proc && source.killed.has(proc)) {
          while (source.child === proc) await new Promise((res) => setTimeout(res, 20));
          continue;
        }
        sourceDone = true;
        return r;
      }
    })();

    // Each fault waits for its phase on its own, so a long one (a delay, a kill) does not hold back the next.
    const faults = Promise.all(s.events.map(async (e) => {
      const want = phaseIndex(e.phase);
      while (phaseSeen < want && !sourceDone) await new Promise<void>((r) => { phaseWaiters.push(r); setTimeout(r, 50); });
      if (!sourceDone && phaseSeen < phaseIndex('verify')) await new Promise((r) => setTimeout(r, e.afterMs));
      if (sourceDone || phaseSeen >= phaseIndex('verify')) {
        missed.push(`${e.kind}@${e.phase}`);
        return;
      }
      fired.push(`${e.kind}@${e.phase}(now ${phase})`);
      await fire(e);
    }));

    async function fire(e: FaultEvent): Promise<void> {
      switch (e.kind) {
        case 'cut':
          wan.cut({ refuseMs: e.ms });
          return;
        case 'stall':
          wan.stall(e.ms);
          return;
        case 'delay': {
          const before = wan.stats().rttMs;
          wan.setLink({ rttMs: e.rttMs ?? 100 });
          await new Promise((r) => setTimeout(r, e.ms));
          wan.setLink({ rttMs: before });
          return;
        }
        case 'kill-source':
          return source.bounce(e.ms, () => !sourceDone);
        case 'kill-target':
          return target.bounce(e.ms);
      }
    }

    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(0, deadline - Date.now())).unref());
    const end = await Promise.race([sourceEnd, timeout]);
    await Promise.race([faults, timeout]);
    if (end === 'timeout') {
      problems.push(`timed out after ${Date.now() - started} ms in phase ${phase}`);
    } else if (end.code !== 0) {
      problems.push(`source exited with code ${end.code}${end.signal ? ` (${end.signal})` : ''}`);
    }
    // Give the target a moment to print its result (the source exits as soon as DONE is acknowledged).
    for (let i = 0; i < 100 && targetVerified === undefined && !problems.length; i++) await new Promise((r) => setTimeout(r, 20));
    exec.stop();
    const w = await running;
    if (w.error) problems.push(`workload failed: ${w.error.message}`);
    const verified = (report?.verified as boolean | undefined) ?? targetVerified;
    if (verified !== true) problems.push(`not verified (source report ${report ? String(report.verified) : 'absent'}, target result ${String(targetVerified)})`);
    let mismatches = expected.stats.mismatches;
    if (mismatches) problems.push(`${mismatches} reads during the migration returned wrong data: ${JSON.stringify(expected.stats.firstMismatches.slice(0, 3))}`);
    // A failed verification: tell lost data from lost bookkeeping (the VM's writes at the target are
    // verified by the target's ids), so a rare CI failure can be understood from its message alone.
    if (verified !== true && !mismatches) problems.push(...(await diagnoseUnverified(exec.disk, expected, src, dst)));
    if (!problems.length) {
      const fin = await finalVerify(exec.disk, expected, { queueDepth: 16 });
      mismatches += fin.mismatches;
      if (fin.mismatches) problems.push(`target image differs from the workload's model in ${fin.mismatches} pages`);
    }
    for (const d of opened) await d.close();
    opened.length = 0;
    await target.stop();
    if (!problems.length) {
      if (existsSync(`${src}.flimcd`)) problems.push('source state dir left behind');
      if (existsSync(`${dst}.flimcd`)) problems.push('target state dir left behind');
    }
    return {
      ok: problems.length === 0, problems, fired, missed, verified, report, mismatches,
      restarts: { source: source.starts - 1, target: target.starts - 1 }, elapsedMs: Date.now() - started, dir,
    };
  } catch (e) {
    problems.push(`harness error: ${(e as Error).stack ?? String(e)}`);
    return { ok: false, problems, fired, missed, verified: undefined, report, mismatches: -1, restarts: { source: source.starts - 1, target: target.starts - 1 }, elapsedMs: Date.now() - started, dir };
  } finally {
    exec?.stop();
    await running?.catch(() => {});
    for (const d of opened) await d.close().catch(() => {});
    await expected?.close().catch(() => {});
    await source.kill9();
    await target.kill9();
    source.killAll();
    target.killAll();
    await wan.close().catch(() => {});
    source.close();
    target.close();
  }
}

/** What differs after a failed verification: the target against the workload's model, and the two image files block by block. */
async function diagnoseUnverified(disk: Disk, expected: ExpectedDisk, src: string, dst: string): Promise<string[]> {
  const out: string[] = [];
  try {
    const before = expected.stats.firstMismatches.length;
    const fin = await finalVerify(disk, expected, { queueDepth: 16 });
    out.push(fin.mismatches
      ? `diagnosis: the target's disk differs from the workload's model in ${fin.mismatches} pages (data lost): ${JSON.stringify(expected.stats.firstMismatches.slice(before, before + 3))}`
      : "diagnosis: the target's disk matches the workload's model byte for byte (verification bookkeeping, not data)");
  } catch (e) {
    out.push(`diagnosis: the target's disk could not be read back: ${(e as Error).message}`);
  }
  try {
    const a = readFileSync(src);
    const b = readFileSync(dst);
    const differ: number[] = [];
    for (let off = 0; off < Math.min(a.length, b.length); off += BLOCK) {
      if (!a.subarray(off, off + BLOCK).equals(b.subarray(off, off + BLOCK))) differ.push(off / BLOCK);
    }
    const tags = differ.slice(0, 8).map((blk) => `${blk}:${[...new Set(Array.from({ length: BLOCK / 4096 }, (_, i) => expected.tagAt(blk * BLOCK + i * 4096)))].join('/')}`);
    out.push(`diagnosis: ${differ.length} blocks of ${BLOCK} bytes differ between source.img and target.img (block:model tags) ${tags.join(' ')}`);
  } catch (e) {
    out.push(`diagnosis: could not compare the image files: ${(e as Error).message}`);
  }
  return out;
}

export { describeSchedule };
