/**
 * The disks of bench:qemu, built once per bench run from real trees of this
 * machine (no random bytes):
 *
 * - base.raw: ext4 made by `mke2fs -d` from files of `baseTree` (name order,
 *   up to half the disk), sparse; base.qcow2 its `qemu-img convert`. The
 *   target of the base case holds base-at-target.qcow2, its own copy.
 * - vm.raw: base.raw changed through the file system with `debugfs -w`: files
 *   of `changeTree` written into /vm-changes (up to `changedShare` of the disk)
 *   and every fourth file of the base's first directories removed. It is the
 *   VM's disk in the empty-target case and the host's reference in both.
 * - vm.qcow2: an overlay on base.qcow2 holding the clusters in which vm.raw
 *   differs from the base (`qemu-img rebase` of an overlay on vm.raw onto
 *   base.qcow2): the VM's disk in the base case.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sparseCopy } from '../testing/qemu/rig.ts';
import { ErrorCode, FlimcdError } from '../src/errors.ts';

export interface QemuBenchImages {
  dir: string;
  baseQcow2: string;
  baseAtTarget: string;
  vmRaw: string;
  vmQcow2: string;
  /** Bytes of file content in the base, and changed through the file system. */
  baseFileBytes: number;
  changedFileBytes: number;
  /** Data the overlay allocates (qemu-img map, depth 0), bytes. */
  overlayDataBytes: number;
}

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new FlimcdError(`${what}: ${cmd} exited ${r.status}: ${(r.stderr || String(r.error ?? '')).trim().slice(-400)}`, ErrorCode.TEST);
  return r.stdout;
}

/** Regular files under `tree`, name order, until `maxBytes` (skips unreadable ones). */
function filesUpTo(tree: string, maxBytes: number): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      return;
    }
    for (const e of entries) {
      if (bytes >= maxBytes) return;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const size = statSync(p).size;
        if (bytes + size > maxBytes) continue;
        files.push(p);
        bytes += size;
      }
    }
  };
  walk(tree);
  return { files, bytes };
}

export function buildQemuBenchImages(dir: string, o: { diskBytes: number; changedShare: number; baseTree?: string; changeTree?: string }): QemuBenchImages {
  mkdirSync(dir, { recursive: true });
  const baseTree = o.baseTree ?? '/usr/share/doc';
  const changeTree = o.changeTree ?? '/usr/lib/python3';
  // The base: a staging copy of part of the tree (mke2fs -d takes one folder), half the disk at most.
  const stage = join(dir, 'stage');
  const picked = filesUpTo(baseTree, Math.floor(o.diskBytes * 0.45));
  const listFile = join(dir, 'base-files.txt');
  writeFileSync(listFile, picked.files.map((f) => f.slice(baseTree.length + 1)).join('\n') + '\n');
  mkdirSync(stage, { recursive: true });
  run('tar', ['-cf', join(dir, 'stage.tar'), '-C', baseTree, '-T', listFile], 'staging the base tree');
  run('tar', ['-xf', join(dir, 'stage.tar'), '-C', stage], 'staging the base tree');
  const baseRaw = join(dir, 'base.raw');
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', stage, baseRaw, `${Math.floor(o.diskBytes / 1024)}k`], 'mke2fs -d');
  const baseQcow2 = join(dir, 'base.qcow2');
  run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', baseRaw, baseQcow2], 'base.qcow2');
  const baseAtTarget = join(dir, 'base-at-target.qcow2');
  sparseCopy(baseQcow2, baseAtTarget);

  // The VM's changes, through the file system.
  const vmRaw = join(dir, 'vm.raw');
  sparseCopy(baseRaw, vmRaw);
  const changes = filesUpTo(changeTree, Math.floor(o.diskBytes * o.changedShare));
  const cmds = ['mkdir /vm-changes'];
  changes.files.forEach((f, i) => cmds.push(`write ${f} /vm-changes/${i}-${f.split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_')}`));
  const baseRel = picked.files.map((f) => f.slice(baseTree.length + 1)).filter((f) => !/\s/.test(f));
  baseRel.slice(0, Math.floor(baseRel.length / 2)).forEach((f, i) => {
    if (i % 4 === 0) cmds.push(`rm /${f}`);
  });
  const cmdFile = join(dir, 'debugfs.cmds');
  writeFileSync(cmdFile, cmds.join('\n') + '\n');
  run('debugfs', ['-w', '-f', cmdFile, vmRaw], 'debugfs -w');

  // The overlay: only the clusters that differ from the base.
  const vmQcow2 = join(dir, 'vm.qcow2');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vmRaw, '-F', 'raw', vmQcow2], 'vm.qcow2');
  run('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', baseQcow2, '-F', 'qcow2', vmQcow2], 'qemu-img rebase');
  const map = JSON.parse(run('qemu-img', ['map', '--output=json', vmQcow2], 'qemu-img map')) as Array<{ length: number; depth: number; data: boolean }>;
  const overlayDataBytes = map.filter((m) => m.depth === 0 && m.data).reduce((a, m) => a + m.length, 0);
  return { dir, baseQcow2, baseAtTarget, vmRaw, vmQcow2, baseFileBytes: picked.bytes, changedFileBytes: changes.bytes, overlayDataBytes };
}
