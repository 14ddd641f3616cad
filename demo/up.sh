#!/bin/sh
# kelp on this machine in one command (as root): builds kelp and kelp-agent, builds the demo
# image from Debian's busybox-static (offline), starts `kelp server` (API, store, embedded MQTT
# broker and this machine's agent) in the background, applies demo/hello.yaml and waits until
# `kelp get pods -o wide` shows it Running. demo/down.sh removes it all again.
#
# Settings (environment): KELP_DEMO_DIR (default /var/lib/kelp-demo: data, state, logs, the
# client config kelp.yaml), KELP_DEMO_LISTEN (API, default 127.0.0.1:6443), KELP_DEMO_MQTT
# (default 127.0.0.1:1883), KELP_DEMO_BRIDGE (default kelp0), KELP_DEMO_CIDR (default
# 10.42.0.0/16), KELP_DEMO_NODE (default: the host name), KELP_DEMO_BIN (a directory holding
# kelp and kelp-agent already built: skips the build).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${KELP_DEMO_DIR:-/var/lib/kelp-demo}
listen=${KELP_DEMO_LISTEN:-127.0.0.1:6443}
mqtt=${KELP_DEMO_MQTT:-127.0.0.1:1883}
bridge=${KELP_DEMO_BRIDGE:-kelp0}
cidr=${KELP_DEMO_CIDR:-10.42.0.0/16}
node=${KELP_DEMO_NODE:-$(hostname | tr 'A-Z' 'a-z')}

if [ "$(id -u)" != 0 ]; then echo "demo/up.sh: run it as root (it runs containers)" >&2; exit 1; fi
if [ -z "${KELP_DEMO_BIN:-}" ]; then
    (cd "$here/.." && cargo build --release -p kelp-controller -p kelp-agent)
    bin=${CARGO_TARGET_DIR:-$here/../target}/release
else
    bin=$KELP_DEMO_BIN
fi
for b in kelp kelp-agent; do
    [ -x "$bin/$b" ] || { echo "demo/up.sh: $bin/$b is missing" >&2; exit 1; }
done
busybox=
for p in /bin/busybox /usr/bin/busybox; do [ -x "$p" ] && busybox=$p; done
[ -n "$busybox" ] || { echo "demo/up.sh: busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
if [ -e "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
    echo "demo/up.sh: a demo is running already (pid $(cat "$dir/server.pid")); demo/down.sh stops it" >&2
    exit 1
fi

mkdir -p "$dir"
agent_args="--agent-arg=--state-dir=$dir/agent/state --agent-arg=--run-dir=/run/kelp-demo-$bridge
 --agent-arg=--log-dir=$dir/agent/logs --agent-arg=--manifests=$dir/agent/manifests
 --agent-arg=--cgroup-parent=/kelp-demo-$bridge --agent-arg=--bridge=$bridge"

# The image: busybox with a page to serve, built and imported into the agent's store offline.
rootfs="$dir/image/rootfs"
rm -rf "$dir/image"
mkdir -p "$rootfs/bin" "$rootfs/www" "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in sh httpd sleep cat echo ls wget hostname; do ln -s busybox "$rootfs/bin/$applet"; done
echo '<h1>Hello from kelp</h1>' > "$rootfs/www/index.html"
"$bin/kelp-agent" image build "$rootfs" -o "$dir/image/hello.tar" \
    --reference kelp.local/demo/hello:1 --root-owned --env PATH=/bin >/dev/null
"$bin/kelp-agent" --state-dir "$dir/agent/state" image import "$dir/image/hello.tar" >/dev/null

# The server, in the background; its log is $dir/server.log.
"$bin/kelp" server --data-dir "$dir/data" --listen "$listen" --mqtt-listen "$mqtt" \
    --write-config "$dir/kelp.yaml" --cluster-cidr "$cidr" --agent-node-name "$node" \
    $agent_args >"$dir/server.log" 2>&1 &
echo $! > "$dir/server.pid"
kelp() { KELP_CONFIG="$dir/kelp.yaml" "$bin/kelp" "$@"; }
i=0
until grep -q "^kelp server listening" "$dir/server.log"; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
        echo "demo/up.sh: kelp server did not start:" >&2; cat "$dir/server.log" >&2; exit 1
    fi
    sleep 0.1
done

sed "s/NODE/$node/" "$here/hello.yaml" > "$dir/hello.yaml"
kelp apply -f "$dir/hello.yaml"
i=0
until kelp get pods -o wide 2>/dev/null | grep -q "^hello .*1/1 *Running"; do
    i=$((i + 1))
    if [ $i -gt 60 ]; then
        echo "demo/up.sh: hello is not Running after 60 s:" >&2
        kelp get pods -o wide >&2 || true
        kelp describe pod hello >&2 || true
        tail -n 30 "$dir/server.log" >&2
        exit 1
    fi
    sleep 1
done
kelp get nodes
kelp get pods -o wide
ip=$(kelp get pod hello -o json | sed -n 's/.*"podIP": *"\([0-9.]*\)".*/\1/p' | head -n 1)
echo
echo "kelp is running (server log: $dir/server.log)."
echo "  export KELP_CONFIG=$dir/kelp.yaml; alias kelp=$bin/kelp"
[ -n "$ip" ] && echo "  wget -qO- http://$ip:8080/      # the demo page"
echo "  $here/down.sh                    # stop it and remove everything"
