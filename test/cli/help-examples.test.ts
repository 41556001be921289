// The help's examples are what operators paste: the agents in `vm migrate --help`
// carry the link credentials they refuse to start without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command, CommanderError } from 'commander';
import { registerCommands } from '../../src/cli/commands/index.ts';

function helpOf(args: string[]): string {
  let out = '';
  const program = new Command().exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
  registerCommands(program);
  for (const c of program.commands) c.configureOutput({ writeOut: (s) => (out += s), writeErr: () => {} });
  try {
    program.parse(['node', 'flimcd', ...args, '--help']);
  } catch (e) {
    if (!(e instanceof CommanderError) || e.exitCode !== 0) throw e;
  }
  return out;
}

test('vm migrate --help: the target and source agents in the example carry link credentials', () => {
  const help = helpOf(['vm', 'migrate']);
  // Continuation lines ("\" then the next line) belong to their command.
  const commands = help.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => /^flimcd (source|target) /.test(l));
  assert.equal(commands.length, 2, help);
  for (const c of commands) assert.match(c, /--psk-file \S+|--tls-ca \S+ --tls-cert \S+ --tls-key \S+/, c);
  assert.match(help, /flimcd certs --psk/);
});
