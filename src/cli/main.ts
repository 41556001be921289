import { Command, CommanderError } from 'commander';
import { registerForInvocation } from './command-table.ts';
import { ExitCode, errorLine, exitCodeFor } from './exit-codes.ts';

const program = new Command();
program
  .name('flimcd')
  .description('Live-migrate a running VM disk across a slow, far WAN link (hybrid pre-copy/post-copy with dedup and prefetch).')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

try {
  // Only the invoked command's module is loaded (`flimcd help CMD` names it second).
  const args = process.argv.slice(2);
  await registerForInvocation(program, args[0] === 'help' ? args[1] : args[0]);
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here with exitCode 0.
    process.exitCode = err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  } else {
    process.stderr.write(errorLine(err) + '\n');
    process.exitCode = exitCodeFor(err);
  }
}
