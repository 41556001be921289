/**
 * A tiny Linux test guest: Debian's cloud kernel (scripts/fetch-guest-kernel.sh),
 * an initramfs built here (cpio newc, no external tool) from busybox-static,
 * the virtio modules and an init script that runs a self-checking write
 * workload on /dev/vda (and /dev/vdb … with flimcd.disks=N).
 *
 * The workload (init script below) writes whole blocks of random content at
 * random offsets with O_DIRECT, and after each completed write appends
 * "BLOCK MD5" to a log in the initramfs' tmpfs — guest RAM, so the log
 * migrates with the VM. It also does O_DIRECT reads. When the host sends a
 * line "STOP" on the serial console, it finishes the write in progress, drops
 * the page cache, re-reads every block it ever wrote (O_DIRECT) and compares
 * it with the last checksum logged for it, then prints the final log and one
 * verdict line:
 *
 *   FLIMCD-GUEST VERIFY PASS blocks=N writes=W
 *   FLIMCD-GUEST VERIFY FAIL bad=B blocks=N ioerrors=E writes=W
 *
 * Parameters come from the kernel command line: flimcd.bs (bytes per write,
 * default 65536), flimcd.reads (reads per write, default 2), flimcd.hot
 * (per cent of writes that go to the hot tenth of the disk, default 80),
 * flimcd.pause (seconds of sleep between writes, default 0), flimcd.rate
 * (writes per second, default 0: closed loop), flimcd.content (1: real file
 * content, default 0: random bytes), flimcd.disks (how many virtio disks, vda,
 * vdb …, default 1: the writes take turns).
 *
 * flimcd.rate makes the workload open-loop: write k is due at (k-1)/rate
 * seconds after READY whatever the disk does; a write that the disk holds up
 * delays the ones behind it, which then run back to back until the schedule is
 * met again. So a method that slows the guest's writes shows as a lower
 * achieved rate, not as a lighter workload.
 *
 * flimcd.content=1 takes each block's content from files packed into the
 * initramfs under /corpus (`realContentFiles`): half the writes a chunk of a
 * tar of a real tree (unpacking), three in ten a chunk of its gzip
 * (compressing), two in ten the next chunk of a real log appended to a log
 * area at the end of the disk; each block starts with a line naming its write,
 * so no two writes are the same.
 *
 * The final log prints one line per written block: `FLIMCD-LOG BLOCK MD5` for
 * vda and `FLIMCD-LOG DEV BLOCK MD5` for the others.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FlimcdError } from '../../src/errors.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const GUEST_CACHE_DIR = process.env.FLIMCD_GUEST_DIR ?? join(REPO_ROOT, '.cache', 'guest');
export const GUEST_MODULES = ['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk'] as const;

export interface GuestKernel {
  vmlinuz: string;
  modulesDir: string;
  package: string;
}

/** The cached kernel, if present. */
export function findGuestKernel(dir = GUEST_CACHE_DIR): GuestKernel | undefined {
  const vmlinuz = join(dir, 'vmlinuz');
  const modulesDir = join(dir, 'modules');
  if (!existsSync(vmlinuz) || !GUEST_MODULES.every((m) => existsSync(join(modulesDir, `${m}.ko`)))) return undefined;
  const pkgFile = join(dir, 'package');
  return { vmlinuz, modulesDir, package: existsSync(pkgFile) ? readFileSync(pkgFile, 'utf8').trim() : 'unknown' };
}

/** The cached kernel, fetched with scripts/fetch-guest-kernel.sh when missing. Throws with the script's output on failure. */
export function ensureGuestKernel(dir = GUEST_CACHE_DIR): GuestKernel {
  const have = findGuestKernel(dir);
  if (have) return have;
  const r = spawnSync(join(REPO_ROOT, 'scripts', 'fetch-guest-kernel.sh'), [dir], { encoding: 'utf8', timeout: 300_000 });
  const got = findGuestKernel(dir);
  if (!got) throw new FlimcdError(`cannot get a guest kernel (scripts/fetch-guest-kernel.sh exited ${r.status}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim().slice(-500)}`, ErrorCode.GUEST_KERNEL);
  return got;
}

