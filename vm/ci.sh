#!/usr/bin/env bash
# CI stage: build kelp's cgroup v2 test VM, run vm/tests/cgroup-v2.sh in it, then
# vm/tests/systemd-restart.sh (dist/systemd's kelp-agent.service, then kelp-server.service,
# under the guest's systemd), then
# the agent's runtime end-to-end tests (real containers) and the metrics collector's accuracy
# tests inside it.
#
#   vm/ci.sh [OUTDIR]        (OUTDIR defaults to vm/out)
#
# The agent's test binaries must be built already (the test stage did; otherwise this builds
# them): they and the kelp-agent binary they run are under target/, which the guest sees at
# the same path. Prints "vm build: N s", "vm run: N s", "vm systemd restart (UNIT): N s",
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

# The systemd units (dist/systemd), each installed in the VM booted with systemd:
# `systemctl restart kelp-agent` (and `kelp-server`, whose agent is its child) must leave
# every pod process with its PID.
# cargo's own messages go to the log (stderr), the compiler's come as JSON: both are shown
# when a build fails.
print_compiler_errors() {
	python3 -c 'import json,sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-message" and m["message"]["level"] == "error":
        sys.stderr.write(m["message"]["rendered"])'
}
bins_json=$(cd "$repo" && cargo build -p kelp-agent --bin kelp-agent -p kelp-controller --bin kelp \
	--message-format=json) || {
	print_compiler_errors <<<"$bins_json"
	echo "vm: could not build kelp-agent and kelp (cargo's messages above)" >&2
	exit 1
}
# unit_test_binary NAME: the path of the built binary NAME, visible in the guest
unit_test_binary() {
	local b
	b=$(python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1" <<<"$bins_json")
	[ -n "$b" ] || {
		echo "vm: cargo built no $1 executable" >&2
		exit 1
	}
	case "$b" in "$repo"/*) ;; *)
		# CARGO_TARGET_DIR outside the repository: the guest sees only the repository, so
		# the binary goes into OUTDIR (when that is inside it).
		case "$(cd "$out" && pwd)/" in "$repo"/*) ;; *)
			echo "vm: $b and $out are both outside the repository, which is all the guest sees" >&2
			exit 1
			;;
		esac
		cp "$b" "$out/$1.systemd-test"
		b=$(cd "$out" && pwd)/$1.systemd-test
		;;
	esac
	bin=$b
}
unit_test_binary kelp-agent
agent_bin=$bin
unit_test_binary kelp
kelp_bin=$bin
t_sd0=$(date +%s)
echo "vm systemd: building kelp-agent and kelp: $((t_sd0 - t2)) s"
for unit in kelp-agent kelp-server; do
	rc=0
	"$here/run.sh" --out "$out" --systemd --timeout 600 --mem 1536 --env "KELP_TEST_UNIT=$unit" \
		--env "KELP_AGENT_BIN=$agent_bin" --env "KELP_BIN=$kelp_bin" \
		-- "$here/tests/systemd-restart.sh" || rc=$?
	t_sd=$(date +%s)
	echo "vm systemd restart ($unit): $((t_sd - t_sd0)) s"
	if [ "$rc" != 0 ]; then
		echo "vm: systemd restart test of $unit.service failed (exit status $rc); guest console log: $out/console.log" >&2
		exit 1
	fi
	t_sd0=$t_sd
done
t2=$t_sd

# The path of the agent's test binary NAME, built on the host (same Debian, same glibc);
# exits when it cannot be built.
test_binary() {
	local bins json
	json=$(cd "$repo" && cargo test -p kelp-agent --test "$1" --no-run --message-format=json) || {
		print_compiler_errors <<<"$json"
		echo "vm: could not build the agent's $1 test binary (cargo's messages above)" >&2
		exit 1
	}
	mapfile -t bins < <(python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' <<<"$json")
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
