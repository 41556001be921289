// What an operator sees from the agents (issue 21, "An operator's CLI"): on a
// terminal one human line per log event, printed above the progress bar and
// never glued onto it; off a terminal (or with --log-format json) JSON lines;
// --quiet and --verbose. Progress that agrees with itself: nothing "left" when
// done, a cut-over log that says what travels in post-copy, and a target that
// reports progress in every phase. The terminal is a real pseudo-terminal
// (util-linux `script`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { generateImage } from '../../src/workload/image-gen.ts';
import { FLIMCD_BIN, flimcd, flimcdBackground } from '../helpers/cli.ts';
import { PEER_PATH, requirePeers } from '../helpers/peers.ts';
import { tempDir } from '../helpers/tmp.ts';

const INFO = { FLIMCD_LOG_LEVEL: 'info' };
/** The target's start-up line on stdout, whatever the log level. */
const WAITING = /flimcd target: waiting for the source at/;
/** A text log line: "12:04:05.123 INFO  message key=value". */
const TEXT_LOG = /^\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /;
const TEXT_LOG_ANYWHERE = /\d\d:\d\d:\d\d\.\d{3} (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) /;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

/** Runs flimcd on a pseudo-terminal (stdout and stderr both the terminal); once its output matches `until`, it gets SIGTERM. */
function flimcdInPty(args: string[], opts: { until?: RegExp; timeoutMs?: number } = {}): Promise<{ code: number | null; output: string }> {
  const cmd = [process.execPath, FLIMCD_BIN, ...args].map(quote).join(' ');
  const line = `exec ${cmd}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', line, '/dev/null'], { env: { ...process.env, PATH: PEER_PATH, ...INFO, COLUMNS: '160' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let stopping = false;
    const take = (d: string) => {
      output += d;
      if (opts.until && !stopping && opts.until.test(output)) {
        stopping = true;
        // A moment for the rest of the start-up output, then stop it (script passes SIGTERM on).
        setTimeout(() => child.kill('SIGTERM'), 300);
      }
    };
    child.stdout.setEncoding('utf8').on('data', take);
    child.stderr.setEncoding('utf8').on('data', take);
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`flimcd ${args.join(' ')} on a pty: no exit in time\n${output}`)); }, opts.timeoutMs ?? 60_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }); });
  });
}

/** The terminal's text as lines a person reads: split at newlines and carriage returns, escape codes dropped. */
// Moving the cursor to the first column or clearing the line starts a new one on screen.
// eslint-disable-next-line no-control-regex
const screenSegments = (output: string) => stripAnsi(output.replace(/\x1b\[(\d*G|2K|\d*A)/g, '\n')).split(/\r\n|\n|\r/).filter((l) => l.trim() !== '');

test('off a terminal the agents log JSON lines on stderr; on one, one text line per event; --log-format json and --quiet are obeyed', async (t) => {
  if (!requirePeers(t, 'script')) return;
  const dir = tempDir(t);
  const target = (n: number) => ['target', '--insecure', '--image', join(dir, `t${n}.img`), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, `t${n}.sock`)}`];

  // Not a terminal: JSON lines, each a pino object.
  const piped = await flimcdBackground(target(1), /waiting for the source/, { env: INFO });
  piped.child.kill('SIGINT');
  const r1 = await piped.exited;
  const lines = r1.stderr.split('\n').filter((l) => l.trim());
  assert.ok(lines.some((l) => /target agent waiting for the source/.test(l)), r1.stderr);
  // Every line, the progress's phase lines included, is a JSON log event.
  for (const l of lines) assert.equal(typeof (JSON.parse(l) as { level: unknown }).level, 'number', l);
  const phase = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((o) => o.event === 'phase');
  assert.equal(phase?.phase, 'waiting', r1.stderr);

  // A terminal: text lines at the start of a line, no JSON.
  const tty = await flimcdInPty(target(2), { until: WAITING });
  const segs = screenSegments(tty.output);
  const waiting = segs.find((s) => /target agent waiting for the source/.test(s));
  assert.ok(waiting, tty.output);
  assert.match(waiting, TEXT_LOG);
  assert.match(waiting, / listen=tcp:127\.0\.0\.1:\d+/);
  assert.doesNotMatch(tty.output, /"level":/);
  // The agent's own lines (stdout, the same terminal) are not glued onto the bar either.
  assert.ok(segs.some((s) => /^flimcd target: waiting for the source at /.test(s)), tty.output);

  // A terminal, JSON asked for.
  const json = await flimcdInPty([...target(3), '--log-format', 'json'], { until: WAITING });
  assert.match(json.output, /\{"level":30,.*"msg":"target agent waiting for the source"/);

  // --quiet: warnings and errors only.
  const quiet = await flimcdInPty([...target(4), '--quiet'], { until: WAITING });
  assert.doesNotMatch(quiet.output, /INFO {2}|target agent waiting/);
  assert.match(quiet.output, /WARN {2}link is plaintext/);

  // Contradicting flags are bad input.
  const both = await flimcd([...target(5), '--quiet', '--verbose']);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /--quiet and --verbose/);
});

