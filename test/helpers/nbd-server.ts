import { join } from 'node:path';
import type { Disk } from '../../src/block/disk.ts';
import { NbdServer } from '../../src/nbd/server.ts';
import { nbdUri, type Address } from '../../src/util/address.ts';
import type { TestCtx } from './test-context.ts';

export interface RunningServer {
  server: NbdServer;
  address: Address;
  uri: string;
}

let counter = 0;

/** Starts our NBD server in-process on a Unix socket in `dir` (or TCP loopback) and stops it after the test. */
export async function startServer(
  t: TestCtx,
  dir: string,
  exports: Array<{ name: string; disk: Disk; description?: string }>,
  opts: { tcp?: boolean } = {},
): Promise<RunningServer> {
  const server = new NbdServer({ exports });
  const want: Address = opts.tcp ? { kind: 'tcp', host: '127.0.0.1', port: 0 } : { kind: 'unix', path: join(dir, `nbd-${process.pid}-${counter++}.sock`) };
  const address = await server.listen(want);
  t.after(() => server.close(2000));
  return { server, address, uri: nbdUri(address, exports[0]!.name) };
}
