/**
 * The disk the traces were recorded on: an ext4 filesystem built by
 * `mke2fs -d` from a real tree of this machine (Debian's /usr/share/doc,
 * /usr/lib/python3 and /usr/lib/python3.11, about 240 MiB), rebuilt rather
 * than checked in.
 *
 * Rebuilt the same way every time: the tree is copied, its timestamps set to
 * one fixed time, and mke2fs runs with a fixed UUID, hash seed, root owner and
 * clock (E2FSPROGS_FAKE_TIME), no lazy init. The tree's manifest digest (every
 * path, mode, size and content) and the image's digest go in each trace's
 * .json: an image rebuilt on another machine is the recorded one exactly when
 * both match (a different package set gives a different tree).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FlimcdError } from '../../src/errors.ts';

/** The tree's parts: name under /mnt/tree in the guest, and where it comes from here. */
export const TREE_SOURCES = [
  { name: 'doc', from: '/usr/share/doc' },
  { name: 'python3', from: '/usr/lib/python3' },
  { name: 'python3.11', from: '/usr/lib/python3.11' },
] as const;

export const IMAGE_BYTES = 1 << 30;
/** Fixed so the image is a function of the tree alone. */
export const FIXED_TIME = 1_700_000_000;
export const MKE2FS_ARGS = [
  '-q', '-F', '-t', 'ext4', '-b', '4096', '-I', '256', '-m', '0', '-L', 'flimcd-trace',
  '-U', '5f1e7c2a-0b4d-4e8f-9a61-3c2d7e9b1a50',
  '-E', 'hash_seed=2b8e4f60-7d1c-4a93-8e05-6f9a2c3b7d14,root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,nodiscard',
];

export interface TraceImage {
  path: string;
  bytes: number;
  /** sha256 of the tree's manifest: sorted paths with mode, size and content digest (symlinks: target). */
  treeSha256: string;
  sha256: string;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new FlimcdError(`${cmd} ${args.slice(0, 6).join(' ')}... exited ${r.status ?? r.signal}: ${(r.stderr || String(r.error ?? '')).trim().slice(-400)}`, ErrorCode.IO);
}

/** The tree's manifest digest (see TraceImage.treeSha256). */
export function treeDigest(root: string): string {
  const h = createHash('sha256');
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) h.update(`l ${r} ${readlinkSync(p)}\n`);
      else if (st.isDirectory()) {
        h.update(`d ${r} ${(st.mode & 0o7777).toString(8)}\n`);
        walk(p, r);
      } else if (st.isFile()) h.update(`f ${r} ${(st.mode & 0o7777).toString(8)} ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex')}\n`);
    }
  };
  walk(root, '');
  return h.digest('hex');
}

export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * mke2fs -d copies each inode's ctime, which `touch` cannot set: set it to
 * FIXED_TIME in every inode in use (dumpe2fs's free ranges say which) with debugfs.
 */
function fixInodeCtimes(image: string): void {
  const d = spawnSync('dumpe2fs', [image], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (d.status !== 0) throw new FlimcdError(`dumpe2fs ${image} exited ${d.status}: ${d.stderr.trim().slice(-300)}`, ErrorCode.IO);
  const perGroup = Number(/Inodes per group:\s+(\d+)/.exec(d.stdout)?.[1]);
  const free = [...d.stdout.matchAll(/^\s+Free inodes: (.*)$/gm)].map((m) => m[1]!);
  if (!(perGroup > 0) || free.length === 0) throw new FlimcdError(`dumpe2fs ${image}: no inode map`, ErrorCode.IO);
  const cmds: string[] = [];
  free.forEach((list, g) => {
    const isFree = new Set<number>();
    for (const part of list.split(',').map((x) => x.trim()).filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      for (let i = a!; i <= (b ?? a!); i++) isFree.add(i);
    }
    for (let i = g * perGroup + 1; i <= (g + 1) * perGroup; i++) if (!isFree.has(i)) cmds.push(`sif <${i}> ctime @${FIXED_TIME}`);
  });
  const file = `${image}.debugfs`;
  writeFileSync(file, cmds.join('\n') + '\n');
  run('debugfs', ['-w', '-f', file, image], { E2FSPROGS_FAKE_TIME: String(FIXED_TIME) });
  rmSync(file, { force: true });
}

/** Copies the tree into `work/tree`, fixes its times and builds `work/trace-disk.img`. */
export async function buildTraceImage(work: string): Promise<TraceImage> {
  const stage = join(work, 'tree');
  const path = join(work, 'trace-disk.img');
  rmSync(stage, { recursive: true, force: true });
  rmSync(path, { force: true });
  mkdirSync(stage, { recursive: true });
  const root = join(stage, 'tree');
  mkdirSync(root);
  for (const s of TREE_SOURCES) {
    if (!existsSync(s.from)) throw new FlimcdError(`tree source ${s.from} is missing on this machine`, ErrorCode.IO);
    run('cp', ['-a', '--no-preserve=ownership', s.from, join(root, s.name)]);
  }
  // No caches from a Python run on this machine: they vary with its history.
  run('find', [root, '-name', '__pycache__', '-prune', '-exec', 'rm', '-rf', '{}', '+']);
  const treeSha256 = treeDigest(root);
  // After the digest, which reads (and so stamps atime): mke2fs copies each inode's times as it finds them.
  run('find', [stage, '-exec', 'touch', '-h', '-d', `@${FIXED_TIME}`, '{}', '+']);
  run('truncate', ['-s', String(IMAGE_BYTES), path]);
  run('mke2fs', [...MKE2FS_ARGS, '-d', stage, path], { E2FSPROGS_FAKE_TIME: String(FIXED_TIME) });
  rmSync(stage, { recursive: true, force: true });
  fixInodeCtimes(path);
  return { path, bytes: IMAGE_BYTES, treeSha256, sha256: await fileSha256(path) };
}
