/** A qcow2 backing chain built with the real QEMU tools, for tests that need an overlay on a base. */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './peers.ts';

export interface Qcow2Chain {
  base: string;
  overlay: string;
}

/**
 * `base.qcow2` of `baseBytes` random bytes (no two blocks alike, so nothing dedups by accident) and
 * an overlay `overlayName` on it, with one random block of `blockSize` written at each index of
 * `topBlocks` (the same block each time).
 */
export async function makeQcow2Chain(dir: string, baseBytes: number, topBlocks: readonly number[], blockSize: number, overlayName = 'vm.qcow2'): Promise<Qcow2Chain> {
  const raw = join(dir, 'base.raw');
  writeFileSync(raw, randomBytes(baseBytes));
  const base = join(dir, 'base.qcow2');
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, base]);
  const overlay = join(dir, overlayName);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
  const data = join(dir, 'top.bin');
  writeFileSync(data, randomBytes(blockSize));
  for (const b of topBlocks) await runOk('qemu-io', ['-f', 'qcow2', '-c', `write -s ${data} ${b * blockSize} ${blockSize}`, overlay]);
  return { base, overlay };
}
