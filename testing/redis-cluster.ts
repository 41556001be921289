/**
 * A real Redis Cluster of three masters (and optionally a replica each) on
 * loopback, for the locator's tests and bench:fleet: `redis-server
 * --cluster-enabled yes` in a temp dir per node, then `redis-cli --cluster
 * create … --cluster-yes`. Nodes can be killed mid-run (SIGKILL) to see what
 * a migration does then. `stop()` kills every node and removes the temp dir;
 * the caller owns it (tests register it with t.after: test/helpers/redis-cluster.ts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { ErrorCode, FlimcdError } from '../src/errors.ts';

export interface RedisClusterRig {
  /** `redis://127.0.0.1:PORT` of every node (masters, then replicas when there are any). */
  urls: string[];
  ports: number[];
  /** Kills master `i` (SIGKILL) and waits for it to exit. */
  kill(i: number): Promise<void>;
  /** `redis-cli` against master `i`. */
  cli(i: number, ...args: string[]): Promise<string>;
  /**
   * Waits until node `i`'s replicas have acknowledged its whole replication
   * stream (every write it took so far). `WAIT` from redis-cli cannot say
   * this: it counts only the writes of its own connection.
   */
  replicated(i: number): Promise<void>;
  /** Kills every node and removes their directory. */
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  maxmemoryMb?: number;
  /** One replica per master (6 nodes), so a killed master fails over. */
  replicas?: boolean;
  /** PATH on which redis-server and redis-cli are found (default: this process's). */
  path?: string;
}

/** A port p with p and p + 10000 (the cluster bus) free a moment ago. */
async function clusterPort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const p = 20000 + Math.floor(Math.random() * 20000);
    if ((await portFree(p)) && (await portFree(p + 10000))) return p;
  }
  throw new FlimcdError('no free port pair for a Redis Cluster node', ErrorCode.TEST);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new FlimcdError(`${what} (waited ${ms} ms)`, ErrorCode.TEST);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the cluster; if any step fails, what was started is stopped before the error is thrown. */
export async function startRedisClusterRig(o: RedisClusterOptions = {}): Promise<RedisClusterRig> {
  const env = { ...process.env, PATH: o.path ?? process.env.PATH };
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-redis-'));
  const procs: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    for (const p of procs) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // redis-cli with a time limit; a failed command rejects with its output.
  const redisCli = (args: string[], timeoutMs: number) => new Promise<string>((resolve, reject) => {
    const child = execFile('redis-cli', args, { env, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new FlimcdError(`redis-cli ${args.join(' ')} failed: ${err.message.trim()} ${stderr.trim()}`, ErrorCode.TEST));
      else resolve(stdout);
    });
    // Nothing to read: redis-cli must not wait on an open stdin.
    child.stdin?.end();
  });
  const cli = (i: number, ...args: string[]) => redisCli(['-p', String(ports[i]), ...args], 20_000);
  const nodes = o.replicas ? 6 : 3;
  try {
    for (let i = 0; i < nodes; i++) {
      const port = await clusterPort();
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir);
      const args = [
        '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'),
        '--cluster-node-timeout', '2000', '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no',
        // A replica's first sync would otherwise wait 5 s for more replicas to join it (Redis 7's default).
        '--repl-diskless-sync-delay', '0',
        ...(o.maxmemoryMb ? ['--maxmemory', `${o.maxmemoryMb}mb`] : []),
      ];
      const p = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'], env });
      p.stderr?.resume();
      await new Promise((resolve, reject) => {
        p.once('spawn', resolve);
        p.once('error', (e) => reject(new FlimcdError(`redis-server could not be started (${e.message}): install redis-server and redis-tools`, ErrorCode.TEST)));
      });
      procs.push(p);
      ports.push(port);
    }
    for (const port of ports) {
      await waitFor(async () => (await redisCli(['-p', String(port), 'ping'], 5000).catch(() => '')).trim() === 'PONG', 10_000, `redis-server on port ${port} did not start`);
    }
    await redisCli(['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), ...(o.replicas ? ['--cluster-replicas', '1'] : []), '--cluster-yes'], 30_000);
    // Every node must agree the cluster is up before a client is handed its address.
    for (let i = 0; i < nodes; i++) {
      await waitFor(async () => (await cli(i, 'cluster', 'info')).includes('cluster_state:ok'), 20_000, `cluster state not ok on port ${ports[i]}`);
    }
    // A master's replica counts only once its first sync is done: until then WAIT answers 0 and a fail-over loses data.
    if (o.replicas) {
      for (let i = 0; i < nodes; i++) {
        await waitFor(async () => {
          const info = await cli(i, 'info', 'replication');
          return info.includes('role:master') ? /slave0:.*state=online/.test(info) : info.includes('master_link_status:up');
        }, 20_000, `replication not in sync on port ${ports[i]}`);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    urls: ports.map((p) => `redis://127.0.0.1:${p}`),
    ports,
    cli,
    async replicated(i) {
      await waitFor(async () => {
        const info = await cli(i, 'info', 'replication');
        const master = Number(/master_repl_offset:(\d+)/.exec(info)?.[1]);
        const acked = [...info.matchAll(/slave\d+:.*offset=(\d+)/g)].map((m) => Number(m[1]));
        return acked.length > 0 && acked.every((o) => o >= master);
      }, 10_000, `replicas of port ${ports[i]} did not catch up`);
    },
    async kill(i) {
      const p = procs[i];
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    },
    stop,
  };
}
