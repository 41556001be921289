/**
 * Resolves once `cond` holds, polling every few ms; throws `what` (or a
 * generic message) when it has not held within `timeoutMs`. For waits on
 * real time (sockets, agents): tests on a virtual clock step the clock instead.
 */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition not reached in time'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} (waited ${timeoutMs} ms)`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
