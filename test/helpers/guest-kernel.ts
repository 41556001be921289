/** The test guest's kernel for VM tests: skipped with a reason outside CI when a piece is missing, a failure under CI. */
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { requirePeers } from './peers.ts';
import { ensureGuestKernel, findGuestKernel, BUSYBOX, type GuestKernel } from '../../testing/qemu/guest.ts';

/** The guest kernel, after checking `peers` (qemu-system-x86_64 always) and busybox; undefined when the test was skipped. */
export function guestKernelFor(t: TestContext, ...peers: string[]): GuestKernel | undefined {
  if (!requirePeers(t, 'qemu-system-x86_64', ...peers)) return undefined;
  if (!existsSync(BUSYBOX)) {
    if (process.env.CI) throw new Error(`${BUSYBOX} is missing under CI (busybox-static)`);
    t.skip(`${BUSYBOX} missing (install busybox-static)`);
    return undefined;
  }
  try {
    return findGuestKernel() ?? ensureGuestKernel();
  } catch (e) {
    if (process.env.CI) throw e;
    t.skip(`no guest kernel: ${(e as Error).message}`);
    return undefined;
  }
}
