import { exitCodeForSignal } from './exit-codes.ts';

/**
 * Runs `handler` once on the first SIGINT or SIGTERM. A second signal while it
 * runs exits at once (the operator insists), with that signal's exit code.
 */
export function onShutdownSignal(handler: (signal: NodeJS.Signals) => Promise<void> | void): void {
  let started = false;
  const on = (signal: NodeJS.Signals) => {
    if (started) {
      process.stderr.write(`flimcd: second ${signal}, exiting now\n`);
      process.exit(exitCodeForSignal(signal));
    }
    started = true;
    Promise.resolve(handler(signal)).then(
      () => {
        process.off('SIGINT', on);
        process.off('SIGTERM', on);
      },
      (e) => {
        process.stderr.write(`flimcd: error during shutdown: ${(e as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
}
