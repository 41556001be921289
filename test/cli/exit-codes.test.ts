// Exit codes as the README's table gives them, for every command that takes an
// image and for the other bad inputs an operator meets: 2 for bad input (a
// missing file, a directory, a non-regular file, an empty or ragged image,
// EACCES, an unknown image in `index rm`, a unitless rate or duration), 1 for a
// runtime failure only. Bad input is caught before anything starts, so most
// rows run the commands in this process; a few spawn the real CLI to show
// what the operator sees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Command, CommanderError } from 'commander';
import { registerCommands } from '../../src/cli/commands/index.ts';
import { ExitCode, errorLine, exitCodeFor } from '../../src/cli/exit-codes.ts';
import { flimcd, FLIMCD_BIN } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Runs one flimcd command line in this process; its exit code and error line as main.ts gives them. */
async function run(args: string[]): Promise<{ code: number; line: string }> {
  const program = new Command().exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  registerCommands(program);
  try {
    await program.parseAsync(['node', 'flimcd', ...args]);
    return { code: ExitCode.OK, line: '' };
  } catch (e) {
    if (e instanceof CommanderError) return { code: e.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE, line: e.message };
    return { code: exitCodeFor(e), line: errorLine(e) };
  }
}

/** The bad images every command must refuse, each with the words that name its fault. */
function badImages(dir: string): Array<[string, string, RegExp]> {
  const fifo = join(dir, 'fifo.img');
  execFileSync('mkfifo', [fifo]);
  mkdirSync(join(dir, 'dir.img'));
  writeFileSync(join(dir, 'empty.img'), '');
  writeFileSync(join(dir, 'ragged.img'), Buffer.alloc(1000));
  return [
    ['missing', join(dir, 'missing.img'), /does not exist/],
    ['a directory', join(dir, 'dir.img'), /is a directory/],
    ['a FIFO', fifo, /is not a regular file or block device \(a FIFO\)/],
    ['empty', join(dir, 'empty.img'), /is empty/],
    ['1000 bytes', join(dir, 'ragged.img'), /1000 bytes, not a whole number of 512-byte sectors/],
  ];
}

test('every command that takes an image refuses a bad one with exit 2, naming the path and the fault', async (t) => {
  const dir = tempDir(t);
  const good = join(dir, 'good.img');
  writeFileSync(good, Buffer.alloc(1 << 20, 7));
  const commands: Array<[string, (image: string) => string[]]> = [
    ['export', (im) => ['export', '--image', im, '--listen', `unix:${join(dir, 'e.sock')}`]],
    ['source', (im) => ['source', '--insecure', '--image', im, '--to', 'tcp:127.0.0.1:1', '--nbd', `unix:${join(dir, 's.sock')}`]],
    ['target', (im) => ['target', '--insecure', '--image', im, '--listen', 'tcp:127.0.0.1:0', '--nbd', `unix:${join(dir, 't.sock')}`]],
    ['index add', (im) => ['index', 'add', '--index', join(dir, 'ix'), im]],
    ['plan', (im) => ['plan', '--image', im, '--workload', 'light']],
    ['plan --target-image', (im) => ['plan', '--image', good, '--target-image', im, '--workload', 'light']],
    ['simulate', (im) => ['simulate', '--image', im, '--workload', 'light']],
  ];
  for (const [what, image, fault] of badImages(dir)) {
    for (const [name, args] of commands) {
      // The target creates a missing image: that one is not bad input there.
      if (name === 'target' && what === 'missing') continue;
      const r = await run(args(image));
      assert.equal(r.code, ExitCode.USAGE, `${name} with ${what}: ${r.line}`);
      assert.match(r.line, fault, `${name} with ${what}`);
      assert.ok(r.line.includes(image), `${name} with ${what} names the path: ${r.line}`);
      assert.doesNotMatch(r.line, /\n\s+at /, 'no stack trace');
    }
  }
});

test('other bad input is exit 2 too: unitless rates and durations, an unknown image in index rm, a mistyped --index', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'a.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 1));
  assert.equal((await run(['index', 'add', '--index', join(dir, 'ix'), '--block-size', '64KiB', img])).code, ExitCode.OK);
  const rows: Array<[string[], RegExp]> = [
    [['simulate', '--workload', 'light', '--image-size', '64MiB', '--bandwidth', '100M'], /--bandwidth: "100M" is ambiguous: write 100Mbit .* or 100MB\/s/],
    [['simulate', '--workload', 'light', '--image-size', '64MiB', '--rtt', '50'], /--rtt: "50" has no unit/],
    [['plan', '--image', img, '--workload', 'light', '--watch', '5'], /--watch: "5" has no unit/],
    [['index', 'rm', '--index', join(dir, 'ix'), join(dir, 'other.img')], /other\.img is not in the index/],
    [['index', 'ls', '--index', join(dir, 'TYPO')], /--index: .*TYPO does not exist/],
    [['index', 'rm', '--index', join(dir, 'TYPO2'), img], /--index: .*TYPO2 does not exist/],
    [['index', 'add', '--index', join(dir, 'ix')], /name at least one image/],
    [['source', '--image', img, '--to', 'tcp:127.0.0.1:1'], /the link needs credentials/],
    [['simulate', '--workload', 'light', '--no-such-option'], /unknown option/],
  ];
  for (const [args, expected] of rows) {
    const r = await run(args);
    assert.equal(r.code, ExitCode.USAGE, `${args.join(' ')}: ${r.line}`);
    assert.match(r.line, expected, args.join(' '));
  }
  // No side effects: a mistyped index directory is not created.
  assert.equal(existsSync(join(dir, 'TYPO')), false);
  assert.equal(existsSync(join(dir, 'TYPO2')), false);
  // `index rm` of an unknown image removes nothing, the known one included.
  const ls = await flimcd(['index', 'ls', '--index', join(dir, 'ix'), '--json']);
  assert.equal(ls.code, 0);
  assert.equal(JSON.parse(ls.stdout).length, 1);
});

test('the CLI itself: a directory or a tiny image for simulate and plan is one line on stderr, exit 2, no stack trace', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'images'));
  writeFileSync(join(dir, 'tiny.img'), Buffer.alloc(100));
  for (const args of [
    ['simulate', '--workload', 'light', '--image', join(dir, 'images')],
    ['plan', '--workload', 'light', '--image', join(dir, 'tiny.img')],
  ]) {
    const r = await flimcd(args);
    assert.equal(r.code, ExitCode.USAGE, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^flimcd: --image: /);
    assert.doesNotMatch(r.stderr, /\n\s+at |unexpected error/);
  }
});

test('an image the user may not read is bad input (exit 2), not a runtime failure', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const img = join(dir, 'locked.img');
  writeFileSync(img, Buffer.alloc(1 << 20));
  chmodSync(img, 0o600);
  // Root reads everything: run the CLI as nobody then; otherwise take the owner's permission away.
  const asRoot = process.getuid?.() === 0;
  if (!asRoot) chmodSync(img, 0o000);
  for (const args of [['simulate', '--workload', 'light', '--image', img], ['export', '--image', img, '--listen', `unix:${join(dir, 'e.sock')}`]]) {
    const child = spawn(process.execPath, [FLIMCD_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, ExitCode.USAGE, stderr);
    assert.match(stderr, /locked\.img cannot be (read|read and written) \(EACCES\)/);
  }
});
