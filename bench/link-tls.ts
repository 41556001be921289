/**
 * bench:tls — what TLS costs the agents' link on loopback: throughput of a
 * one-way bulk stream through connectLink/createLinkServer (the agents' own
 * seam) in plaintext (--insecure), TLS 1.3 with a PSK and TLS 1.3 with
 * certificates. Loopback has no bandwidth limit, so this is the CPU cost; on
 * a 100 Mbit/s – 1 Gbit/s WAN the link, not TLS, is the bottleneck.
 *
 *   npm run bench:tls [-- --mib 256 --runs 5 --json]
 *
 * headline.psk_over_plain, headline.cert_over_plain: TLS throughput over
 * plaintext throughput (medians; 1 = free, higher is better).
 */
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { connectLink, createLinkServer, ephemeralPsk, type LinkSecurity } from '../src/wire/secure-link.ts';
import { makeCertificates } from '../src/cli/commands/certs.ts';
import type { Address } from '../src/util/address.ts';
import { median } from './stats.ts';
import { benchArgs } from './bench-args.ts';

const args = benchArgs('link-tls', 'usage: npm run -s bench:tls [-- --json] [--mib N] [--runs N]\n', {
  json: { type: 'boolean', default: false },
  mib: { type: 'string' },
  runs: { type: 'string' },
});
const MIB = args.int(args.values.mib, 256, '--mib');
const RUNS = args.int(args.values.runs, 5, '--runs');
const JSON_OUT = args.values.json ?? false;
const quiet = pino({ level: 'silent' });

/** Seconds to push MIB MiB from client to server and have the server receive all of it. */
async function oneRun(server: LinkSecurity, client: LinkSecurity): Promise<number> {
  const total = MIB * 1024 * 1024;
  let gotAll!: () => void;
  const received = new Promise<void>((r) => (gotAll = r));
  const srv = createLinkServer(server, (s) => {
    let n = 0;
    s.on('data', (d: Buffer) => { n += d.length; if (n >= total) gotAll(); });
    s.on('error', () => {});
  }, quiet);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr: Address = { kind: 'tcp', host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port };
  const s = await connectLink(addr, client);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  await received;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  await new Promise<void>((r) => srv.close(() => r()));
  return secs;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flimcd-bench-tls-'));
  try {
    makeCertificates(dir, 1, false);
    const cert = (role: string): LinkSecurity => ({ mode: 'cert', ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, `${role}.crt`)), key: readFileSync(join(dir, `${role}.key`)) });
    const psk = ephemeralPsk();
    const cases: Array<[string, LinkSecurity, LinkSecurity]> = [
      ['plain', { mode: 'insecure' }, { mode: 'insecure' }],
      ['psk', psk, psk],
      ['cert', cert('target'), cert('source')],
    ];
    const rows: Array<{ case: string; mbit_s: number; samples: number[] }> = [];
    const samples: Record<string, number[]> = { plain: [], psk: [], cert: [] };
    // Interleaved, so drift on a shared machine hits every case alike.
    for (let r = 0; r < RUNS; r++) {
      for (const [name, s, c] of cases) samples[name]!.push((MIB * 8 * 1.048576) / (await oneRun(s, c)));
    }
    for (const [name] of cases) rows.push({ case: name, mbit_s: Math.round(median(samples[name]!)), samples: samples[name]!.map(Math.round) });
    const plain = rows[0]!.mbit_s;
    const headline = { psk_over_plain: +(rows[1]!.mbit_s / plain).toFixed(3), cert_over_plain: +(rows[2]!.mbit_s / plain).toFixed(3) };
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify({ bench: 'tls', mib: MIB, runs: RUNS, rows, headline }) + '\n');
    } else {
      console.log(`link throughput on loopback, ${MIB} MiB one way, median of ${RUNS}`);
      console.log('case    Mbit/s   samples');
      for (const r of rows) console.log(`${r.case.padEnd(8)}${String(r.mbit_s).padStart(6)}   ${r.samples.join(' ')}`);
      console.log(`\nheadline: psk/plain ${headline.psk_over_plain}, cert/plain ${headline.cert_over_plain}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
