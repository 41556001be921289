#!/usr/bin/env bash
# Fetches a Linux kernel for the test guest without installing it: Debian's
# linux-image-*-cloud-amd64 (the version linux-image-cloud-amd64 depends on),
# downloaded with apt-get download and unpacked with dpkg -x.
# Result: $DEST/vmlinuz and $DEST/modules/ (the virtio modules the initramfs insmods).
# Usage: scripts/fetch-guest-kernel.sh [DEST]   (default .cache/guest). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.cache/guest}"
if [[ -s "$DEST/vmlinuz" && -f "$DEST/modules/virtio_blk.ko" ]]; then
  echo "guest kernel: cached in $DEST"
  exit 0
fi
command -v apt-get >/dev/null || { echo "guest kernel: apt-get is missing" >&2; exit 1; }
pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1)"
if [[ -z "$pkg" ]]; then
  echo "guest kernel: apt-cache does not know linux-image-cloud-amd64; running apt-get update" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq; else sudo -n apt-get update -qq; fi
  pkg="$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | head -n1)"
fi
[[ -n "$pkg" ]] || { echo "guest kernel: cannot find the package linux-image-cloud-amd64 depends on" >&2; exit 1; }
work="$(mktemp -d)"
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
( cd "$work" && apt-get download "$pkg" >/dev/null )
dpkg -x "$work"/"$pkg"_*.deb "$work/x"
mkdir -p "$DEST/modules"
cp "$work"/x/boot/vmlinuz-* "$DEST/vmlinuz"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  f="$(find "$work/x/lib/modules" -name "$m.ko*" | head -n1)"
  [[ -n "$f" ]] || { echo "guest kernel: module $m not found in $pkg" >&2; exit 1; }
  case "$f" in
    *.ko.xz) xz -dc "$f" > "$DEST/modules/$m.ko" ;;
    *.ko.zst) zstd -dcq "$f" > "$DEST/modules/$m.ko" ;;
    *) cp "$f" "$DEST/modules/$m.ko" ;;
  esac
done
echo "$pkg" > "$DEST/package"
echo "guest kernel: $pkg unpacked into $DEST"
