import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.ts';
import { ExitCode } from './exit-codes.ts';
import { ErrorCode, FlimcdError, UsageError } from '../errors.ts';

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
  } else if (err instanceof UsageError) {
    process.stderr.write(`flimcd: ${err.message}\n`);
    process.exitCode = ExitCode.USAGE;
  } else if (err instanceof FlimcdError && err.code === ErrorCode.ALREADY_DONE) {
    process.stderr.write(`flimcd: ${err.message}\n`);
    process.exitCode = ExitCode.OK;
  } else if (err instanceof FlimcdError) {
    process.stderr.write(`flimcd: ${err.message} [${err.code}]\n`);
    process.exitCode = err.code === ErrorCode.LINK_LOST ? ExitCode.LINK_LOST : ExitCode.FAILURE;
  } else {
    process.stderr.write(`flimcd: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = ExitCode.FAILURE;
  }
}
