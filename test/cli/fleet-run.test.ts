// `flimcd fleet run` and `flimcd fleet status` as an operator runs them: a bad
// plan is refused with exit 2 naming the line and field; a real run of two VMs
// to two target agents prints JSON events, answers `fleet status` and Prometheus
// scrapes while it runs, and exits 0 with both VMs verified and byte-exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { flimcd, flimcdBackground } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { generateImage } from '../../src/workload/image-gen.ts';
import { TargetAgent } from '../../src/migrate/target-agent.ts';
import { readPskFile } from '../../src/cli/security-options.ts';
import { formatAddress } from '../../src/util/address.ts';
import { controlRequest } from '../../src/control/client.ts';
import { until } from '../helpers/until.ts';
import { log } from '../../src/util/log.ts';

test('a bad fleet plan is refused with exit 2, naming the line and the field', async (t) => {
  const dir = tempDir(t);
  const plan = join(dir, 'plan.yaml');
  writeFileSync(plan, 'wan_cap: 100Mbit\nvms:\n  - name: a\n    image: /nonexistent.img\n    target: 10.0.0.1:7000\n');
  const r = await flimcd(['fleet', 'run', plan, '--insecure']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /fleet plan .*plan\.yaml: line 5: vms\[0\]\.target: "10\.0\.0\.1:7000" must start with unix: or tcp:/);
  const missing = await flimcd(['fleet', 'run', join(dir, 'none.yaml'), '--insecure']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /fleet plan .*none\.yaml: cannot read it: ENOENT/);
});

test('fleet run migrates two VMs, answers fleet status and /metrics while running, and exits 0', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const psk = join(dir, 'link.psk');
  assert.equal((await flimcd(['certs', '--psk', psk])).code, 0);
  const security = readPskFile(psk);
  const vms: string[] = [];
  const images: Array<[string, string]> = [];
  for (const name of ['a', 'b']) {
    const src = join(dir, `${name}.img`);
    await generateImage(src, 4 << 20, { seed: name === 'a' ? 1 : 2 });
    const dst = join(dir, `${name}-dst.img`);
    const target = new TargetAgent({ image: dst, security, listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, nbd: { kind: 'unix', path: join(dir, `${name}-dst.sock`) }, log: log.child({ test: 'fleet-cli', vm: name }) });
    t.after(() => target.close());
    const addr = formatAddress(await target.listen());
    vms.push(`  - name: ${name}\n    image: ${src}\n    target: ${addr}\n    priority: ${name === 'a' ? 1 : 2}`);
    images.push([src, dst]);
  }
  const plan = join(dir, 'plan.yaml');
  // One at a time through a 4 Mbit/s cap: slow enough to be asked while it runs.
  writeFileSync(plan, `concurrency: 1\nwan_cap: 4Mbit\nblock_size: 64KiB\nvms:\n${vms.join('\n')}\n`);
  const ctl = join(dir, 'fleet.ctl');
  const run = await flimcdBackground(['fleet', 'run', plan, '--psk-file', psk, '--dir', dir, '--json', '--control', `unix:${ctl}`], /"event":"vm"/, { timeoutMs: 60_000 });
  t.after(() => run.child.kill('SIGKILL'));
  const [status, metrics] = await Promise.all([
    flimcd(['fleet', 'status', '--control', `unix:${ctl}`]),
    controlRequest<unknown>({ kind: 'unix', path: ctl }, 'GET', '/metrics').catch((e: unknown) => String(e)),
  ]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^VM +TARGET +PHASE +PROGRESS +ETA +RATE +WAN +LAN/);
  assert.match(status.stdout, /\nTOTAL +2 VMs +/);
  assert.match(typeof metrics === 'string' ? metrics : JSON.stringify(metrics), /flimcd_fleet_vm_progress_ratio\{vm="a"\}/);
  const done = await run.exited;
  assert.equal(done.code, 0, done.stderr.slice(-2000));
  const events = done.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; vm?: string; verified?: boolean; phase?: string });
  const reports = events.filter((e) => e.event === 'report');
  assert.deepEqual(reports.map((r) => [r.vm, r.verified]).sort(), [['a', true], ['b', true]]);
  const fleet = events.find((e) => e.event === 'fleet') as { verified: number; vms: number } | undefined;
  assert.deepEqual({ vms: fleet?.vms, verified: fleet?.verified }, { vms: 2, verified: 2 });
  // Shortest first: both are the same size, so the higher priority (b) goes first.
  const starts = events.filter((e) => e.event === 'vm' && e.phase === 'starting').map((e) => e.vm);
  assert.deepEqual(starts, ['b', 'a']);
  await until(() => images.every(([s, d]) => readFileSync(s).equals(readFileSync(d))), 10_000, 'targets byte-exact');
});
