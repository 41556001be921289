import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { UsageError } from '../../errors.ts';
import { ALGORITHMS, parseAlgorithm } from '../../policy/algorithm.ts';
import { formatBitRate, formatBytes, parseBitRate, parseBlockSize, parseDuration } from '../../util/units.ts';
import { scanImage } from '../../sim/image-model.ts';
import { observeImage, observedProfile, plan } from '../../sim/planner.ts';
import { parseWorkload } from '../../sim/scenario.ts';
import { SimDisk } from '../../sim/sim-disk.ts';
import { ReplicaIndex } from '../../replica-index/replica-index.ts';
import { askTargetHoldings } from '../../migrate/plan-probe.ts';
import { OFFER_ID_BYTES } from '../../wire/messages.ts';
import { parseAddress } from '../../util/address.ts';
import { securityFromFlags, type SecurityFlags } from '../security-options.ts';
import { addSecurityOptions } from '../security-options.ts';
import { checkImageArg, checkImageSpecArg } from '../image-arg.ts';
import { imageSizeOf } from '../../image/open-image.ts';
import { parseImageFormat, parseImageSpec } from '../../image/image-spec.ts';
import { log } from '../../util/log.ts';
import { indexBlockSizeProblem } from '../../replica-index/block-size-check.ts';
import { indexContentIdProblem } from '../../replica-index/content-id-check.ts';
import { DEFAULT_CONTENT_ID_FORMAT } from '../../content/content-id.ts';

/** The target's index, refused when it holds only other block sizes (it would find nothing). */
function openIndex(dir: string, blockSize: number): ReplicaIndex {
  let ix: ReplicaIndex;
  try {
    ix = ReplicaIndex.open(dir, { readOnly: true });
  } catch (e) {
    throw new UsageError(`--index: cannot open the replica index at ${dir}: ${(e as Error).message}`);
  }
  const problem = indexBlockSizeProblem(ix.list(), blockSize, dir) ?? indexContentIdProblem(ix.list(), DEFAULT_CONTENT_ID_FORMAT, dir);
  if (problem) {
    void ix.close();
    throw new UsageError(`--index: ${problem}`);
  }
  return ix;
}

/** The non-zero blocks and their 128-bit id prefixes, packed (20 bytes a block). */
class TargetQuestion {
  private readonly blocks: Uint32Array;
  private readonly ids: Buffer;
  private n = 0;
  constructor(capacity: number) {
    this.blocks = new Uint32Array(capacity);
    this.ids = Buffer.allocUnsafe(capacity * OFFER_ID_BYTES);
  }
  add(b: number, id: Uint8Array): void {
    if (this.n >= this.blocks.length) return; // the file grew during the scan: ask about what was planned
    this.blocks[this.n] = b;
    this.ids.set(id.subarray(0, OFFER_ID_BYTES), this.n * OFFER_ID_BYTES);
    this.n++;
  }
  done(): { blocks: Uint32Array; ids: Buffer } {
    return { blocks: this.blocks.subarray(0, this.n), ids: this.ids.subarray(0, this.n * OFFER_ID_BYTES) };
  }
}

interface PlanCliOptions extends SecurityFlags {
  image: string;
  format?: string;
  target?: string;
  targetImage?: string;
  index?: string;
  bandwidth: string;
  rtt: string;
  watch: string;
  workload?: string;
  algorithm: string;
  blockSize: string;
  out?: string;
  json?: boolean;
}

