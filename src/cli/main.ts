import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.ts';
import { ExitCode, errorLine, exitCodeFor } from './exit-codes.ts';

const program = new Command();
program
  .name('flimcd')
  .description('Live-migrate a running VM disk across a slow, far WAN link (hybrid pre-copy/post-copy with dedup and prefetch).')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerCommands(program);

try {
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
