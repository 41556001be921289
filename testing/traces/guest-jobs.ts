/**
 * The init script of the recording guest (testing/traces/record.ts): mounts
 * the ext4 disk (/dev/vda, served by `flimcd export --record-trace`) at /mnt
 * and runs one job of real busybox programs for `flimcd.secs` seconds of
 * guest time, then syncs, unmounts and prints `FLIMCD-TRACE DONE`.
 *
 * The disk holds the tree under /mnt/tree (doc/, python3/, python3.11/; see
 * image.ts). Jobs (`flimcd.job=`):
 *
 * - walk: reads every file of the tree (find | xargs cat), 30 s pause, again.
 * - targz: tar | gzip of one tree directory into /mnt/archive, then unpacks
 *   it into /mnt/restore (gzip -d | tar x); the next directory; 20 s pauses.
 * - backup: the same backup (tar | gzip of tree/doc into /mnt/backup) every
 *   180 s, and between runs a log line appended every 15 s (a cron box).
 * - spool: a mail spool: bursts of 5..64 deliveries (a header and 1..17 KiB
 *   of text taken from a tree file, a new file per message plus an append to
 *   the recipient's mbox, sync every 10), the oldest messages beyond 400
 *   deleted, an mbox emptied when over 2 MiB ("read"); 2..16 s idle.
 * - mixed: a day in small: an indexer walk of python3, mail bursts, a backup
 *   of python3.11, a tar/gzip + restore of python3, idle gaps of 20..80 s,
 *   in turn until the time is up.
 *
 * Guest RAM (record.ts: 128 MiB) is smaller than tree/doc and the tree, so
 * re-reads of them reach the disk, as they do on a VM whose data outgrows
 * its page cache. ext4 is built into the Debian cloud kernel (CONFIG_EXT4_FS=y);
 * ext4, jbd2, mbcache, crc16 and crc32c modules are loaded when the kernel
 * has them as modules instead (record.ts copies any it finds).
 */
import { GUEST_MODULES } from '../qemu/guest.ts';

export const TRACE_JOBS = ['walk', 'targz', 'backup', 'spool', 'mixed'] as const;
export type TraceJob = (typeof TRACE_JOBS)[number];

/** Modules for ext4, in load order, used when the kernel has them as modules. */
export const EXT4_MODULES = ['crc16', 'crc32c_generic', 'libcrc32c', 'mbcache', 'jbd2', 'ext4'] as const;

export const TRACE_INIT = String.raw`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
fail() { echo "FLIMCD-TRACE FAIL $*"; while true; do sleep 3600; done; }
for m in ${GUEST_MODULES.join(' ')}; do insmod /lib/modules/$m.ko || fail "insmod $m"; done
for m in ${EXT4_MODULES.join(' ')}; do [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko; done
grep -q ext4 /proc/filesystems || fail "no ext4 in this kernel"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
[ -b /dev/vda ] || fail "no /dev/vda"
mount -t ext4 /dev/vda /mnt || fail "mount /dev/vda"
arg() { v=$(sed -n "s/.*flimcd\.$1=\([a-z0-9.]*\).*/\1/p" /proc/cmdline); echo "${"$"}{v:-$2}"; }
JOB=$(arg job walk)
SECS=$(arg secs 630)
up() { cut -d. -f1 /proc/uptime; }
T0=$(up)
el() { echo $(( $(up) - T0 )); }
say() { echo "FLIMCD-TRACE t=$(el) $*"; }
left() { [ $(el) -lt $SECS ]; }
idle() { n=$1; while [ $n -gt 0 ] && left; do sleep 1; n=$((n-1)); done; }
walk_tree() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }
backup() {
  mkdir -p /mnt/backup
  tar cf - -C /mnt/tree "$1" | gzip -c >/mnt/backup/$1.tar.gz.tmp && mv /mnt/backup/$1.tar.gz.tmp /mnt/backup/$1.tar.gz
  sync
}
targz_restore() {
  mkdir -p /mnt/archive /mnt/restore
  tar cf - -C /mnt/tree "$1" | gzip -c >/mnt/archive/$1.tar.gz
  sync
  rm -rf /mnt/restore/$1
  gzip -dc /mnt/archive/$1.tar.gz | tar xf - -C /mnt/restore
  sync
}
find /mnt/tree/doc -type f -size +1k >/tmp/files
NF=$(wc -l </tmp/files)
SEQ=1; OLD=1
mkdir -p /mnt/spool/new /mnt/spool/mbox /mnt/var/log
spool_burst() {
  k=0
  while [ $k -lt $1 ]; do
    f=$(sed -n "$(( (RANDOM * 32768 + RANDOM) % NF + 1 ))p" /tmp/files)
    u=$((RANDOM % 16))
    m=/mnt/spool/new/$SEQ
    { echo "From: user$((RANDOM % 64))@example.org"; echo "To: user$u@example.org"; echo "Message-Id: <$SEQ.$(el)@flimcd>"; echo; head -c $((1024 + RANDOM % 16384)) "$f"; echo; } >$m
    cat $m >>/mnt/spool/mbox/user$u
    [ $(wc -c </mnt/spool/mbox/user$u) -gt 2097152 ] && : >/mnt/spool/mbox/user$u
    SEQ=$((SEQ+1)); k=$((k+1))
    [ $((k % 10)) -eq 0 ] && sync
  done
  while [ $OLD -lt $((SEQ - 400)) ]; do rm -f /mnt/spool/new/$OLD; OLD=$((OLD+1)); done
  sync
}
spool_for() { e=$(( $(el) + $1 )); while [ $(el) -lt $e ] && left; do spool_burst $((5 + RANDOM % 60)); idle $((2 + RANDOM % 15)); done; }
say "START job=$JOB secs=$SECS files=$NF"
pass=0
case "$JOB" in
  walk) while left; do walk_tree /mnt/tree; pass=$((pass+1)); say "walk pass=$pass"; idle 30; done ;;
  targz) while left; do for d in doc python3 python3.11; do left || break; targz_restore $d; say "targz $d"; idle 20; done; done ;;
  backup)
    while left; do
      next=$(( $(el) + 180 )); backup doc; pass=$((pass+1)); say "backup run=$pass"
      while [ $(el) -lt $next ] && left; do echo "$(date) cron: ok" >>/mnt/var/log/cron.log; idle 15; done
    done ;;
  spool) spool_for $SECS; say "spool messages=$((SEQ-1))" ;;
  mixed)
    while left; do
      walk_tree /mnt/tree/python3; say "mixed index"; idle $((20 + RANDOM % 60))
      spool_for 90; say "mixed mail"; idle $((20 + RANDOM % 60))
      left && backup python3.11; say "mixed backup"; idle $((20 + RANDOM % 60))
      left && targz_restore python3; say "mixed targz"; idle $((20 + RANDOM % 60))
    done ;;
  *) fail "unknown job $JOB" ;;
esac
sync
umount /mnt || fail "umount"
say "DONE"
while true; do sleep 3600; done
`;

/** Kernel command line of the recording guest. */
export function traceCmdline(job: TraceJob, secs: number): string {
  return ['console=ttyS0', 'quiet', 'panic=-1', 'rdinit=/init', `flimcd.job=${job}`, `flimcd.secs=${Math.round(secs)}`].join(' ');
}
