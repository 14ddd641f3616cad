#!/usr/bin/env bash
# Run a command as root inside kelp's cgroup v2 test VM (built by vm/build.sh).
#
#   vm/run.sh [options] -- COMMAND [ARG...]
#
# Options:
#   --out DIR        build output of vm/build.sh (default vm/out)
#   --share DIR      host directory made visible in the guest at the same
#                    absolute path (default: the repository root); read-only
#                    unless --rw
#   --rw             share DIR read-write (guest root writes as root)
#   --env NAME=VAL   set NAME in the command's environment (repeatable)
#   --timeout SEC    kill the VM after SEC seconds (default 600); exit 124
#   --mem MB         guest memory (default 1024)
#   --cpus N         guest CPUs (default: host CPUs, at most 4)
#   --log FILE       where to keep the guest console log (default OUTDIR/console.log)
#   --systemd        boot systemd as init and run COMMAND from kelp-run.service
#                    (Delegate=yes); default: the runner itself is PID 1, which
#                    boots much faster (API filesystems mounted as systemd would)
#   --accel A        kvm, tcg or auto (default, or $KELP_VM_ACCEL): KVM when the
#                    CPU has VT-x/AMD-V and /dev/kvm is usable, else TCG. On
#                    this project's machines /dev/kvm is kvm_pvm, which only
#                    runs PVM-built guest kernels, so auto picks TCG there.
#
# COMMAND runs via bash in the guest, in the current directory if that lies in
# the share, else in the share's root, with KELP_VM=1 and KELP_VM_CGROUP set:
# a cgroup delegated to the command, all controllers enabled in its
# subtree_control (/sys/fs/cgroup/kelp-run, or kelp-run.service's cgroup with
# --systemd); the runner itself sits in its leaf "runner". The command may as
# well create cgroups anywhere under /sys/fs/cgroup. Its stdout and stderr are streamed to
# ours; run.sh exits with its exit status (125 when the guest failed to report
# one, 124 on timeout). The root disk is a qemu snapshot: every run starts
# from the pristine image and nothing the guest writes to it is kept.
#
# The guest boots Debian's kernel with systemd.unified_cgroup_hierarchy=1
# cgroup_no_v1=all: cgroup v2 is the only hierarchy, every controller enabled
# in the root cgroup's subtree_control.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/out
share=$(cd "$here/.." && pwd)
rw=0
timeout=600
mem=1024
cpus=$(nproc)
[ "$cpus" -gt 4 ] && cpus=4
log=""
envs=()
init=/usr/local/sbin/kelp-runner
accel=${KELP_VM_ACCEL:-auto}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "${1:-0}"
}
die() {
	echo "run.sh: error: $*" >&2
	exit 125
}
while [ $# -gt 0 ]; do
	case "$1" in
	--out | --share | --env | --timeout | --mem | --cpus | --log | --accel)
		[ $# -ge 2 ] || die "$1 needs a value"
		;;
	esac
	case "$1" in
	--out) out=$2; shift ;;
	--share) share=$2; shift ;;
	--rw) rw=1 ;;
	--env)
		[[ "$2" == [A-Za-z_]*=* ]] || die "--env wants NAME=VALUE, got '$2'"
		envs+=("$2")
		shift
		;;
	--timeout) timeout=$2; shift ;;
	--mem) mem=$2; shift ;;
	--cpus) cpus=$2; shift ;;
	--log) log=$2; shift ;;
	--systemd) init=/sbin/init ;;
	--accel) accel=$2; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
	shift
done
[ $# -gt 0 ] || {
	echo "run.sh: no COMMAND given" >&2
	usage 2 >&2
}

if [ ! -f "$out/vm.env" ] || [ ! -f "$out/.complete" ]; then
	die "no VM build in $out: run vm/build.sh first"
