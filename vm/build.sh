#!/usr/bin/env bash
# Build kelp's cgroup v2 test VM from Debian packages, from scratch.
#
#   vm/build.sh [--force] [OUTDIR]        (OUTDIR defaults to vm/out)
#
# Produces in OUTDIR:
#   vmlinuz       Debian's kernel (linux-image-amd64's current ABI package)
#   vmlinux       the same kernel uncompressed (an ELF with a PVH entry: qemu
#                 boots it directly, which saves seconds under TCG)
#   initrd.img    tiny busybox initramfs: loads the virtio/ext4/9p modules,
#                 mounts /dev/vda and run.sh's 9p shares, switch_root to the
#                 runner (or systemd)
#   rootfs.ext4   mmdebstrap/debootstrap --variant=minbase root (systemd, iproute2,
#                 nftables, busybox-static, kmod, procps) with the kernel's
#                 modules and the kelp-run.service runner (vm/guest/)
#   qemu/         qemu-system-x86 unpacked from Debian's .debs, unless the
#                 host already has qemu-system-x86_64 (see below)
#   vm.env        what vm/run.sh needs to know (paths, kernel version)
#
# Needs root and Debian's apt (it installs mmdebstrap, cpio, xz-utils if
# missing). The root comes from mmdebstrap, Debian's faster debootstrap (same
# packages, same mirror; about 3x less CPU than debootstrap); set
# KELP_VM_BOOTSTRAP=debootstrap to use debootstrap itself.
# qemu is NOT installed with apt on purpose: on this machine kind qemu-utils 10
# (from backports) Breaks bookworm's qemu-system-common, so installing
# qemu-system-x86 would remove qemu-img. Unpacking the .debs avoids that.
#
# Skips the build when OUTDIR holds a complete build of the same inputs
# (vm/build.sh and vm/guest/*); --force rebuilds anyway.
#
# Environment: KELP_VM_SUITE (default bookworm), KELP_VM_MIRROR (default: the
# Debian mirror in /etc/apt/sources.list*), KELP_VM_KEEP_WORK=1 keeps the
# unpacked root in OUTDIR/work.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "build.sh: unknown option $1" >&2
		exit 2
		;;
	*) out=$1 ;;
	esac
	shift
done
out=${out:-$here/out}
suite=${KELP_VM_SUITE:-bookworm}
bootstrap=${KELP_VM_BOOTSTRAP:-mmdebstrap}
case "$bootstrap" in mmdebstrap | debootstrap) ;; *)
	echo "build.sh: KELP_VM_BOOTSTRAP must be mmdebstrap or debootstrap" >&2
	exit 2
	;;
esac
packages=systemd,systemd-sysv,kmod,iproute2,nftables,busybox-static,procps

