// Measures the WAN emulator's accuracy: runs `flimcd wan` as its own process
// and, for each setting, a bulk transfer (throughput from the receiver's first
// to last byte) and an idle ping-pong (rtt). Not a test; prints a table, or
// JSON with --json.
//
//   npx tsx test/wan-emulator/measure-accuracy.ts [--seconds 2] [--json] [RATE/RTT ...]
//   npx tsx test/wan-emulator/measure-accuracy.ts 100Mbit/50ms 1Gbit/10ms
import { spawn } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseBitRate, parseDuration } from '../../src/util/units.ts';

const BIN = fileURLToPath(new URL('../../scripts/flimcd-src.mjs', import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 2;
const wanted = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--seconds');
const settings = (wanted.length ? wanted : ['10Mbit/50ms', '20Mbit/40ms', '100Mbit/10ms', '100Mbit/50ms', '500Mbit/20ms', '1Gbit/10ms', '1Gbit/50ms', '100Mbit/150ms']).map((s) => {
  const [rate, rtt] = s.split('/');
  return { label: s, bps: parseBitRate(rate!), rttMs: parseDuration(rtt!) };
});

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function startWan(to: number, bps: number, rttMs: number): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'wan', '--listen', 'tcp:127.0.0.1:0', '--to', `tcp:127.0.0.1:${to}`, '--bandwidth', `${bps / 1e3}kbit`, '--rtt', `${rttMs}ms`, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FLIMCD_LOG_LEVEL: 'warn' },
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  const ev = await new Promise<{ address: string }>((resolve, reject) => {
    child.stdout.on('data', (d: string) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line));
    });
    child.on('exit', (c) => reject(new Error(`flimcd wan exited ${c}`)));
  });
  return {
    port: Number(ev.address.split(':').at(-1)),
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

function connect(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true);
  return once(s, 'connect').then(() => s);
}

/** Bulk: sends bytes for `seconds` of link time; throughput measured at the receiver from first to last byte. */
async function bulk(wanPort: number, sink: { first: () => number; last: () => number; bytes: () => number; firstBytes: () => number; reset: () => void }, bps: number): Promise<{ mbit: number; totalMs: number; bytes: number }> {
  sink.reset();
  const total = Math.round((bps / 8) * seconds);
  const s = await connect(wanPort);
  const chunk = Buffer.alloc(1 << 20, 0x42);
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunk.length, total - sent);
    sent += n;
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await once(s, 'drain');
  }
  s.end();
  await once(s, 'close');
  const totalMs = performance.now() - t0;
  const span = sink.last() - sink.first();
  // Bytes that arrived after the first arrival, over the time between first and last.
  return { mbit: ((sink.bytes() - sink.firstBytes()) * 8) / span / 1e3, totalMs, bytes: sink.bytes() };
}

async function pings(port: number, n: number): Promise<number[]> {
  const s = await connect(port);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    s.write(Buffer.alloc(64, i));
    let got = 0;
    while (got < 64) {
      const [d] = (await once(s, 'data')) as [Buffer];
      got += d.length;
    }
    out.push(performance.now() - t0);
  }
  s.destroy();
  return out;
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

let first = 0;
let last = 0;
let bytes = 0;
let firstBytes = 0;
const sinkServer = net.createServer((s) => {
  s.on('data', (d) => {
    const now = performance.now();
    if (bytes === 0) {
      first = now;
      firstBytes = d.length;
    }
    last = now;
    bytes += d.length;
  });
  s.on('end', () => s.end());
  s.on('error', () => {});
});
const echoServer = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('error', () => {});
  s.pipe(s);
});
const sinkPort = await listen(sinkServer);
const echoPort = await listen(echoServer);
const sink = { first: () => first, last: () => last, bytes: () => bytes, firstBytes: () => firstBytes, reset: () => ((bytes = 0), (first = last = 0)) };

const rows = [];
for (const st of settings) {
  const wanSink = await startWan(sinkPort, st.bps, st.rttMs);
  const b = await bulk(wanSink.port, sink, st.bps);
  await wanSink.stop();
  const wanEcho = await startWan(echoPort, st.bps, st.rttMs);
  const r = await pings(wanEcho.port, 30);
  await wanEcho.stop();
  const expectedMs = (b.bytes * 8) / st.bps * 1000 + st.rttMs;
  const row = {
    setting: st.label,
    throughputMbit: +b.mbit.toFixed(2),
    throughputErrPct: +((b.mbit / (st.bps / 1e6) - 1) * 100).toFixed(2),
    transferMs: +b.totalMs.toFixed(0),
    transferExpectedMs: +expectedMs.toFixed(0),
    rttP50: +q(r, 0.5).toFixed(2),
    rttP10: +q(r, 0.1).toFixed(2),
    rttP90: +q(r, 0.9).toFixed(2),
    rttAddedErrMs: +(q(r, 0.5) - st.rttMs).toFixed(2),
  };
  rows.push(row);
  if (!json) console.log(Object.entries(row).map(([k, v]) => `${k}=${v}`).join('  '));
}
if (json) console.log(JSON.stringify({ seconds, rows }));
sinkServer.close();
echoServer.close();
