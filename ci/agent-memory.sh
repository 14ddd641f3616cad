#!/usr/bin/env bash
# The agent's memory when idle, as a node runs it: the release agent joined to a real
# `kelp server` (its embedded broker), running PODS static pods (busybox `sleep`), measured
# after it has settled. Prints, for the agent and for the pods' monitors, the resident size
# (VmRSS, what ps and top show), its anonymous part (heap and stacks) and the proportional
# size (PSS: pages shared among processes, such as the binary's code, divided among them).
#
#   ci/agent-memory.sh [PODS]        (PODS defaults to 1; run as root from the checkout)
#
# Builds the release agent (profile `release`: opt-level z, LTO) and the debug `kelp`.
# KELP_AGENT_BIN=path measures another agent binary. docs/benchmarks.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
pods=${1:-1}
settle=${KELP_MEMORY_SETTLE:-20}
[ "$(id -u)" = 0 ] || {
	echo "agent-memory: run as root (the agent creates containers)" >&2
	exit 1
}
[ -x /bin/busybox ] || {
	echo "agent-memory: /bin/busybox is missing (apt-get install busybox-static)" >&2
	exit 1
}

target=$(cargo metadata --format-version 1 --no-deps |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [ -z "${KELP_AGENT_BIN:-}" ]; then
	cargo build -q --release -p kelp-agent
	KELP_AGENT_BIN=$target/release/kelp-agent
fi
cargo build -q -p kelp-controller --bin kelp
kelp=$target/debug/kelp
# monitor_pid FILE: the PID a pod's monitor.json records.
monitor_pid() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitor"]["pid"])' "$1"
}
agent=$KELP_AGENT_BIN

id=kelp-mem-$$
base=/var/tmp/$id
run=/run/$id
node=mem-$$
dirs=(--state-dir "$base/state" --run-dir "$run" --log-dir "$base/logs")
server_pid="" agent_pid=""
cleanup() {
	set +e
	if [ -n "$agent_pid" ]; then
		# The agent removes the pods whose manifests are gone, then stops.
		rm -f "$base"/manifests/*.yaml
		for _ in $(seq 300); do
			[ "$("$agent" "${dirs[@]}" pods -o json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null)" = 0 ] && break
			sleep 0.2
		done
		kill "$agent_pid" 2>/dev/null
		wait "$agent_pid" 2>/dev/null
	fi
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	# Whatever the agent could not remove (it failed, or was never started).
	for m in "$run"/pods/*/monitor.json; do
		[ -f "$m" ] || continue
		pid=$(monitor_pid "$m" 2>/dev/null)
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	awk -v a="$base" -v b="$run" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts |
		sort -r | while read -r m; do umount -l "$m"; done
	for c in /sys/fs/cgroup/*/"$id" /sys/fs/cgroup/"$id"; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -rf "$base" "$run"
}
trap cleanup EXIT

mkdir -p "$base/manifests" "$base/rootfs/bin"
cp /bin/busybox "$base/rootfs/bin/"
for c in sh sleep; do ln -s busybox "$base/rootfs/bin/$c"; done
"$agent" image build "$base/rootfs" -o "$base/busybox.tar" --reference mem/busybox:1 >/dev/null
"$agent" "${dirs[@]}" image import "$base/busybox.tar" >/dev/null

KELP_LOG=warn "$kelp" server --disable-agent --mqtt-listen 127.0.0.1:0 --listen 127.0.0.1:0 \
	--data-dir "$base/server" --write-config "$base/kelp.yaml" >"$base/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 150); do
	grep -q "^kelp server listening" "$base/server.log" && break
	sleep 0.2
done
grep -q "^kelp server listening" "$base/server.log" || {
	cat "$base/server.log" >&2
	echo "agent-memory: kelp server did not start" >&2
	exit 1
}
KELP_CONFIG=$base/kelp.yaml "$kelp" node add "$node" -o "$base/join.yaml" >/dev/null

for i in $(seq "$pods"); do
	printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p%s}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: mem/busybox:1, command: [sleep, "36000"]}\n' \
		"$i" >"$base/manifests/p$i.yaml"
done
KELP_LOG=warn "$agent" "${dirs[@]}" run --manifests "$base/manifests" --node-name "$node" \
	--cgroup-parent "/$id" --pod-cidr none --join-file "$base/join.yaml" >"$base/agent.log" 2>&1 &
agent_pid=$!

running() {
	"$agent" "${dirs[@]}" pods -o json 2>/dev/null |
		python3 -c 'import json,sys; print(sum(p["status"].get("phase") == "Running" for p in json.load(sys.stdin)))' 2>/dev/null ||
		echo 0
}
for _ in $(seq 600); do
	[ "$(running)" -ge "$pods" ] && break
	kill -0 "$agent_pid" 2>/dev/null || {
		cat "$base/agent.log" >&2
		echo "agent-memory: the agent exited" >&2
		exit 1
	}
	sleep 0.2
done
[ "$(running)" -ge "$pods" ] || {
	echo "agent-memory: $pods pods did not run within 120 s" >&2
	exit 1
}
KELP_CONFIG=$base/kelp.yaml "$kelp" get node "$node" | grep -q " Ready " || {
	echo "agent-memory: node $node is not Ready: the agent did not join" >&2
	exit 1
}
sleep "$settle"

kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/$3"; }
rss_total=0 anon_total=0 pss_total=0
show() {
	local who=$1 pid=$2 rss anon pss
	rss=$(kib "$pid" VmRSS status)
	anon=$(kib "$pid" RssAnon status)
	pss=$(kib "$pid" Pss smaps_rollup)
	printf '%-10s pid %-7s RSS %6s KiB  anonymous %6s KiB  PSS %6s KiB\n' "$who" "$pid" "$rss" "$anon" "$pss"
	rss_total=$((rss_total + rss)) anon_total=$((anon_total + anon)) pss_total=$((pss_total + pss))
}
echo "agent $agent ($(stat -c %s "$agent") bytes), $pods pods, settled $settle s"
show agent "$agent_pid"
agent_rss=$rss_total
for m in "$run"/pods/*/monitor.json; do
	show monitor "$(monitor_pid "$m")"
done
printf 'all kelp processes: RSS %s KiB, anonymous %s KiB, PSS %s KiB (%.1f MiB)\n' \
	"$rss_total" "$anon_total" "$pss_total" "$(awk -v k="$pss_total" 'BEGIN { print k / 1024 }')"
printf 'agent RSS %.1f MiB (budget: single-digit MiB): %s\n' "$(awk -v k="$agent_rss" 'BEGIN { print k / 1024 }')" \
	"$([ "$agent_rss" -lt 10240 ] && echo met || echo MISSED)"