t0=$(date +%s)
step() { echo "build.sh [$(($(date +%s) - t0)) s] $*" >&2; }
die() {
	echo "build.sh: error: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, chroot, mknod, mount)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work

# --- up to date? --------------------------------------------------------------
inputs_hash() {
	(cd "$here" && cat build.sh guest/*) | sha256sum | cut -d' ' -f1
}
hash=$(inputs_hash)
if [ "$force" = 0 ] && [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$hash" ]; then
	step "up to date: $out (use --force to rebuild)"
	exit 0
fi
rm -f "$out/.complete"

# --- cleanup: never leave mounts under $work ------------------------------------
umount_under() {
	local dir=$1 m
	# reverse order, deepest first
	awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" || true; done
}
fetch_pid=""
cleanup() {
	if [ -n "$fetch_pid" ] && kill -0 "$fetch_pid" 2>/dev/null; then
		kill "$fetch_pid" 2>/dev/null || true
		wait "$fetch_pid" 2>/dev/null || true
	fi
	umount_under "$work/rootfs"
	rm -f "$out"/*.new
	if [ "${KELP_VM_KEEP_WORK:-0}" = 1 ]; then
		echo "build.sh: kept $work (umount it when done, if it is a tmpfs)" >&2
	else
		umount_under "$work"
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT

# --- host packages --------------------------------------------------------------
apt_get() {
	# another apt may be running (other engineers, unattended jobs): wait for it
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		if apt-get -q -o DPkg::Lock::Timeout=120 -o APT::Sandbox::User=root "$@"; then
			return 0
		fi
		[ "$i" = 10 ] && return 1
		echo "build.sh: apt-get $1 failed, retrying in 5 s" >&2
		sleep 5
	done
}

step "apt-get update"
apt_get update >"$out/apt.log" 2>&1 || {
	cat "$out/apt.log" >&2
	die "apt-get update failed"
}
need=()
command -v "$bootstrap" >/dev/null || need+=("$bootstrap")
command -v cpio >/dev/null || need+=(cpio)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v xz >/dev/null || need+=(xz-utils)
if [ ${#need[@]} -gt 0 ]; then
	step "apt-get install ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt_get install -y --no-install-recommends "${need[@]}" \
		>>"$out/apt.log" 2>&1 || {
		tail -n 30 "$out/apt.log" >&2
		die "apt-get install ${need[*]} failed"
	}
fi

# --- mirror ---------------------------------------------------------------------
# First Debian archive (not -security) serving $suite in the apt sources.
find_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == s && $i !~ /security/) { print $i; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '
			/^[ \t]*$/ { if (ok && uri != "" && deb) { print uri; exit } ok = 0; uri = ""; deb = 0; next }
			tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
			tolower($1) == "uris:" { if ($2 !~ /security/) uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
			END { if (ok && uri != "" && deb) print uri }' "$f"
	done
}
mirror=${KELP_VM_MIRROR:-$(find_mirror | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
step "mirror $mirror, suite $suite"

umount_under "$work"
rm -rf --one-file-system "$work"
mkdir -p "$work"
# Build in RAM: dpkg fsyncs every file it unpacks, and removing the tree after
# is one umount. Falls back to the disk where tmpfs cannot be mounted.
mount -t tmpfs -o size=4g,mode=755 kelp-vm-build "$work" ||
	echo "build.sh: note: no tmpfs for $work, building on disk (slower)" >&2
mkdir -p "$work/debs" "$work/kernel"

# --- kernel and qemu .debs (resolved, fetched and unpacked during the bootstrap)
qemu_bin=$(command -v qemu-system-x86_64 || true)
fetch_debs() {
	local kpkg p qemu_pkgs=()
	kpkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
	if [ -z "$qemu_bin" ]; then
		# qemu-system-x86 and whatever of its dependencies the host lacks
		mapfile -t qemu_pkgs < <(apt-get -s -o Debug::NoLocking=1 install --no-install-recommends qemu-system-x86 |
			awk '$1 == "Inst" { print $2 }')
		[ ${#qemu_pkgs[@]} -gt 0 ] || die "cannot resolve qemu-system-x86's packages"
	fi
	echo "build.sh: fetching $kpkg${qemu_pkgs[*]:+ and ${#qemu_pkgs[@]} qemu packages: ${qemu_pkgs[*]}}" >&2
	cd "$work/debs"
	apt_get download "$kpkg" "${qemu_pkgs[@]}" >"$work/download.log" 2>&1 ||
		die "apt-get download failed: $(tail -n 5 "$work/download.log")"
	dpkg-deb -x "$work/debs/$kpkg"_*.deb "$work/kernel"
	if [ ${#qemu_pkgs[@]} -gt 0 ]; then
		rm -rf "$out/qemu"
		mkdir -p "$out/qemu"
		for p in "${qemu_pkgs[@]}"; do
			dpkg-deb -x "$work/debs/${p%%:*}"_*.deb "$out/qemu"
		done
	fi
}
fetch_debs &
fetch_pid=$!

# --- root filesystem ----------------------------------------------------------
root=$work/rootfs
step "$bootstrap --variant=minbase $suite (log: $out/bootstrap.log)"
if [ "$bootstrap" = mmdebstrap ]; then
	bootstrap_cmd=(mmdebstrap --mode=root --variant=minbase --include="$packages" "$suite" "$root" "$mirror")
else
	bootstrap_cmd=(debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror")
fi
if ! "${bootstrap_cmd[@]}" >"$out/bootstrap.log" 2>&1; then
	tail -n 30 "$out/bootstrap.log" >&2
	if [ -f "$root/debootstrap/debootstrap.log" ]; then tail -n 30 "$root/debootstrap/debootstrap.log" >&2; fi
	die "$bootstrap failed"
fi
umount_under "$root"

step "waiting for the .deb downloads"
fetch_rc=0
wait "$fetch_pid" || fetch_rc=$?
fetch_pid=""
[ "$fetch_rc" = 0 ] || die "fetching the kernel/qemu packages failed"
kver=$(ls "$work/kernel/lib/modules")
if [ -z "$kver" ] || [ ! -f "$work/kernel/boot/vmlinuz-$kver" ]; then
	die "no kernel in the linux-image package"
fi

step "installing kernel $kver modules into the root"
# Never unpack a .deb over the root itself: its ./lib would replace the
# merged-/usr symlink. Copy through the symlink instead.
mkdir -p "$root/lib/modules"
mv "$work/kernel/lib/modules/$kver" "$root/lib/modules/"
cp "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.new"
# The uncompressed ELF inside the bzImage (Debian compresses it with xz).
rm -f "$out/vmlinux.new"
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/vmlinuz.new" | head -n 1 | cut -d: -f1 || true)
# (xz stops after the stream: tail's SIGPIPE is expected, hence no pipefail)
if [ -n "$off" ] && (set +o pipefail && tail -c +$((off + 1)) "$out/vmlinuz.new" |
	xz -dc --single-stream >"$out/vmlinux.new" 2>/dev/null) &&
	[ "$(head -c 4 "$out/vmlinux.new" | od -An -c | tr -d ' ')" = '177ELF' ]; then
	:
else
	echo "build.sh: warning: could not extract vmlinux; run.sh will boot the bzImage" >&2
	rm -f "$out/vmlinux.new"
fi
# Drop hardware a VM never has (smaller image, faster mkfs).
moddir=$root/lib/modules/$kver/kernel
rm -rf "$moddir/sound" "$moddir/drivers/gpu" "$moddir/drivers/media" \
	"$moddir/drivers/infiniband" "$moddir/drivers/staging" "$moddir/drivers/iio" \
	"$moddir/drivers/comedi" "$moddir/drivers/net/wireless" "$moddir/drivers/bluetooth" \
	"$moddir/drivers/isdn" "$moddir/net/wireless" "$moddir/net/mac80211" \
	"$moddir/net/bluetooth"
chroot "$root" depmod -a "$kver"

step "configuring the root"
echo kelp-vm >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkelp-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo "# root is mounted by the initramfs; run.sh mounts its 9p shares itself" >"$root/etc/fstab"
install -m 0755 "$here/guest/kelp-runner" "$root/usr/local/sbin/kelp-runner"
install -m 0644 "$here/guest/kelp-run.service" "$root/etc/systemd/system/kelp-run.service"
sysd=$root/etc/systemd/system
mkdir -p "$sysd/multi-user.target.wants" "$root/etc/systemd/journald.conf.d"
ln -sf /etc/systemd/system/kelp-run.service "$sysd/multi-user.target.wants/kelp-run.service"
ln -sf /lib/systemd/system/multi-user.target "$sysd/default.target"
# nothing logs in: no gettys; no periodic jobs
for u in getty@.service serial-getty@.service console-getty.service getty.target \
	apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
	e2scrub_reap.service fstrim.timer systemd-timesyncd.service; do
	ln -sf /dev/null "$sysd/$u"
done
printf '[Journal]\nStorage=volatile\n' >"$root/etc/systemd/journald.conf.d/kelp.conf"
passwd -R "$root" -d root >/dev/null
printf 'kelp-vm suite=%s kernel=%s built=%s\n' "$suite" "$kver" "$(date -u +%FT%TZ)" >"$root/etc/kelp-vm-release"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
	"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
	"$root/debootstrap"
# a real machine-id: no "first boot" (systemd-firstboot would prompt on the console)
tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"

# --- initramfs -------------------------------------------------------------------
step "initramfs"
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp "$root/bin/busybox" "$ird/bin/busybox"
for applet in $("$ird/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$ird/bin/$applet"
done
mknod -m 600 "$ird/dev/console" c 5 1
install -m 0755 "$here/guest/initramfs-init" "$ird/init"
for m in virtio_pci virtio_blk ext4 9pnet_virtio 9p; do
	chroot "$root" modprobe -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
	cp "$root$ko" "$ird/modules/"
	basename "$ko" >>"$ird/modules/order"
done
[ -s "$ird/modules/order" ] || die "no modules for the initramfs"
(cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$out/initrd.img.new"

# --- root image -----------------------------------------------------------------
used_mb=$(du -sm "$root" | cut -f1)
size_mb=$((used_mb * 12 / 10 + 1024)) # sparse; room for what tests write
step "rootfs.ext4: ${used_mb} MB used, ${size_mb} MB image"
rm -f "$out/rootfs.ext4.new"
truncate -s "${size_mb}M" "$out/rootfs.ext4.new"
mkfs.ext4 -q -F -L kelp-root -d "$root" "$out/rootfs.ext4.new"

# --- qemu -----------------------------------------------------------------------
if [ -n "$qemu_bin" ]; then
	qemu_ld=""
	qemu_data=""
else
	qemu_bin=$out/qemu/usr/bin/qemu-system-x86_64
	qemu_ld=$out/qemu/usr/lib/x86_64-linux-gnu:$out/qemu/lib/x86_64-linux-gnu
	qemu_data=$out/qemu/usr/share/qemu:$out/qemu/usr/share/seabios
	LD_LIBRARY_PATH=$qemu_ld "$qemu_bin" --version >/dev/null ||
		die "unpacked qemu does not run: LD_LIBRARY_PATH=$qemu_ld $qemu_bin"
fi

mv "$out/vmlinuz.new" "$out/vmlinuz"
rm -f "$out/vmlinux"
[ -f "$out/vmlinux.new" ] && mv "$out/vmlinux.new" "$out/vmlinux"
mv "$out/initrd.img.new" "$out/initrd.img"
mv "$out/rootfs.ext4.new" "$out/rootfs.ext4"
{
	printf 'KELP_VM_KVER=%q\n' "$kver"
	printf 'KELP_VM_QEMU=%q\n' "$qemu_bin"
	printf 'KELP_VM_QEMU_LD=%q\n' "$qemu_ld"
	printf 'KELP_VM_QEMU_DATA=%q\n' "$qemu_data"
} >"$out/vm.env"
echo "$hash" >"$out/.complete"
step "done: $out ($(du -sh --apparent-size "$out/rootfs.ext4" | cut -f1) rootfs image, kernel $kver)"
