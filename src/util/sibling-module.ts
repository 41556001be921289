/**
 * The URL of a module next to the calling one, with the caller's own extension:
 * `x.ts` when running the sources through tsx, `x.js` in the compiled dist/.
 * For what tsc cannot rewrite because it is not an import: a worker_threads
 * entry (`new Worker(siblingModule(import.meta.url, './hash-worker'))`), a
 * child process's script. A worker started from a .ts file also needs tsx's
 * loader in its execArgv; `needsTsLoader` says when.
 */
export function siblingModule(callerUrl: string, relativeWithoutExtension: string): URL {
  const ext = /\.[cm]?ts$/.test(new URL(callerUrl).pathname) ? '.ts' : '.js';
  return new URL(`${relativeWithoutExtension}${ext}`, callerUrl);
}

/** True when `moduleUrl` is TypeScript (the sources through tsx), so a worker running it needs `--import tsx`. */
export function needsTsLoader(moduleUrl: URL): boolean {
  return moduleUrl.pathname.endsWith('.ts');
}
