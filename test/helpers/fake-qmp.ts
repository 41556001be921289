/** A QEMU stand-in for tests that need only its QMP monitor: no guest, no image. */
import net from 'node:net';
import type { TestCtx } from './test-context.ts';

export interface FakeQmp {
  /** Sends an event (`{ event, data, timestamp }`) to every connected client. */
  broadcast(event: unknown): void;
}

/**
 * A QMP server on the unix socket `path`: greets as QEMU 7.2, then answers every command with
 * `answer(command)` (default `{}`). Closed after the test.
 */
export async function fakeQmp(t: TestCtx, path: string, answer: (execute: string) => unknown = () => ({})): Promise<FakeQmp> {
  const clients = new Set<net.Socket>();
  const send = (sock: net.Socket, o: unknown) => sock.write(JSON.stringify(o) + '\r\n');
  const server = net.createServer((sock) => {
    clients.add(sock);
    sock.on('close', () => clients.delete(sock));
    send(sock, { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: '' }, capabilities: [] } });
    let buf = '';
    sock.setEncoding('utf8').on('error', () => {});
    sock.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string; id?: unknown };
        buf = buf.slice(nl + 1);
        send(sock, { return: answer(cmd.execute), id: cmd.id });
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => server.close());
  return { broadcast: (event) => { for (const s of clients) send(s, event); } };
}

/** A QEMU whose `query-status` says `status` (e.g. running, inmigrate); every other command answers {}. */
export async function fakeQemuInState(t: TestCtx, path: string, status: string): Promise<FakeQmp> {
  return fakeQmp(t, path, (execute) => (execute === 'query-status' ? { status, running: status === 'running' } : {}));
}
