#!/usr/bin/env bash
# CI stage: build kelp's cgroup v2 test VM, run vm/tests/cgroup-v2.sh in it, then
# vm/tests/systemd-restart.sh (dist/systemd/kelp-agent.service under the guest's systemd), then
# the agent's runtime end-to-end tests (real containers) and the metrics collector's accuracy
# tests inside it.
#
#   vm/ci.sh [OUTDIR]        (OUTDIR defaults to vm/out)
#
# The agent's test binaries must be built already (the test stage did; otherwise this builds
# them): they and the kelp-agent binary they run are under target/, which the guest sees at
# the same path. Prints "vm build: N s", "vm run: N s", "vm systemd restart: N s",
# "vm agent e2e: N s" and "vm metrics e2e: N s"; exits non-zero on any failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
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

# The systemd units (dist/systemd): kelp-agent.service installed in the VM booted with
# systemd; `systemctl restart kelp-agent` must leave every pod process with its PID.
agent_json=$(cd "$repo" && cargo build -p kelp-agent --bin kelp-agent --message-format=json 2>/dev/null) || {
	echo "vm: could not build kelp-agent" >&2
	exit 1
}
agent_bin=$(python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kelp-agent":
        print(m["executable"])' <<<"$agent_json")
[ -n "$agent_bin" ] || {
	echo "vm: cargo built no kelp-agent executable" >&2
	exit 1
}
case "$agent_bin" in "$repo"/*) ;; *)
	# CARGO_TARGET_DIR outside the repository: the guest sees only the repository, so the
	# binary goes into OUTDIR (when that is inside it).
	case "$(cd "$out" && pwd)/" in "$repo"/*) ;; *)
		echo "vm: $agent_bin and $out are both outside the repository, which is all the guest sees" >&2
		exit 1
		;;
	esac
	cp "$agent_bin" "$out/kelp-agent.systemd-test"
	agent_bin=$(cd "$out" && pwd)/kelp-agent.systemd-test
	;;
esac
t_sd0=$(date +%s)
rc=0
"$here/run.sh" --out "$out" --systemd --timeout 600 --mem 1536 --env "KELP_AGENT_BIN=$agent_bin" \
	-- "$here/tests/systemd-restart.sh" || rc=$?
t_sd=$(date +%s)
echo "vm systemd restart: $((t_sd - t_sd0)) s (building kelp-agent before it: $((t_sd0 - t2)) s)"
if [ "$rc" != 0 ]; then
	echo "vm: systemd restart test failed (exit status $rc); guest console log: $out/console.log" >&2
	exit 1
fi
t2=$t_sd

# The path of the agent's test binary NAME, built on the host (same Debian, same glibc);
# exits when it cannot be built.
test_binary() {
	local bins
	mapfile -t bins < <(cd "$repo" && cargo test -p kelp-agent --test "$1" --no-run \
		--message-format=json 2>/dev/null |
		python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
	[ "${#bins[@]}" -gt 0 ] || {
		echo "vm: could not build the agent's $1 test binary" >&2
		exit 1
	}
	bin=${bins[0]}
}

# The agent's runtime tests, on cgroup v2.
test_binary runtime_e2e
bins=("$bin")
case "${bins[0]}" in "$repo"/*) ;; *)
	echo "vm: ${bins[0]} is outside the repository, which is all the guest sees (unset CARGO_TARGET_DIR)" >&2
	exit 1
	;;
esac
rc=0
"$here/run.sh" --out "$out" --timeout 1800 --mem 2048 -- "${bins[0]}" --test-threads 2 || rc=$?
t3=$(date +%s)
echo "vm agent e2e: $((t3 - t2)) s"
if [ "$rc" != 0 ]; then
	echo "vm: agent runtime tests failed on cgroup v2 (exit status $rc); guest console log: $out/console.log" >&2
	exit 1
fi

# The metrics collector on cgroup v2: its accuracy tests on real containers, one at a time.
test_binary metrics_accuracy
bins=("$bin")
rc=0
"$here/run.sh" --out "$out" --timeout 1800 --mem 2048 -- "${bins[0]}" --test-threads 1 --nocapture || rc=$?
t4=$(date +%s)
echo "vm metrics e2e: $((t4 - t3)) s"
if [ "$rc" != 0 ]; then
	echo "vm: metrics accuracy tests failed on cgroup v2 (exit status $rc); guest console log: $out/console.log" >&2
	exit 1
fi
