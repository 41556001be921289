// The agents as an operator runs them: four processes (target, wan, source,
// load), the VM workload moving from the source export to the target's at
// cut-over, `flimcd status` on the control endpoint mid-way, and a verified end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { parseFiuTrace } from '../../src/workload/fiu-trace.ts';
import { readTraceText } from '../../src/workload/trace-recorder.ts';
import { flimcd, flimcdBackground, flimcdSpawn } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

test('source, target, wan and load as separate processes: live migration verified, workload verified', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 32 * 1024 * 1024, { seed: 5 });
  const kids: Array<{ kill: (s?: NodeJS.Signals) => boolean }> = [];
  t.after(() => { for (const k of kids) k.kill('SIGKILL'); });

  // The link is TLS with mutual certificate authentication, credentials from `flimcd certs`.
  const pki = join(dir, 'pki');
  assert.equal((await flimcd(['certs', '--out', pki])).code, 0);
  const tls = (role: string) => ['--tls-ca', join(pki, 'ca.crt'), '--tls-cert', join(pki, `${role}.crt`), '--tls-key', join(pki, `${role}.key`)];
  const target = await flimcdBackground(['target', ...tls('target'), '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--json'], /"event":"listening"/);
  kids.push(target.child);
  const targetAddr = JSON.parse(target.line).listen as string;
  const wan = await flimcdBackground(['wan', '--listen', 'tcp:127.0.0.1:0', '--to', targetAddr, '--bandwidth', '40Mbit', '--rtt', '10ms', '--json'], /"event":"listening"/);
  kids.push(wan.child);
  const wanEvent = JSON.parse(wan.line);
  const wanAddr = (wanEvent.listen ?? wanEvent.address) as string;
  assert.match(wanAddr, /^tcp:127\.0\.0\.1:\d+$/);
  const ctl = `unix:${join(dir, 'ctl.sock')}`;
  const source = await flimcdBackground(['source', ...tls('source'), '--image', src, '--to', wanAddr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--bandwidth', '40Mbit', '--control', ctl, '--record-trace', join(dir, 'src.fiu.gz'), '--json'], /"event":"listening"/);
  kids.push(source.child);
  const load = flimcdSpawn(['load', '--nbd', `unix:${join(dir, 'src.sock')}`, '--then', `unix:${join(dir, 'dst.sock')}`, '--profile', 'moderate', '--bandwidth', '40Mbit', '--duration', '120s', '--json', '--final-verify', '--verify-base', src]);
  kids.push(load.child);
  // Mid-way: with compression 32 MiB of generated content takes only a few seconds at 40 Mbit/s.
  await new Promise((r) => setTimeout(r, 300));

  const st = await flimcd(['status', '--control', ctl, '--json']);
  assert.equal(st.code, 0, st.stderr);
  const status = JSON.parse(st.stdout);
  assert.equal(status.role, 'source');
  assert.ok(['starting', 'precopy', 'cutover', 'postcopy', 'verify', 'done'].includes(status.phase), status.phase);

  const srcDone = await source.exited;
  assert.equal(srcDone.code, 0, srcDone.stderr.slice(-2000));
  const reportLine = srcDone.stdout.split('\n').find((l) => l.includes('"event":"report"'))!;
  const report = JSON.parse(reportLine);
  assert.equal(report.verified, true);
  assert.ok(report.time_total_s > 0);
  // flimcd compresses: more than half the image's blocks moved, in fewer bytes on the wire.
  assert.ok(report.compression.raw_bytes > 16 * 1024 * 1024, JSON.stringify(report.compression));
  assert.ok(report.wire_bytes >= report.compression.wire_bytes && report.compression.wire_bytes < report.compression.raw_bytes);
  for (const k of ['algorithm', 'image_bytes', 'block_size', 'merkle_root', 'time_precopy_s', 'time_postcopy_s', 'downtime_ms', 'wire_bytes_breakdown', 'blocks', 'block_miss_rate', 'miss_latency_ms', 'link']) {
    assert.ok(k in report, `report has ${k}`);
  }
  // flimcd has both optimizations on unless switched off (--no-prefetch, --no-hot-order), and the target took part.
  assert.deepEqual(report.features, { hot_order: true, prefetch: true });
  for (const k of ['misses', 'prefetch_hits', 'prefetch_wasted_bytes', 'prefetch_requested']) assert.equal(typeof report[k], 'number', k);
  // --record-trace: the VM's requests at the source until the cut-over, readable by the replay. How many
  // depends on how soon the load starts on a busy machine (export.test.ts checks the content of a trace).
  const traceEvent = JSON.parse(srcDone.stdout.split('\n').find((l) => l.includes('"event":"trace"'))!);
  assert.equal(traceEvent.dropped, 0, JSON.stringify(traceEvent));
  const records = [...parseFiuTrace(readTraceText(join(dir, 'src.fiu.gz')))];
  assert.equal(records.length, traceEvent.recorded);
  assert.ok(records.every((r) => (r.lba + r.sectors) * 512 <= 32 * 1024 * 1024));
  // The VM keeps running at the target: stop it first, then the target's export.
  load.child.kill('SIGINT');
  const ld = await load.exited;
  assert.equal(ld.code, 0, ld.stderr.slice(-2000));
  const lr = JSON.parse(ld.stdout.trim().split('\n').at(-1)!);
  assert.ok(lr.switchOver ?? lr.switch_over, 'the workload moved to the target');
  assert.equal(lr.verify.mismatches, 0);
  target.child.kill('SIGTERM');
  const tgt = await target.exited;
  assert.equal(tgt.code, 143, tgt.stderr.slice(-2000));
  assert.match(tgt.stdout, /"event":"result","verified":true/);
  wan.child.kill('SIGTERM');
  await wan.exited;
});
