#!/usr/bin/env bash
# CI stage: build kelp's cgroup v2 test VM and run vm/tests/cgroup-v2.sh in it.
#
#   vm/ci.sh [OUTDIR]        (OUTDIR defaults to vm/out)
#
# Prints "vm build: N s" and "vm run: N s"; exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/out}

t0=$(date +%s)
if ! "$here/build.sh" "$out"; then
	echo "vm build: FAILED after $(($(date +%s) - t0)) s" >&2
	exit 1
fi
t1=$(date +%s)
echo "vm build: $((t1 - t0)) s"

rc=0
"$here/run.sh" --out "$out" --timeout 300 -- "$here/tests/cgroup-v2.sh" || rc=$?
t2=$(date +%s)
echo "vm run: $((t2 - t1)) s"
if [ "$rc" != 0 ]; then
	echo "vm: cgroup-v2 test failed (exit status $rc); guest console log: $out/console.log" >&2
	exit 1
fi
