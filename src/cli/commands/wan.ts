import type { Command } from 'commander';
import { WanProxy } from '../../wan-emulator/proxy.ts';
import { startControlServer, type ControlServer } from '../../wan-emulator/control.ts';
import { parseAddress, formatAddress } from '../../util/address.ts';
import { parseBitRate, parseDuration, parseSize, formatBitRate, formatBytes, formatDuration } from '../../util/units.ts';
import { log } from '../../util/log.ts';
import { UsageError } from '../../errors.ts';
import { onShutdownSignal } from '../signals.ts';
import { addLogOptions } from '../log-options.ts';

interface WanOptions {
  listen: string;
  to: string;
  bandwidth: string;
  rtt: string;
  queue?: string;
  control?: string;
  json?: boolean;
}

const MAX_RTT_MS = 60_000;
const MIN_BPS = 8_000;

export function registerWan(program: Command): void {
  addLogOptions(program
    .command('wan'))
    .description(
      'Emulate a WAN link in userspace: a TCP/unix-socket proxy whose connections share one full-duplex link ' +
        'with the given bandwidth (each direction) and round-trip time, with faults on command (cut, stall, set).',
    )
    .requiredOption('--listen <addr>', 'where clients connect: tcp:HOST:PORT or unix:PATH')
    .requiredOption('--to <addr>', 'where the proxy connects for each client: tcp:HOST:PORT or unix:PATH')
    .requiredOption('--bandwidth <rate>', 'link rate per direction, e.g. 100Mbit, 1Gbit, 12.5MB/s')
    .requiredOption('--rtt <duration>', 'round-trip time added (rtt/2 each way), e.g. 50ms, 0ms')
    .option('--queue <size>', 'queue per direction beyond the bandwidth-delay product (default: max(256KiB, one rtt (>= 20 ms) of bandwidth))')
    .option('--control <addr>', 'JSON control endpoint (HTTP) on tcp:127.0.0.1:PORT or unix:PATH')
    .option('--json', 'print machine-readable events on stdout')
    .addHelpText(
      'after',
      `
Directions: "forward" is from the --listen side to the --to side, "reverse" back.

Control endpoint (--control), JSON over HTTP:
  GET  /stats                          bytes each direction, held/peak bytes, connections
  POST /cut    {"refuse":"2s"}         reset every connection; refuse new ones for a while
  POST /stall  {"duration":"500ms"}    stop forwarding for a while; bytes wait, none lost
  POST /set    {"bandwidth":"1Gbit","rtt":"20ms"}   change the link live

Examples:
  flimcd wan --listen tcp:127.0.0.1:20809 --to tcp:127.0.0.1:10809 --bandwidth 100Mbit --rtt 50ms
  flimcd wan --listen unix:/tmp/wan.sock --to unix:/tmp/vm.sock --bandwidth 1Gbit --rtt 20ms \\
      --control unix:/tmp/wan-ctl.sock --json
  curl -s --unix-socket /tmp/wan-ctl.sock http://x/stats
  curl -s --unix-socket /tmp/wan-ctl.sock -d '{"refuse":"2s"}' http://x/cut`,
    )
    .action(async (opts: WanOptions) => {
      const listen = parseAddress(opts.listen, '--listen');
      const to = parseAddress(opts.to, '--to');
      if (formatAddress(listen) === formatAddress(to)) throw new UsageError('--listen and --to are the same address; the proxy would connect to itself');
      const bandwidthBps = parseBitRate(opts.bandwidth, '--bandwidth');
      if (bandwidthBps < MIN_BPS) throw new UsageError(`--bandwidth: ${opts.bandwidth} is below the minimum of 8kbit`);
      const rttMs = parseDuration(opts.rtt, '--rtt');
      if (rttMs > MAX_RTT_MS) throw new UsageError(`--rtt: ${opts.rtt} is more than ${MAX_RTT_MS / 1000} s`);
      let queueBytes: number | undefined;
      if (opts.queue !== undefined) {
        queueBytes = parseSize(opts.queue, '--queue');
        if (queueBytes < 1) throw new UsageError('--queue must be at least 1 byte');
      }
      const control = opts.control !== undefined ? parseAddress(opts.control, '--control') : undefined;

      const proxy = new WanProxy({
        listen,
        to,
        bandwidthBps,
        rttMs,
        ...(queueBytes !== undefined ? { queueBytes } : {}),
        onEvent: (event, detail) => log.info({ event, ...detail }, `wan: ${event}`),
      });
      const bound = await proxy.listen();
      let ctl: ControlServer | undefined;
      try {
        if (control) ctl = await startControlServer(proxy, control);
      } catch (e) {
        await proxy.close();
        throw e;
      }
      // The signal handler goes in before the ready line: a supervisor that signals as soon as it
      // reads the line must not find the default action (death by signal) still in place.
      const stopped = new Promise<void>((resolve) => {
        onShutdownSignal(async (signal) => {
          log.info({ signal }, 'wan: shutting down');
          const stats = proxy.stats();
          await ctl?.close();
          await proxy.close();
          if (opts.json) {
            process.stdout.write(JSON.stringify({ event: 'stopped', signal, stats }) + '\n');
          } else {
            process.stdout.write(
              `flimcd: stopped; forwarded ${formatBytes(stats.forward.bytesOut)} forward, ${formatBytes(stats.reverse.bytesOut)} reverse, ` +
                `${stats.connections.total} connection(s)\n`,
            );
          }
          resolve();
        });
      });
      const queue = proxy.stats().queueBytes;
      if (opts.json) {
        process.stdout.write(
          JSON.stringify({
            event: 'listening',
            address: formatAddress(bound),
            to: formatAddress(to),
            bandwidthBps,
            rttMs,
            queueBytes: queue,
            control: ctl ? formatAddress(ctl.address) : null,
          }) + '\n',
        );
      } else {
        process.stdout.write(
          `flimcd: WAN link ${formatAddress(bound)} -> ${formatAddress(to)}: ${formatBitRate(bandwidthBps)} each way, ${formatDuration(rttMs)} RTT, ` +
            `queue ${formatBytes(queue)}${ctl ? `; control at ${formatAddress(ctl.address)}` : ''}\n`,
        );
      }
      await stopped;
    });
}