export const BUSYBOX = '/bin/busybox';

export const INIT_SCRIPT = String.raw`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  insmod /lib/modules/$m.ko || echo "FLIMCD-GUEST FAIL insmod $m"
done
arg() { v=$(sed -n "s/.*flimcd\.$1=\([0-9.]*\).*/\1/p" /proc/cmdline); echo "${"$"}{v:-$2}"; }
BS=$(arg bs 65536)
READS=$(arg reads 2)
HOT=$(arg hot 80)
PAUSE=$(arg pause 0)
RATE=$(arg rate 0)
CONTENT=$(arg content 0)
ND=$(arg disks 1)
DEVS=""; n=0
for x in a b c d e f g h; do [ $n -lt $ND ] || break; DEVS="$DEVS vd$x"; n=$((n+1)); done
for dev in $DEVS; do
  i=0
  while [ ! -b /dev/$dev ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
  if [ ! -b /dev/$dev ]; then echo "FLIMCD-GUEST VERIFY FAIL no /dev/$dev"; while true; do sleep 3600; done; fi
  nb=$(( $(cat /sys/block/$dev/size) * 512 / BS ))
  hotn=$((nb / 10)); [ $hotn -gt 0 ] || hotn=1
  logn=$((nb / 20)); [ $logn -gt 0 ] || logn=1
  eval "NB_$dev=$nb HOTN_$dev=$hotn HOT0_$dev=$((nb / 3)) LOGN_$dev=$logn LOG0_$dev=$((nb - logn))"
done
NB=$NB_vda
rnd() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }
now_cs() { read -r up _ </proc/uptime; echo $(( ${"$"}{up%.*} * 100 + 1${"$"}{up#*.} - 100 )); }
chunks() { echo $(( $(wc -c <$1) / 4096 )); }
if [ "$CONTENT" = 1 ]; then TARN=$(chunks /corpus/tree.tar); GZN=$(chunks /corpus/tree.tar.gz); LOGC=$(chunks /corpus/log); fi
workload() {
  seq=0; err=0; logseq=0; T0=$(now_cs)
  while [ ! -e /tmp/stop ]; do
    seq=$((seq+1))
    if [ "$RATE" != 0 ]; then
      while [ $(( ($(now_cs) - T0) * RATE )) -lt $(( (seq - 1) * 100 )) ] && [ ! -e /tmp/stop ]; do sleep 0.02; done
    fi
    set -- $DEVS; shift $((seq % ND)); dev=$1
    eval "nb=\$NB_$dev hotn=\$HOTN_$dev hot0=\$HOT0_$dev logn=\$LOGN_$dev log0=\$LOG0_$dev"
    if [ $((RANDOM % 100)) -lt $HOT ]; then b=$((hot0 + $(rnd $hotn))); else b=$(rnd $nb); fi
    if [ "$CONTENT" = 1 ]; then
      k=$((RANDOM % 10))
      if [ $k -ge 8 ]; then
        b=$((log0 + logseq % logn)); src=/corpus/log; off=$(( (logseq * BS / 4096) % LOGC )); logseq=$((logseq+1))
      elif [ $k -ge 5 ]; then src=/corpus/tree.tar.gz; off=$(rnd $GZN)
      else src=/corpus/tree.tar; off=$(rnd $TARN); fi
      { echo "flimcd write $seq block $b"; dd if=$src bs=4096 skip=$off count=$((BS / 4096)) 2>/dev/null; dd if=/dev/zero bs=$BS count=1 2>/dev/null; } | dd of=/tmp/blk bs=$BS count=1 iflag=fullblock 2>/dev/null
    else
      dd if=/dev/urandom of=/tmp/blk bs=$BS count=1 iflag=fullblock 2>/dev/null
    fi
    sum=$(md5sum </tmp/blk); sum=${"$"}{sum%% *}
    if dd if=/tmp/blk of=/dev/$dev bs=$BS seek=$b count=1 oflag=direct conv=notrunc 2>/dev/null; then
      echo "$dev $b $sum" >>/tmp/log
    else
      err=$((err+1)); echo "FLIMCD-GUEST IOERROR write disk=$dev block=$b seq=$seq"
      echo "$dev $b ?" >>/tmp/log
    fi
    r=0
    while [ $r -lt $READS ]; do
      dd if=/dev/$dev of=/dev/null bs=$BS skip=$(rnd $nb) count=1 iflag=direct 2>/dev/null || { err=$((err+1)); echo "FLIMCD-GUEST IOERROR read disk=$dev seq=$seq"; }
      r=$((r+1))
    done
    [ $((seq % 25)) -eq 0 ] && echo "FLIMCD-GUEST PROGRESS writes=$seq"
    [ "$PAUSE" = 0 ] || sleep $PAUSE
  done
  echo "$seq $err" >/tmp/wrote
}
: >/tmp/log
echo "FLIMCD-GUEST READY blocks=$NB bs=$BS"
workload &
WPID=$!
while read -r line; do
  case "$line" in *STOP*) break ;; esac
done
touch /tmp/stop
wait $WPID
read -r WRITES ERR </tmp/wrote
echo "FLIMCD-GUEST STOPPED writes=$WRITES"
sync
echo 3 >/proc/sys/vm/drop_caches
awk '{ last[$1 " " $2] = $3 } END { for (k in last) print k, last[k] }' /tmp/log >/tmp/final
n=0; bad=0
while read -r dev b sum; do
  n=$((n+1))
  got=$(dd if=/dev/$dev bs=$BS skip=$b count=1 iflag=direct 2>/dev/null | md5sum); got=${"$"}{got%% *}
  if [ "$got" != "$sum" ]; then bad=$((bad+1)); echo "FLIMCD-GUEST MISMATCH disk=$dev block=$b want=$sum got=$got"; fi
done </tmp/final
echo "FLIMCD-LOG-BEGIN"
while read -r dev b sum; do
  if [ "$dev" = vda ]; then echo "FLIMCD-LOG $b $sum"; else echo "FLIMCD-LOG $dev $b $sum"; fi
done </tmp/final
echo "FLIMCD-LOG-END"
if [ $bad -eq 0 ] && [ "$ERR" = 0 ]; then
  echo "FLIMCD-GUEST VERIFY PASS blocks=$n writes=$WRITES"
else
  echo "FLIMCD-GUEST VERIFY FAIL bad=$bad blocks=$n ioerrors=$ERR writes=$WRITES"
fi
while true; do sleep 3600; done
`;

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