fi
out=$(cd "$out" && pwd)
share=$(cd "$share" && pwd)
case "$share" in
/ | /dev | /dev/* | /proc | /proc/* | /sys | /sys/* | /run | /run/kelp-ctl*) die "cannot share $share" ;;
esac
log=${log:-$out/console.log}
case "$accel" in
auto)
	accel=tcg
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; fi
	;;
kvm) [ -w /dev/kvm ] || die "/dev/kvm is not available (or not writable by $(id -un))" ;;
tcg) ;;
*) die "--accel wants kvm, tcg or auto, got '$accel'" ;;
esac

KELP_VM_QEMU="" KELP_VM_QEMU_LD="" KELP_VM_QEMU_DATA=""
# shellcheck source=/dev/null
. "$out/vm.env"

ctl=$(mktemp -d "${TMPDIR:-/tmp}/kelp-vm.XXXXXX")
qpid="" tails=()
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local p
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		wait "$qpid" 2>/dev/null || true
	fi
	for p in "${tails[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	if [ -f "$ctl/console.log" ]; then cp "$ctl/console.log" "$log" 2>/dev/null || true; fi
	rm -rf "$ctl"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- what the guest runs ----------------------------------------------------------
cwd=$share
case "$PWD/" in "$share"/*) cwd=$PWD ;; esac
{
	printf 'KELP_SHARE=%q\n' "$share"
	printf 'KELP_SHARE_RO=%q\n' "$((1 - rw))"
} >"$ctl/config"
{
	printf 'cd %q || exit 125\n' "$cwd"
	for e in "${envs[@]}"; do
		printf 'export %q=%q\n' "${e%%=*}" "${e#*=}"
	done
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$ctl/cmd.sh"
: >"$ctl/stdout"
: >"$ctl/stderr"

# --- boot -------------------------------------------------------------------------
qemu=(env)
[ -n "$KELP_VM_QEMU_LD" ] && qemu+=("LD_LIBRARY_PATH=$KELP_VM_QEMU_LD")
qemu+=("$KELP_VM_QEMU")
if [ -n "$KELP_VM_QEMU_DATA" ]; then
	IFS=: read -ra dirs <<<"$KELP_VM_QEMU_DATA"
	for d in "${dirs[@]}"; do qemu+=(-L "$d"); done
fi
ro9p=""
[ "$rw" = 1 ] || ro9p=",readonly=on"
append="console=ttyS0 quiet loglevel=4 panic=-1 kelp.init=$init"
append+=" systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
append+=" systemd.show_status=false systemd.log_target=console systemd.log_level=warning"
if [ "$accel" = kvm ]; then
	qemu+=(-accel kvm -cpu "host,-arch-capabilities")
else
	# no PTI, no crypto self-tests: each saves seconds of emulation
	append+=" mitigations=off cryptomgr.notests"
	qemu+=(-accel "tcg,thread=multi" -cpu qemu64)
fi
kernel=$out/vmlinuz
[ -f "$out/vmlinux" ] && kernel=$out/vmlinux # PVH entry: no decompression
qemu+=(
	-machine q35 -bios qboot.rom -m "$mem" -smp "$cpus"
	-nodefaults -no-user-config -display none -no-reboot
	-serial "file:$ctl/console.log"
	-kernel "$kernel" -initrd "$out/initrd.img" -append "$append"
	-drive "file=${out//,/,,}/rootfs.ext4,format=raw,if=virtio,snapshot=on"
	-virtfs "local,path=${ctl//,/,,},mount_tag=kelpctl,security_model=none,multidevs=remap"
	-virtfs "local,path=${share//,/,,},mount_tag=kelpshare,security_model=passthrough,multidevs=remap$ro9p"
)

start=$(date +%s%N)
timeout --kill-after=10 "$timeout" "${qemu[@]}" >"$ctl/qemu.out" 2>&1 &
qpid=$!
tail -n +1 -s 0.1 -f --pid="$qpid" "$ctl/stdout" &
tails+=($!)
tail -n +1 -s 0.1 -f --pid="$qpid" "$ctl/stderr" >&2 &
tails+=($!)

qrc=0
wait "$qpid" || qrc=$?
qpid=""
for p in "${tails[@]}"; do wait "$p" || true; done
tails=()
wall=$((($(date +%s%N) - start) / 1000000))
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "run.sh: timeout: VM killed after $timeout s; console log: $log" >&2
	tail -n 40 "$ctl/console.log" >&2 || true
	exit 124
fi
if [ ! -s "$ctl/rc" ]; then
	echo "run.sh: the guest did not report an exit status (qemu exit $qrc); console log: $log" >&2
	cat "$ctl/qemu.out" >&2 || true
	tail -n 40 "$ctl/console.log" >&2 || true
	exit 125
fi
rc=$(cat "$ctl/rc")
[[ "$rc" =~ ^[0-9]+$ ]] || die "the guest reported a bad exit status '$rc'"
boot=$(cat "$ctl/uptime" 2>/dev/null || echo "?")
echo "run.sh: exit status $rc; $accel guest ready after $boot s (kernel uptime), VM wall time $(secs "$wall") s" >&2
exit "$rc"
