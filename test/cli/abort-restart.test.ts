// Issue 21: an operator's abort ends the migration for good. `flimcd abort` answers once the source
// agent has wound the migration down (idle right away, no polling), and the state dir records the
// abort: a source agent restarted with the same arguments starts a new migration, it does not resume
// the aborted session. (A kill -9 still resumes: test/migrate/resume-crash.test.ts.) Agents are
// child processes; no VM is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { flimcd, flimcdWatched, type WatchedFlimcd } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';
import { until } from '../helpers/until.ts';
import { controlRequest } from '../../src/control/client.ts';
import { parseAddress } from '../../src/util/address.ts';
import { generateImage } from '../../src/workload/image-gen.ts';

async function seen(p: WatchedFlimcd, re: RegExp, ms = 30_000): Promise<void> {
  try {
    await until(() => p.seen(re), ms, `${re} not seen`);
  } catch (e) {
    assert.fail(`${(e as Error).message}\n${p.output()}`);
  }
}

/** The session the target accepted (its log line). */
function acceptedSession(target: WatchedFlimcd): string {
  const m = /"session":"([0-9a-f]+)"[^\n]*"msg":"migration accepted"/.exec(target.output());
  assert.ok(m, `no accepted session\n${target.output()}`);
  return m[1]!;
}

test('abort answers with the source idle; the state records the abort, and a restarted source starts a new migration instead of resuming it', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'vm.img');
  await generateImage(img, 4 << 20, { seed: 21 });
  const link = join(dir, 'link.sock');
  const ctl = `unix:${join(dir, 'src.ctl')}`;
  const ctlAddr = parseAddress(ctl, '--control');
  const status = () => controlRequest<Record<string, unknown>>(ctlAddr, 'GET', '/status', undefined, { timeoutMs: 5000 });
  const sourceArgs = ['source', '--insecure', '--image', img, '--to', `unix:${link}`, '--nbd', `unix:${join(dir, 'src.sock')}`, '--control', ctl, '--manual-cutover', '--keep-serving', '--json'];
  const target = (n: number) => flimcdWatched(t, ['target', '--insecure', '--image', join(dir, `dst${n}.img`), '--listen', `unix:${link}`, '--nbd', `unix:${join(dir, 'dst.sock')}`, '--json']);

  const t1 = target(1);
  await seen(t1, /"event":"listening"/);
  let source = flimcdWatched(t, sourceArgs);
  await seen(source, /"phase":"precopy"|"msg":"migration accepted"/);
  await seen(t1, /"msg":"migration accepted"/);
  const aborted = acceptedSession(t1);

  const a = await flimcd(['abort', '--control', ctl, '--reason', 'rollback']);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /abort accepted by the agent at .* \(reason: rollback\); it is idle now: nothing migrates/);
  // Answered after the wind-down: idle at once, not a moment later.
  const st = await status();
  assert.equal(st.phase, 'idle', JSON.stringify(st));
  assert.match(String((st.lastMigration as { reason: string }).reason), /rollback/);
  const state = JSON.parse(readFileSync(join(`${img}.flimcd`, 'source.json'), 'utf8')) as { session: string; ended?: { reason: string } };
  assert.equal(state.session, aborted);
  assert.match(state.ended?.reason ?? '', /rollback/, 'the state dir records that the migration was aborted');

  // The operator stops the idle source and, later, starts it again with the same arguments and a new target.
  source.child.kill('SIGTERM');
  const stopped = await source.exited;
  assert.match(stopped.stdout, /"event":"interrupted".*"resumable":false/, 'it does not promise a resume of the aborted migration');
  if (t1.running()) t1.child.kill('SIGTERM');
  await t1.exited;
  const t2 = target(2);
  await seen(t2, /"event":"listening"/);
  source = flimcdWatched(t, sourceArgs);
  await seen(source, /"msg":"the migration in the state dir was aborted: not resuming it; starting a new migration"/);
  await seen(t2, /"msg":"migration accepted"/);
  assert.notEqual(acceptedSession(t2), aborted, 'a new session, not the aborted one');
  assert.doesNotMatch(source.output(), /resuming the session/);
  await controlRequest(ctlAddr, 'POST', '/cutover', {}, { timeoutMs: 5000 });
  const end = await source.exited;
  assert.equal(end.code, 0, source.output());
  const report = JSON.parse(end.stdout.split('\n').find((l) => l.includes('"event":"report"'))!) as { verified: boolean; resumes: { sessions?: number } };
  assert.equal(report.verified, true);
  assert.equal(report.resumes.sessions, undefined, 'one session: nothing of the aborted migration folded in');
  t2.child.kill('SIGTERM');
  await t2.exited;
});