/** Builds a cpio archive in the "newc" format the kernel unpacks as initramfs. */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => (4 - (n % 4)) % 4;
  const hex = (v: number) => v.toString(16).padStart(8, '0');
  let ino = 1;
  const push = (e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const fields = [ino++, e.mode, 0, 0, e.mode & S_IFDIR ? 2 : 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0];
    const header = Buffer.from('070701' + fields.map(hex).join(''), 'ascii');
    parts.push(header, name, Buffer.alloc(pad4(header.length + name.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) push(e);
  push({ name: 'TRAILER!!!', mode: 0 });
  const out = Buffer.concat(parts);
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]);
}

/** Writes the test guest's initramfs to `out`. */
export function buildInitramfs(out: string, kernel: GuestKernel, o: { busybox?: string; init?: string; files?: Array<{ name: string; data: Buffer }> } = {}): void {
  const busybox = o.busybox ?? BUSYBOX;
  if (!existsSync(busybox)) throw new FlimcdError(`${busybox} is missing (install busybox-static)`, ErrorCode.GUEST_KERNEL);
  const dirs = ['bin', 'dev', 'proc', 'sys', 'tmp', 'lib', 'lib/modules', ...(o.files?.length ? ['corpus'] : [])];
  const mods = readdirSync(kernel.modulesDir).filter((f) => f.endsWith('.ko'));
  writeFileSync(
    out,
    cpioNewc([
      ...dirs.map((d) => ({ name: d, mode: S_IFDIR | 0o755 })),
      { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
      { name: 'bin/busybox', mode: S_IFREG | 0o755, data: readFileSync(busybox) },
      { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(o.init ?? INIT_SCRIPT) },
      ...mods.map((m) => ({ name: `lib/modules/${m}`, mode: S_IFREG | 0o644, data: readFileSync(join(kernel.modulesDir, m)) })),
      ...(o.files ?? []).map((f) => ({ name: f.name, mode: S_IFREG | 0o644, data: f.data })),
    ]),
  );
}

/** Kernel command line for the test guest with workload parameters. */
export function guestCmdline(p: { bs?: number; reads?: number; hot?: number; pause?: number; rate?: number; content?: 'random' | 'real'; disks?: number } = {}): string {
  // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic ("IO-APIC + timer doesn't work").
  const parts = ['console=ttyS0', 'quiet', 'panic=-1', 'rdinit=/init', 'no_timer_check'];
  if (p.bs !== undefined) parts.push(`flimcd.bs=${p.bs}`);
  if (p.reads !== undefined) parts.push(`flimcd.reads=${p.reads}`);
  if (p.hot !== undefined) parts.push(`flimcd.hot=${p.hot}`);
  if (p.pause !== undefined) parts.push(`flimcd.pause=${p.pause}`);
  if (p.rate !== undefined) parts.push(`flimcd.rate=${p.rate}`);
  if (p.content === 'real') parts.push('flimcd.content=1');
  if (p.disks !== undefined) parts.push(`flimcd.disks=${p.disks}`);
  return parts.join(' ');
}

/**
 * Real file content for `flimcd.content=1`, under /corpus in the initramfs:
 * tree.tar (files of `tree` in name order, up to `maxBytes`), tree.tar.gz
 * (its gzip) and log (a real log of this machine, up to `maxBytes`).
 */
export function realContentFiles(dir: string, o: { tree?: string; log?: string; maxBytes?: number } = {}): Array<{ name: string; data: Buffer }> {
  const tree = o.tree ?? '/usr/share/doc';
  const max = o.maxBytes ?? 4 * 1024 * 1024;
  const list: string[] = [];
  let total = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (total >= max) return;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        list.push(p.slice(tree.length + 1));
        total += statSync(p).size + 512;
      }
    }
  };
  walk(tree);
  const tar = join(dir, 'corpus.tar');
  const r = spawnSync('tar', ['-cf', tar, '-C', tree, '--', ...list], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new FlimcdError(`tar of ${tree} failed: ${r.stderr}`, ErrorCode.TEST);
  const tarData = readFileSync(tar);
  const gz = gzipSync(tarData);
  const logFile = o.log ?? ['/var/log/dpkg.log', '/var/log/apt/history.log', '/var/log/alternatives.log'].find((f) => existsSync(f));
  const log = logFile ? readFileSync(logFile).subarray(0, max) : tarData.subarray(0, max);
  // Each file at least one write long, so the guest's chunk count is never 0.
  const atLeast = (b: Buffer) => (b.length >= 65536 ? b : Buffer.concat([b, Buffer.alloc(65536 - b.length)]));
  return [
    { name: 'corpus/tree.tar', data: atLeast(tarData) },
    { name: 'corpus/tree.tar.gz', data: atLeast(gz) },
    { name: 'corpus/log', data: atLeast(log) },
  ];
}
