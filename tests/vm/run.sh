#!/usr/bin/env bash
# Runs a command inside a small virtual machine whose kernel has what this machine's kernel lacks
# (XFS project quotas): Debian 12's stock kernel under qemu (emulated; nested KVM hangs here), with this
# machine's root file system shared read-write over 9p as the VM's root, and a fresh XFS disk
# mounted with prjquota at /srv/xfs. The VM's own /run (with /run/tmp as its TMPDIR),
# /var/lib/docker and /var/lib/containerd are tmpfs, so its Docker engine shares nothing with the
# host's.
#
#   tests/vm/run.sh 'bash -lc "cd /work && cargo test"'   → the command's exit status
#
# Needs root (9p passthrough), qemu-system-x86, kmod, xfsprogs, busybox-static. The kernel
# package is fetched once with apt-get download and kept under $GPUDECK_VM_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vm=${GPUDECK_VM_DIR:-$here/../../target/vm}
mkdir -p "$vm"
vm=$(cd "$vm" && pwd)
kver=${GPUDECK_VM_KERNEL:-}

if [ -z "$kver" ]; then
  kver=$(ls "$vm/root/lib/modules" 2>/dev/null | head -1 || true)
fi
if [ -z "$kver" ] || [ ! -e "$vm/root/boot/vmlinuz-$kver" ]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  echo "vm: fetching $pkg" >&2
  (cd "$vm" && rm -f linux-image-*.deb && { apt-get download -q "$pkg" 2>/dev/null >&2 ||
    { apt-get update -q >&2 && apt-get download -q "$pkg" 2>/dev/null >&2; }; })
  rm -rf "$vm/root"
  dpkg-deb -x "$vm"/linux-image-*.deb "$vm/root"
  rm -f "$vm"/linux-image-*.deb
  kver=$(ls "$vm/root/lib/modules" | head -1)
  depmod -b "$vm/root" "$kver"
fi

# The initramfs: busybox, the modules needed to reach the 9p root and the XFS disk, and /init.
if [ ! -e "$vm/initrd.img" ] || [ "$here/run.sh" -nt "$vm/initrd.img" ]; then
  ird=$(mktemp -d)
  mkdir -p "$ird"/{bin,dev,proc,sys,newroot,mods}
  cp "$(command -v busybox)" "$ird/bin/busybox"
  for a in sh mount insmod switch_root mkdir poweroff cat echo sleep sed; do ln -s busybox "$ird/bin/$a"; done
  i=0
  modprobe -d "$vm/root" -S "$kver" -a --show-depends 9p 9pnet_virtio virtio_pci virtio_blk xfs |
    awk '$1=="insmod"{print $2}' | awk '!seen[$0]++' | while read -r m; do
      i=$((i + 1))
      cp "$m" "$ird/mods/$(printf %02d "$i")-$(basename "$m")"
    done
  cat >"$ird/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod "$m" 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=mmap,access=any hostroot /newroot || { echo "vm: 9p mount failed"; poweroff -f; }
for d in proc sys dev; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /bin/bash "$(sed 's/.*gd_inside=\([^ ]*\).*/\1/' /newroot/proc/cmdline)"
EOF
  chmod +x "$ird/init"
  (cd "$ird" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$vm/initrd.tmp" && mv "$vm/initrd.tmp" "$vm/initrd.img"
  rm -rf "$ird"
fi

# What runs inside: the mounts the VM needs, then the command (which starts its own Docker engine,
# e.g. through tests/rig/setup.sh).
cat >"$vm/inside.sh" <<EOF
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
# /tmp stays the host's (the checkout may live there); the VM's own scratch space is /run/tmp.
for d in /run /var/lib/docker /var/lib/containerd; do mkdir -p \$d; mount -t tmpfs tmpfs \$d; done
mkdir -p /run/tmp && export TMPDIR=/run/tmp
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
ip link set lo up 2>/dev/null
# The VM kernel's modules, loaded from where they were unpacked (modprobe -d): nothing is mounted
# on the host's /lib/modules, which a fresh host (a container) may not even have. The Docker
# engine finds overlay loaded and uses overlay2.
modprobe -d "$vm/root" -a overlay loop xfs || { echo "vm: loading overlay, loop and xfs failed"; echo 1 >"$vm/rc"; echo o >/proc/sysrq-trigger; sleep 30; }
mkdir -p /srv/xfs && mount -o prjquota /dev/vda /srv/xfs
cd "$PWD"
rc=0
( $* ) || rc=\$?
echo "\$rc" >"$vm/rc"
sync
echo o >/proc/sysrq-trigger
sleep 30
EOF
chmod +x "$vm/inside.sh"
truncate -s 0 "$vm/xfs.img" && truncate -s 2G "$vm/xfs.img"
mkfs.xfs -q -f "$vm/xfs.img"
rm -f "$vm/rc"

echo "vm: booting $kver (emulated: KVM here is nested and does not boot it)" >&2
# One vCPU by default: with two, emulated (TCG) vCPUs were seen to lock up for good on a fresh
# machine (runc and its child each "stuck" on one CPU for minutes, until the timeout).
timeout "${GPUDECK_VM_TIMEOUT:-1200}" qemu-system-x86_64 -accel tcg -m 3072 -smp "${GPUDECK_VM_CPUS:-1}" -cpu max \
  -kernel "$vm/root/boot/vmlinuz-$kver" -initrd "$vm/initrd.img" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 gd_inside=$vm/inside.sh" \
  -nographic -no-reboot -nodefaults -serial stdio \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,id=hostroot" \
  -drive "file=$vm/xfs.img,if=virtio,format=raw,cache=unsafe" >&2 || true
[ -s "$vm/rc" ] || { echo "vm: the command did not finish (no exit status)" >&2; exit 1; }
exit "$(cat "$vm/rc")"