export function registerPlan(program: Command): void {
  addSecurityOptions(program
    .command('plan'), 'target')
    .description('Before migrating: watch the live source image, simulate every algorithm on this image, workload and link, and recommend one (with the predicted time and wire bytes behind the choice).')
    .requiredOption('--image <image>', 'the source VM\'s image (what the source agent serves the VM from): a raw file, a block device, a qcow2 file (--format qcow2) or an NBD URI')
    .option('--format <fmt>', 'format of --image: raw or qcow2 (never probed)', 'raw')
    .option('--target-image <file>', 'an old copy of the image already at the target (its content need not cross the link)')
    .option('--index <dir>', 'the target\'s replica index (`flimcd index`): blocks it holds need not cross the link (asked per block during the scan)')
    .option('--target <addr>', 'ask the running target agent (tcp:HOST:PORT, with the source agent\'s link credentials below) which blocks it can build from its old image and replica index; nothing is migrated')
    .option('--bandwidth <rate>', 'link bandwidth', '100Mbit')
    .option('--rtt <duration>', 'link round-trip time', '50ms')
    .option('--watch <duration>', 'how long to watch the image for the VM\'s writes (dirty rate, write-hot areas)', '10s')
    .option('--workload <spec>', 'plan for this workload instead of watching: a profile or trace:FILE')
    .option('--algorithm <list>', 'algorithms to compare, comma-separated', ALGORITHMS.join(','))
    .option('--block-size <size>', 'migration block size', '64KiB')
    .option('--out <file>', 'also write the plan as JSON (for `flimcd source --plan FILE`: its status shows the prediction as ETA)')
    .option('--json', 'print the plan as one JSON object')
    .addHelpText('after', '\nExamples:\n  flimcd plan --image /var/lib/vm.img --bandwidth 100Mbit --rtt 50ms --watch 30s\n  flimcd plan --image vm.img --workload heavy --bandwidth 1Gbit --rtt 10ms --json --out plan.json\n  flimcd plan --image vm.img --target tcp:dc-b.example:7000 --psk-file link.psk --watch 30s')
    .action(async (opts: PlanCliOptions) => {
      const bandwidthBps = parseBitRate(opts.bandwidth, '--bandwidth');
      const rttMs = parseDuration(opts.rtt, '--rtt');
      if (!(rttMs >= 0) || rttMs > 10_000) throw new UsageError('--rtt must be from 0 to 10s');
      const watchMs = parseDuration(opts.watch, '--watch');
      if (!(watchMs >= 0)) throw new UsageError('--watch must not be negative');
      const blockSize = parseBlockSize(opts.blockSize);
      const algorithms = opts.algorithm.split(',').map((s) => parseAlgorithm(s.trim()));
      const format = parseImageFormat(opts.format);
      const imageSize = checkImageSpecArg(opts.image, opts.format) ?? (await imageSizeOf(parseImageSpec(opts.image, format), log));
      if (imageSize < blockSize) throw new UsageError(`--image: ${opts.image} has ${imageSize} bytes, less than one ${blockSize}-byte block`);
      if (opts.targetImage) checkImageArg(opts.targetImage, { flag: '--target-image' });
      const to = opts.target ? parseAddress(opts.target, '--target') : undefined;
      const security = to ? securityFromFlags(opts) : undefined;
      const index = opts.index ? openIndex(opts.index, blockSize) : undefined;
      const inIndex: number[] = [];
      // The target is asked by the first 128 bits of each non-zero block's id, as a migration's OFFER does.
      const asked = to ? new TargetQuestion(Math.ceil(imageSize / blockSize)) : undefined;
      let image;
      try {
        image = await scanImage(opts.image, blockSize, index || asked ? (b, id) => {
          if (index?.lookup(blockSize, id)) inIndex.push(b);
          asked?.add(b, id);
        } : undefined, format);
      } finally {
        await index?.close();
      }
      // The target's own answer: its old image and its index, each candidate re-hashed there.
      const atTarget = to && asked ? await askTargetHoldings({ to, security: security!, imageSize: image.size, blockSize, ...asked.done() }) : [];
      for (const b of atTarget) inIndex.push(b); // (not push(...): hundreds of thousands of arguments overflow the stack)
      let targetImage = opts.targetImage ? await scanImage(opts.targetImage, blockSize) : undefined;
      if (targetImage && targetImage.size !== image.size) throw new UsageError(`--target-image has ${targetImage.size} bytes, the image ${image.size}`);
      if (inIndex.length) {
        // The index's answer: these contents the target can materialise locally, modelled as already in place.
        targetImage ??= new SimDisk(image.size, blockSize);
        for (const b of inIndex) {
          targetImage.ids[b] = image.ids[b]!;
          targetImage.zsizes[b] = image.zsizes[b]!;
        }
      }
      let observation;
      let p;
      if (opts.workload) {
        const workload = parseWorkload({ spec: opts.workload, imageBytes: image.size, bandwidthBps, blockSize, seed: 1 });
        p = await plan({ image, targetImage, bandwidthBps, rttMs, workload, algorithms });
      } else {
        observation = await observeImage(opts.image, blockSize, watchMs);
        p = await plan({ image, targetImage, bandwidthBps, rttMs, profile: observedProfile(observation, bandwidthBps), algorithms });
      }
      const out = { ...p, observation: observation ?? null, index_blocks: index ? inIndex.length - atTarget.length : null, target_blocks: to ? atTarget.length : null };
      if (opts.out) writeFileSync(opts.out, JSON.stringify(out, null, 2) + '\n');
      if (opts.json) {
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      const lines = [`Plan for ${opts.image} (${formatBytes(image.size)}) over ${formatBitRate(bandwidthBps)}, ${rttMs} ms RTT`];
      if (observation) lines.push(`Observed for ${(observation.watchMs / 1000).toFixed(1)} s: ${observation.changedBlocks} blocks changed, ${(observation.dirtyBytesPerSec / 1e6).toFixed(2)} MB/s dirtied (${((observation.dirtyBytesPerSec * 8 / bandwidthBps) * 100).toFixed(1)} % of the link)`);
      else lines.push(`Workload: ${p.workload}`);
      if (index) lines.push(`The target's index holds ${inIndex.length - atTarget.length} of the image's blocks.`);
      if (to) lines.push(`The target agent at ${opts.target} can build ${atTarget.length} of the image's ${image.ids.filter((x) => x !== 0).length} non-zero blocks from what it holds.`);
      if (p.scale > 1) lines.push(`Simulated on a 1/${p.scale} scale model of the image and link.`);
      lines.push('', `${'algorithm'.padEnd(10)} ${'time'.padStart(9)} ${'wire'.padStart(10)} ${'downtime'.padStart(9)} ${'miss rate'.padStart(9)}`);
      for (const r of p.rows) lines.push(`${r.algorithm.padEnd(10)} ${(r.time_total_s.toFixed(1) + ' s').padStart(9)} ${formatBytes(r.wire_bytes).padStart(10)} ${(r.downtime_ms.toFixed(0) + ' ms').padStart(9)} ${r.block_miss_rate.toFixed(3).padStart(9)}`);
      lines.push('', `Recommended: ${p.recommended} (${p.reason})`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
