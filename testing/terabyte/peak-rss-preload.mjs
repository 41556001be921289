// Loaded into an agent with NODE_OPTIONS=--import: as the process exits it writes its peak
// resident set (VmHWM from /proc/self/status, in KiB) to FLIMCD_PEAK_RSS_FILE. Test and
// benchmark infrastructure only: the agents themselves know nothing of it.
import { readFileSync, writeFileSync } from 'node:fs';

const out = process.env.FLIMCD_PEAK_RSS_FILE;
if (out) {
  process.on('exit', () => {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) writeFileSync(out, m[1]);
  });
}
