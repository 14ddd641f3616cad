#!/bin/sh
# Stops what demo/up.sh started and removes it: the demo pod, `kelp server` with its agent,
# the bridge, its nftables table and the demo's directory. Same settings as demo/up.sh.
set -u
dir=${KELP_DEMO_DIR:-/var/lib/kelp-demo}
bridge=${KELP_DEMO_BRIDGE:-kelp0}
here=$(cd "$(dirname "$0")" && pwd)
bin=${KELP_DEMO_BIN:-${CARGO_TARGET_DIR:-$here/../target}/release}
if [ -e "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
    # The pod first, so its containers go; `kelp delete` waits until the node stopped it.
    KELP_CONFIG="$dir/kelp.yaml" timeout 60 "$bin/kelp" delete pod hello --ignore-not-found >/dev/null 2>&1
    pid=$(cat "$dir/server.pid")
    kill "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$pid" 2>/dev/null
fi
# The agent gets SIGTERM when the server goes; wait for it.
i=0
while pgrep -f "kelp-agent run --join-file $dir/" >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link del "$bridge" 2>/dev/null
nft delete table ip "kelp_$bridge" 2>/dev/null
umount "/run/kelp-demo-$bridge" 2>/dev/null
rmdir "/run/kelp-demo-$bridge" 2>/dev/null
for cg in /sys/fs/cgroup/kelp-demo-$bridge /sys/fs/cgroup/*/kelp-demo-$bridge; do
    [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
done
rm -rf "$dir"
echo "demo removed"
