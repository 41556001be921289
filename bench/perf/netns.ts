/**
 * A kernel-shaped link for bench:perf: two network namespaces joined by a veth pair, each end's
 * egress shaped by `tbf` to the link rate (the kernel here has no netem, so the delay comes from
 * the WAN emulator running in the source's namespace with an unlimited rate). Needs root
 * (`ip netns`); removed again by `remove()`. Not product code.
 */
import { execFileSync } from 'node:child_process';

export interface VethLink {
  source: string;
  target: string;
  targetHost: string;
  /** TCP/IP/Ethernet header bytes per full segment over the frame size: what tbf counts beyond the payload. */
  headerShare: number;
  remove(): void;
}

const MTU = 1500;
/** Ethernet (14) + IPv4 (20) + TCP with timestamps (32) per segment. */
const HEADER_BYTES = 66;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether this process may create network namespaces (root with `ip` and `tc`). */
export function canCreateNetns(): boolean {
  try {
    return process.getuid?.() === 0 && execFileSync('tc', ['-V'], { stdio: ['ignore', 'pipe', 'ignore'] }).length > 0;
  } catch {
    return false;
  }
}

/** Creates the namespaces and the shaped veth pair; `rateBps` each direction. */
export function createVethLink(rateBps: number, tag = `${process.pid}`): VethLink {
  const source = `flperf-s${tag}`;
  const target = `flperf-t${tag}`;
  const remove = () => {
    for (const ns of [source, target]) {
      try { ip('netns', 'del', ns); } catch { /* already gone */ }
    }
  };
  remove();
  try {
    ip('netns', 'add', source);
    ip('netns', 'add', target);
    ip('link', 'add', `vs${tag}`, 'netns', source, 'type', 'veth', 'peer', 'name', `vt${tag}`, 'netns', target);
    const burst = Math.max(32 * 1024, Math.ceil(rateBps / 8 / 250)); // at least 4 ms of the rate: tbf needs burst >= rate / HZ
    for (const [ns, dev, addr] of [[source, `vs${tag}`, '10.201.0.1/24'], [target, `vt${tag}`, '10.201.0.2/24']] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'addr', 'add', addr, 'dev', dev);
      ip('-n', ns, 'link', 'set', dev, 'mtu', String(MTU), 'up');
      execFileSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${Math.round(rateBps)}bit`, 'burst', String(burst), 'latency', '50ms'], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
  } catch (e) {
    remove();
    throw e;
  }
  return { source, target, targetHost: '10.201.0.2', headerShare: HEADER_BYTES / (MTU + 14), remove };
}