test('a migration on a terminal: log lines print above the progress bar, never on its line', async (t) => {
  if (!requirePeers(t, 'script')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 16 * 1024 * 1024, { seed: 3 });
  const target = await flimcdBackground(['target', '--insecure', '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--exit-when-done', '--json'], /"event":"listening"/);
  t.after(() => { target.child.kill('SIGKILL'); });
  const targetAddr = JSON.parse(target.line).listen as string;
  // A slow link keeps the bar on screen while pre-copy rounds and the cut-over log.
  const wan = await flimcdBackground(['wan', '--listen', 'tcp:127.0.0.1:0', '--to', targetAddr, '--bandwidth', '24Mbit', '--rtt', '4ms', '--json'], /"event":"listening"/);
  t.after(() => { wan.child.kill('SIGKILL'); });
  const wanEvent = JSON.parse(wan.line);
  const r = await flimcdInPty(['source', '--insecure', '--image', src, '--to', (wanEvent.listen ?? wanEvent.address) as string, '--nbd', `unix:${join(dir, 'src.sock')}`, '--no-compress'], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.output.slice(-3000));
  const segs = screenSegments(r.output);
  const bar = segs.filter((s) => /flimcd source \w+ \|/.test(s));
  assert.ok(bar.length > 0, `the bar was drawn:\n${r.output.slice(-3000)}`);
  const logs = segs.filter((s) => TEXT_LOG_ANYWHERE.test(s));
  assert.ok(logs.some((s) => /cut-over/.test(s)), `log lines were printed:\n${segs.join('\n')}`);
  for (const s of logs) assert.match(s, TEXT_LOG, `a log line glued onto something else: ${JSON.stringify(s)}`);
  assert.doesNotMatch(r.output, /"level":/);
});

test('progress agrees with itself: nothing left when done, the cut-over log names what travels in post-copy, the target reports progress in every phase', async (t) => {
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  await generateImage(src, 8 * 1024 * 1024, { seed: 4 });
  const target = await flimcdBackground(['target', '--insecure', '--image', join(dir, 'dst.img'), '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 'dst.sock')}`, '--exit-when-done', '--json'], /"event":"listening"/, { env: INFO });
  t.after(() => { target.child.kill('SIGKILL'); });
  const targetAddr = JSON.parse(target.line).listen as string;
  // Post-copy: every block is still missing at the hand-off, so a stale count shows.
  const r = await flimcd(['source', '--insecure', '--image', src, '--to', targetAddr, '--nbd', `unix:${join(dir, 'src.sock')}`, '--algorithm', 'postcopy', '--json'], { env: INFO, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const done = events.find((e) => e.event === 'phase' && e.phase === 'done');
  assert.ok(done, r.stdout);
  assert.equal(done.progress, 1);
  assert.equal(done.remainingBlocks, 0, `done with blocks "left": ${JSON.stringify(done)}`);

  const logs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const cut = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('cut-over: VM I/O held'));
  assert.ok(cut, r.stderr);
  assert.ok((cut.missingBlocks as number) > 0, JSON.stringify(cut));
  assert.match(cut.msg as string, new RegExp(`${cut.missingBlocks as number} blocks \\(.+\\) still missing at the target travel in post-copy`));
  assert.doesNotMatch(r.stderr, /remaining 0 bytes/);

  const t1 = await target.exited;
  assert.equal(t1.code, 0, t1.stderr.slice(-2000));
  const phases = t1.stdout.split('\n').filter((l) => l.includes('"event":"phase"')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(phases.length >= 2, t1.stdout);
  for (const p of phases) assert.equal(typeof p.progress, 'number', `target phase ${String(p.phase)} without progress: ${JSON.stringify(p)}`);
});
