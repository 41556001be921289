// The fleet fault tests' rig: a 4-VM fleet (testing/fleet/fleet-rig.ts) on a real
// Redis Cluster with a fault hook, checked verified and byte-exact, its warnings kept.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startRedisCluster } from './redis-cluster.ts';
import { tempDir } from './tmp.ts';
import { runFleetRig, type FleetRigHandles, type FleetRigOptions, type FleetRigResult } from '../../testing/fleet/fleet-rig.ts';
import { contentId } from '../../src/content/content-id.ts';

export const SIZE = 4 << 20;
export const BS = 64 * 1024;

/** A logger that keeps its warnings (and worse). */
function recordingLog() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({ write(chunk: Buffer, _e, cb) { const l = JSON.parse(chunk.toString()) as { level: number; msg: string }; if (l.level >= 40) lines.push(l); cb(); } });
  return { log: pino({ level: 'warn' }, stream), warnings: () => lines.map((l) => l.msg) };
}

export type Cluster = NonNullable<Awaited<ReturnType<typeof startRedisCluster>>>;

export async function faultyFleet(t: TestContext, faults: (rc: Cluster) => FleetRigOptions['faults']): Promise<{ r: FleetRigResult; warnings: string[] } | undefined> {
  const rc = await startRedisCluster(t);
  if (!rc) return undefined;
  const rec = recordingLog();
  const r = await runFleetRig({ dir: tempDir(t), redisUrls: rc.urls, mode: 'fleet', log: rec.log, vms: 4, imageBytes: SIZE, capBps: 10e6, faults: faults(rc) });
  t.diagnostic(`WAN data ${r.wanData} B over bound ${r.bound} B = ${(r.wanData / r.bound).toFixed(3)}; LAN blocks ${r.lanBlocks}; claims ${JSON.stringify(r.claims)}; makespan ${r.makespanS.toFixed(1)} s`);
  assert.equal(r.result.ok, true, JSON.stringify(r.result.rows.map((row) => [row.name, row.phase, row.error])));
  for (const row of r.result.rows) assert.equal(row.report?.verified, true, `${row.name} verified`);
  assert.equal(r.mismatches, 0, 'every read during the run and every byte of every target as the VM wrote it');
  return { r, warnings: rec.warnings() };
}

export const sum = (r: FleetRigResult, f: (c: FleetRigResult['claims'][number]) => number) => r.claims.reduce((s, c) => s + f(c), 0);
export const templateIds = (h: FleetRigHandles, t: number) => Array.from({ length: SIZE / BS }, (_, b) => contentId(h.templates[t]!.subarray(b * BS, (b + 1) * BS)));
