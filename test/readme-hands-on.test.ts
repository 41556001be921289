// README's hands-on section is commands people paste into four terminals: each
// `flimcd` line there must name a real command with options it takes (parsed by
// the real command definitions, their actions replaced), and the steps before
// them must make what the agents are given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { registerCommands } from '../src/cli/commands/index.ts';

const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

/** The shell lines of the "## Hands-on" section's sh blocks. */
function handsOnLines(): string[] {
  const start = README.indexOf('\n## Hands-on');
  assert.ok(start >= 0, 'README.md has a "## Hands-on" section');
  const end = README.indexOf('\n## ', start + 1);
  const section = README.slice(start, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n')).map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
}

/** Splits a shell line on spaces (the hands-on lines use no quoting) and drops a trailing `&& …`. */
const words = (line: string) => line.split(/\s+/);

/** Every command and subcommand with its action replaced: parsing checks the command, its options and required options, nothing runs. */
function dryProgram(): { program: Command; ran: string[] } {
  const ran: string[] = [];
  const program = new Command().exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
  registerCommands(program);
  const stub = (c: Command) => {
    c.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
    // Hooks (--quiet/--verbose) still run: they check their flags too.
    if (c.commands.length === 0) c.action(() => { ran.push(c.name()); });
    c.commands.forEach(stub);
  };
  program.commands.forEach(stub);
  return { program, ran };
}

test('every flimcd line of the README hands-on section parses with the real command definitions', async () => {
  const lines = handsOnLines();
  const flimcdLines = lines.filter((l) => l.startsWith('flimcd '));
  assert.ok(flimcdLines.length >= 6, `target, wan, source, load, status and certs are there (found ${flimcdLines.length})`);
  for (const cmd of ['target', 'wan', 'source', 'load', 'status', 'certs']) assert.ok(flimcdLines.some((l) => l.startsWith(`flimcd ${cmd} `)), `flimcd ${cmd}`);
  for (const line of flimcdLines) {
    const { program, ran } = dryProgram();
    try {
      await program.parseAsync(['node', ...words(line)]);
    } catch (e) {
      assert.fail(`${line}\n  ${e instanceof CommanderError ? e.message : String(e)}`);
    }
    assert.equal(ran.length, 1, line);
  }
});

test('the hands-on pieces fit together: the source dials the WAN, the WAN the target, load follows the VM from one export to the other', () => {
  const lines = handsOnLines();
  const opt = (cmd: string, name: string) => {
    const w = words(lines.find((l) => l.startsWith(`flimcd ${cmd} `)) ?? '');
    const i = w.indexOf(name);
    assert.ok(i > 0, `flimcd ${cmd} ${name}`);
    return w[i + 1]!;
  };
  assert.equal(opt('source', '--to'), opt('wan', '--listen'));
  assert.equal(opt('wan', '--to'), opt('target', '--listen'));
  assert.equal(opt('load', '--nbd'), opt('source', '--nbd'));
  assert.equal(opt('load', '--then'), opt('target', '--nbd'));
  assert.equal(opt('source', '--psk-file'), opt('target', '--psk-file'));
  assert.ok(lines.some((l) => l.includes(`--psk ${opt('source', '--psk-file')}`)), 'the key file is made');
  assert.ok(lines.some((l) => /\bmke2fs\b.*\bvm\.img\b/.test(l)) && opt('source', '--image') === 'vm.img', 'the test image is made');
  const controls = lines.filter((l) => l.startsWith('flimcd status ')).map((l) => words(l)[3]);
  assert.deepEqual(controls.sort(), [opt('source', '--control'), opt('target', '--control')].sort());
});
