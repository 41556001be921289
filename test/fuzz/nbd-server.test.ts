// The NBD server against generated malformed clients: handshake and
// transmission phases, in-process through FuzzSocket. No crash, no hang, no
// leak, and every dropped connection is one of our typed errors.
// `npm run test:fuzz` runs 1e6 inputs; here a reduced run (FLIMCD_FUZZ_INPUTS).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import { MemoryDisk } from '../../src/block/memory.ts';
import { NbdConnection, DEFAULT_LIMITS } from '../../src/nbd/server-connection.ts';
import type { ExportDirectory } from '../../src/nbd/server-handshake.ts';
import type { NbdExport } from '../../src/nbd/export.ts';
import { FuzzSocket } from './fuzz-socket.ts';
import { chunked, inputRng } from './mutate.ts';
import { nbdInput, FUZZ_EXPORT_SIZE } from './nbd-inputs.ts';
import { fuzz, fuzzConfig, FuzzFailure } from './harness.ts';

/** A logger that turns anything but our own typed errors into a finding. */
function watchingLogger(findings: string[]): Logger {
  const l = {
    level: 'debug',
    child: () => l,
    debug: () => {},
    info: () => {},
    trace: () => {},
    warn: (o: { code?: string; err?: string; stack?: string }) => {
      if (o && typeof o === 'object' && 'code' in o && !String(o.code).startsWith('FLIMCD_ERR')) findings.push(`${o.code}: ${o.err}\n${o.stack ?? ''}`);
    },
    error: (o: unknown, msg?: string) => findings.push(`error log: ${msg} ${JSON.stringify(o)}`),
    fatal: (o: unknown, msg?: string) => findings.push(`fatal log: ${msg} ${JSON.stringify(o)}`),
  };
  return l as unknown as Logger;
}

test('NBD server: generated malformed handshakes and requests cost only their own connection', async (t) => {
  const cfg = fuzzConfig({ inputs: 5000 });
  t.diagnostic(`seed ${cfg.seed}, ${cfg.only !== undefined ? `replaying input ${cfg.only}` : `${cfg.inputs} inputs`}`);
  const rw = new MemoryDisk(FUZZ_EXPORT_SIZE);
  const exports: NbdExport[] = [{ name: '', disk: rw, description: 'fuzz' }, { name: 'ro', disk: new MemoryDisk(FUZZ_EXPORT_SIZE, { readOnly: true }) }];
  const dir: ExportDirectory = { find: (n) => exports.find((e) => e.name === n), list: () => exports };
  // Small limits so the bounds themselves get exercised.
  const limits = { ...DEFAULT_LIMITS, maxInFlight: 8, maxInFlightBytes: 4 << 20, handshakeTimeoutMs: 4000 };
  const r = await fuzz(cfg, 'nbd-server', async (i) => {
    const rng = inputRng(cfg.seed, i);
    const { bytes, kind } = nbdInput(rng);
    const findings: string[] = [];
    const sock = new FuzzSocket();
    const conn = new NbdConnection(sock.asSocket(), dir, watchingLogger(findings), limits);
    sock.feed(chunked(bytes, rng));
    await conn.done;
    if (findings.length) throw new FuzzFailure(findings.join('; '));
    return `${kind}:${sock.written > 18 ? 'answered' : 'greeting-only'}`;
  });
  t.diagnostic(`${r.inputs} inputs in ${r.seconds.toFixed(1)} s, heap growth ${(r.heapGrowthBytes / 1048576).toFixed(1)} MiB, outcomes ${JSON.stringify(r.outcomes)}`);
  if (cfg.only === undefined) {
    // The generator must reach past the greeting most of the time, or it tests nothing.
    const answered = Object.entries(r.outcomes).filter(([k]) => k.endsWith('answered')).reduce((a, [, v]) => a + v, 0);
    assert.ok(answered > r.inputs * 0.5, JSON.stringify(r.outcomes));
  }
});
