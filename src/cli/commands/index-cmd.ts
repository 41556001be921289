import type { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { imageContentIds, ReplicaIndex } from '../../replica-index/replica-index.ts';
import { parseContentHash } from '../runtime-options.ts';
import { realContentModel } from '../../content/content-id.ts';
import { indexImage } from '../../replica-index/image-scan.ts';
import { formatBytes, parseBlockSize } from '../../util/units.ts';
import { ErrorCode, FlimcdError, UsageError } from '../../errors.ts';
import { checkImageSpecArg } from '../image-arg.ts';
import { parseImageFormat } from '../../image/image-spec.ts';
import { addClusterOptions, clusterFromFlags, type ClusterFlags } from '../cluster-options.ts';
import { RedisLocator } from '../../locator/redis-locator.ts';
import { publishIndexedImage } from '../../locator/publish-index.ts';
import { realClock } from '../../util/clock.ts';
import { log } from '../../util/log.ts';

interface IndexOptions extends ClusterFlags {
  index: string;
  blockSize: string;
  reindex?: boolean;
  format?: string;
  contentHash: string;
  json?: boolean;
}

/** Opens an index that must already exist (ls, rm): a mistyped --index is an error, never a new empty directory. */
function openExisting(dir: string, o: { readOnly: boolean }): ReplicaIndex {
  if (!existsSync(dir)) throw new UsageError(`--index: ${dir} does not exist (\`flimcd index add\` creates an index)`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`--index: ${dir} is not a directory`);
  return ReplicaIndex.open(dir, o);
}

const print = (json: boolean | undefined, obj: unknown, human: string): void => {
  process.stdout.write((json ? JSON.stringify(obj) : human) + '\n');
};

/** `flimcd index add|rm|ls`: the target datacenter's replica index of local images. */
export function registerIndex(program: Command): void {
  const index = program
    .command('index')
    .description('Manage the replica index at a target: local images (base images, older copies) whose blocks need not cross the link.')
    .addHelpText('after', '\nExamples:\n  flimcd index add --index /var/lib/flimcd/index /images/debian-12-base.img /vm/old-copy.img\n  flimcd index ls --index /var/lib/flimcd/index\n  flimcd target --image vm.img --index /var/lib/flimcd/index …');

  addClusterOptions(index
    .command('add'), 'required with --cluster: the images added are published as held here')
    .description('Hash every non-zero block of each image and record where it lies (holes and zero blocks cost nothing).')
    .argument('[image...]', 'image files: raw files or block devices, or qcow2 files with --format qcow2 (read through their backing chain)')
    .option('--format <fmt>', 'format of the images named: raw or qcow2 (never probed)', 'raw')
    .requiredOption('--index <dir>', 'index directory (created if missing)')
    .option('--block-size <size>', 'must equal the block size migrations use (4KiB-1MiB)', '64KiB')
    .option('--reindex', 'also re-index every image already in the index whose block size or content hash differs from --block-size and --content-hash (its old entries are dropped)')
    .option('--content-hash <name>', 'content id format: must equal the target agent\'s (sha256 or blake3)', 'sha256')
    .option('--json', 'one JSON object per image')
    .action(async (given: string[], o: IndexOptions) => {
      const blockSize = parseBlockSize(o.blockSize, '--block-size');
      const content = realContentModel(parseContentHash(o.contentHash));
      if (given.length === 0 && !o.reindex) throw new UsageError('index add: name at least one image (or pass --reindex)');
      const format = parseImageFormat(o.format);
      for (const path of given) checkImageSpecArg(path, format, { flag: 'image' });
      const cluster = clusterFromFlags(o);
      if (cluster && !cluster.replicaAddress) throw new UsageError('index add --cluster needs --replica-address: the address of this host\'s `flimcd replica-server`, which siblings fetch from');
      const ix = ReplicaIndex.open(o.index);
      const locator = cluster && new RedisLocator({ urls: cluster.urls, idFormat: content.format, clock: realClock, log });
      try {
        const stale = o.reindex ? ix.list().filter((im) => im.blockSize !== blockSize || imageContentIds(im) !== content.format) : [];
        for (const im of stale) checkImageSpecArg(im.path, im.format ?? 'raw', { flag: 'indexed image' });
        for (const im of stale) await ix.removeImage(im.path);
        const formats = new Map<string, 'raw' | 'qcow2'>([...stale.map((im) => [im.path, im.format ?? 'raw'] as const), ...given.map((p) => [p, format] as const)]);
        const images = [...formats.keys()];
        for (const path of images) {
          const bar = !o.json && process.stderr.isTTY ? new cliProgress.SingleBar({ format: `${path} [{bar}] {percentage}% ETA {eta}s`, stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
          let started = false;
          const r = await indexImage(ix, path, blockSize, (done, total) => {
            if (!bar) return;
            if (!started) {
              bar.start(total, 0);
              started = true;
            }
            bar.update(done);
          }, formats.get(path), content);
          bar?.stop();
          print(o.json, { event: 'added', ...r, ms: Math.round(r.ms) }, `added ${r.path}: ${r.scannedBlocks} non-zero blocks of ${formatBytes(blockSize)}, ${r.newIds} new ids (${formatBytes(r.size)} in ${(r.ms / 1000).toFixed(1)} s)`);
          const im = locator && ix.image(path);
          if (im) {
            const p = await publishIndexedImage(locator, ix, im, cluster.replicaAddress!);
            if (p.dropped > 0) throw new FlimcdError(`${path}: the content locator took ${p.published} entries and dropped ${p.dropped} (the Redis Cluster is unavailable?); run index add --cluster again`, ErrorCode.LOCATOR);
            print(o.json, { event: 'published', path: im.path, entries: p.published, host: cluster.replicaAddress }, `published ${im.path}: ${p.published} entries as held by ${cluster.replicaAddress}`);
          }
        }
      } finally {
        await locator?.close();
        await ix.close();
      }
    });

  index
    .command('rm')
    .description('Forget images: remove every entry that points into them.')
    .argument('<image...>', 'image files as they were added')
    .requiredOption('--index <dir>', 'index directory')
    .option('--json', 'one JSON object per image')
    .action(async (images: string[], o: IndexOptions) => {
      const ix = openExisting(o.index, { readOnly: false });
      try {
        const unknown = images.filter((path) => !ix.image(path));
        if (unknown.length) throw new UsageError(`index rm: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not in the index at ${ix.dir}; nothing removed`);
        for (const path of images) {
          const n = await ix.removeImage(path);
          print(o.json, { event: 'removed', path, entries: n }, `removed ${path}: ${n} entries`);
        }
      } finally {
        await ix.close();
      }
    });

  index
    .command('ls')
    .description('List the images in the index with their block size and block count.')
    .requiredOption('--index <dir>', 'index directory')
    .option('--json', 'a JSON array')
    .action(async (o: IndexOptions) => {
      const ix = openExisting(o.index, { readOnly: true });
      try {
        const list = ix.list();
        if (o.json) return print(true, list, '');
        if (list.length === 0) return print(false, null, `the index at ${ix.dir} is empty`);
        for (const im of list) print(false, null, `${im.path}  ${formatBytes(im.size)}  blocks of ${formatBytes(im.blockSize)}: ${im.blocks} ${imageContentIds(im)} ids  (${im.kind}, ${im.addedAt})`);
      } finally {
        await ix.close();
      }
    });
}
