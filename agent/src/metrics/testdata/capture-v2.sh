#!/bin/sh
# Captures a cgroup v2 container cgroup's files (run inside the VM).
# Run in the test VM: vm/run.sh --share "$PWD" --rw -- agent/src/metrics/testdata/capture-v2.sh
set -eu
out=$(dirname "$0")/cgroup-v2/kelp/pod-1/c
mkdir -p "$out"
cg=${KELP_VM_CGROUP:-/sys/fs/cgroup/kelp-run}/capture
mkdir "$cg"
echo "50000 100000" > "$cg/cpu.max"
echo 268435456 > "$cg/memory.max"
echo 64 > "$cg/pids.max"
sh -c "echo \$\$ > $cg/cgroup.procs; head -c 20000000 /dev/zero > /tmp/kelp-fix; i=0; while [ \$i -lt 300000 ]; do i=\$((i+1)); done; sleep 3" &
sleep 5
for f in cpu.stat cpu.max memory.current memory.max memory.stat memory.events pids.current pids.max; do cat "$cg/$f" > "$out/$f"; done
wait
rm -f /tmp/kelp-fix
rmdir "$cg"
echo captured
