#!/usr/bin/env bash
# Acceptance test of dist/systemd/kelp-agent.service (or kelp-server.service); runs INSIDE
# the VM booted with systemd:
#
#   vm/run.sh --systemd --env KELP_AGENT_BIN=/abs/path/kelp-agent -- vm/tests/systemd-restart.sh
#   vm/run.sh --systemd --env KELP_AGENT_BIN=/abs/path/kelp-agent --env KELP_BIN=/abs/path/kelp \
#     --env KELP_TEST_UNIT=kelp-server -- vm/tests/systemd-restart.sh
#
# (vm/ci.sh runs the first.) Installs the unit as a package would (/usr/lib/systemd/system,
# the binaries in /usr/bin, /etc/kelp/agent.env or server.env, static pods in
# /etc/kelp/manifests), starts it (kelp-server runs the node's agent as its child), waits
# until both test pods run, records every process in the pods' cgroups (monitors, pause,
# containers: PID and start time), runs `systemctl restart UNIT`, and checks that every
# process of the unit was replaced, that every recorded pod process is still there with the
# same PID and start time, that no new process appeared in the pods' cgroups, and that the
# new agent reports both pods Running with no restarts.
# Each check prints "ok   - NAME" or "FAIL - NAME: why"; exits non-zero if any failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
units=$repo/dist/systemd
cg=/sys/fs/cgroup
. "$repo/ci/checks.sh"

die() {
	echo "FAIL - $1: $2"
	echo "systemd-restart: $passed passed, $((failed + 1)) failed"
	exit 1
}
finish() {
	echo "systemd-restart: $passed passed, $failed failed"
	[ "$failed" = 0 ]
}

# --- prerequisites: named, never skipped ------------------------------------------------
name="prerequisites"
[ -n "${KELP_AGENT_BIN:-}" ] || die "$name" "KELP_AGENT_BIN is not set (the kelp-agent binary to install)"
[ -x "$KELP_AGENT_BIN" ] || die "$name" "KELP_AGENT_BIN=$KELP_AGENT_BIN is not an executable file visible in the guest"
[ "$(</proc/1/comm)" = systemd ] || die "$name" "PID 1 is '$(</proc/1/comm)', not systemd: run with vm/run.sh --systemd"
[ "$(stat -f -c %T $cg)" = cgroup2fs ] || die "$name" "$cg is not cgroup v2"
unit=${KELP_TEST_UNIT:-kelp-agent}
case "$unit" in
kelp-agent) ;;
kelp-server)
	[ -n "${KELP_BIN:-}" ] || die "$name" "KELP_BIN is not set (the kelp binary to install, for KELP_TEST_UNIT=kelp-server)"
	[ -x "$KELP_BIN" ] || die "$name" "KELP_BIN=$KELP_BIN is not an executable file visible in the guest"
	;;
*) die "$name" "KELP_TEST_UNIT must be kelp-agent or kelp-server, not '$unit'" ;;
esac
[ -f "$units/$unit.service" ] || die "$name" "$units/$unit.service is missing"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && busybox=$b && break; done
[ -n "$busybox" ] || die "$name" "busybox-static is not installed in the guest"
pass "$name ($unit.service, systemd $(systemctl --version | { read -r _ v _; echo "$v"; }), agent $KELP_AGENT_BIN)"

# --- install as a package would ----------------------------------------------------------
work=$(mktemp -d /tmp/kelp-systemd-test.XXXXXX)
cleanup() {
	systemctl stop "$unit.service" >/dev/null 2>&1 || true
	# the pods outlive the unit by design: kill what is left in kelp's cgroups
	local d
	for d in "$cg"/kelp/pod-*; do
		[ -d "$d" ] && echo 1 >"$d/cgroup.kill" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

install -m 0755 "$KELP_AGENT_BIN" /usr/bin/kelp-agent
install -m 0644 "$units/$unit.service" "/usr/lib/systemd/system/$unit.service"
mkdir -p /etc/kelp/manifests
# The guest has no network device and so no default route: the node's address is given.
# Metrics are off: this test is about the processes.
if [ "$unit" = kelp-agent ]; then
	cat >/etc/kelp/agent.env <<'EOF'
KELP_AGENT_ARGS="--node-name vm-node --node-ip 10.0.2.15 --metrics-publish-interval-ms 0"
EOF
else
	install -m 0755 "$KELP_BIN" /usr/bin/kelp
	cat >/etc/kelp/server.env <<'EOF'
KELP_SERVER_ARGS="--agent-node-name vm-node --agent-arg=--node-ip=10.0.2.15 --agent-arg=--metrics-publish-interval-ms=0"
EOF
fi

# The image: the static busybox, built and imported with the agent's own tools.
kelp-agent image build "$busybox" -o "$work/bb.tar" --reference kelp.test/busybox:1 >/dev/null
kelp-agent image import "$work/bb.tar" >/dev/null

# Two static pods: one on the pod network with two containers, one sharing its PID
# namespace (a pause process besides the container).
cat >/etc/kelp/manifests/pods.yaml <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: two
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: kelp.test/busybox:1
    imagePullPolicy: Never
    command: ["/busybox", "sleep", "100000"]
  - name: b
    image: kelp.test/busybox:1
    imagePullPolicy: Never
    command: ["/busybox", "sleep", "100000"]
---
apiVersion: v1
kind: Pod
metadata:
  name: shared
spec:
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: true
  containers:
  - name: c
    image: kelp.test/busybox:1
    imagePullPolicy: Never
    command: ["/busybox", "sleep", "100000"]
EOF

systemctl daemon-reload
name="unit properties"
props=$(systemctl show "$unit.service" -p Delegate -p KillMode -p Restart -p After -p Wants)
problems=""
for want in Delegate=yes KillMode=process Restart=always; do
	grep -qx "$want" <<<"$props" || problems+=" want $want;"
done
grep -q '^After=.*network-online.target' <<<"$props" || problems+=" not After=network-online.target;"
grep -q '^Wants=.*network-online.target' <<<"$props" || problems+=" not Wants=network-online.target;"
if [ -z "$problems" ]; then pass "$name (Delegate=yes KillMode=process Restart=always, after network-online)"; else fail "$name" "$problems"; fi

systemctl start "$unit.service"

# pods_running: "kelp-agent pods" lists both test pods Running with every container ready
pods_running() {
	local out
	out=$(kelp-agent pods 2>/dev/null) || return 1
	grep -Eq "^default +two-vm-node +2/2 +Running +0( |$)" <<<"$out" &&
		grep -Eq "^default +shared-vm-node +1/1 +Running +0( |$)" <<<"$out"
}
# wait_for SECONDS CMD...: polls CMD every half second
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

name="pods run under the unit"
if wait_for 180 pods_running; then
	pass "$name"
else
	fail "$name" "not both Running within 180 s; kelp-agent pods: $(kelp-agent pods 2>&1 | tr '\n' '|'); journal: $(journalctl -u "$unit" --no-pager -n 30 2>&1 | tr '\n' '|')"
	finish
	exit 1
fi

main_pid() { systemctl show "$unit.service" -p MainPID --value; }
unit_cg=$cg$(systemctl show "$unit.service" -p ControlGroup --value)
# unit_procs: "PID STARTTIME COMM" of every process in the unit's cgroup (and below it)
unit_procs() {
	local f pid stat rest
	for f in "$unit_cg"/cgroup.procs "$unit_cg"/*/cgroup.procs; do
		[ -f "$f" ] || continue
		while read -r pid; do
			stat=$(<"/proc/$pid/stat") || continue
			rest=${stat##*) }
			read -ra fields <<<"$rest"
			echo "$pid ${fields[19]} $(<"/proc/$pid/comm")"
		done <"$f"
	done | sort
}
# snapshot: one line per process in the pods' cgroups: "CGROUP PID STARTTIME COMM"
snapshot() {
	local f pid stat rest
	for f in "$cg"/kelp/pod-*/*/cgroup.procs "$cg"/kelp/pod-*/cgroup.procs; do
		[ -f "$f" ] || continue
		while read -r pid; do
			stat=$(<"/proc/$pid/stat") || continue
			rest=${stat##*) }
			read -ra fields <<<"$rest"
			echo "${f#"$cg"/} $pid ${fields[19]} $(<"/proc/$pid/comm")"
		done <"$f"
	done | sort
}

agent1=$(main_pid)
before=$(snapshot)
unit_before=$(unit_procs)
echo "# $unit MainPID $agent1, cgroup $(<"/proc/$agent1/cgroup")"
echo "# processes of the pods before the restart (cgroup pid starttime comm):"
sed 's/^/#   /' <<<"$before"
echo "# processes in the unit's cgroup ${unit_cg#"$cg"} (pid starttime comm):"
sed 's/^/#   /' <<<"$unit_before"

name="every pod process recorded"
# two: monitor, a, b; shared: monitor and pause (both in _monitor), c. One process per
# container here (busybox sleep).
count=$(grep -c . <<<"$before" || true)
monitor_cgs=$(grep -o '^kelp/pod-[^/]*/_monitor/' <<<"$before" | sort -u | grep -c . || true)
containers=$(grep -Ec '^kelp/pod-[^/]*/(a|b|c)/cgroup.procs ' <<<"$before" || true)
if [ "$count" = 6 ] && [ "$monitor_cgs" = 2 ] && [ "$containers" = 3 ]; then
	pass "$name ($count processes: 3 containers, 2 monitors, 1 pause)"
else
	fail "$name" "want 6 processes in $cg/kelp/pod-* (3 containers, 2 _monitor cgroups), got $count ($containers containers, $monitor_cgs _monitor cgroups)"
fi

# The journal from here on is what the restart caused.
cursor=$(journalctl -u "$unit" -n 1 --show-cursor --no-pager -o cat | sed -n 's/^-- cursor: //p')
[ -n "$cursor" ] || die "journal cursor" "journalctl gave no cursor for $unit"
systemctl restart "$unit.service"

name="$unit restarted"
new_agent() {
	local p
	p=$(main_pid)
	[ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$agent1" ] && systemctl is-active --quiet "$unit.service"
}
if wait_for 60 new_agent; then
	agent2=$(main_pid)
	pass "$name (MainPID $agent1 -> $agent2, active)"
else
	fail "$name" "MainPID still '$(main_pid)' (was $agent1), state $(systemctl is-active "$unit.service")"
fi
name="every old process of the unit gone"
# kelp-server's agent child follows the server through its parent-death signal.
old_left() { [ -n "$(comm -12 <(echo "$unit_before") <(unit_procs))" ]; }
deadline=$((SECONDS + 30))
while old_left && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
if old_left; then
	fail "$name" "still there: $(comm -12 <(echo "$unit_before") <(unit_procs) | tr '\n' '|')"
else
	pass "$name ($(grep -c . <<<"$unit_before") before; now: $(unit_procs | tr '\n' '|'))"
fi

# Let the new agent relist a few times (sync period 1 s; slow under emulation) and report.
sleep 10
name="pods still Running, no restarts, after the restart"
if wait_for 60 pods_running; then
	pass "$name"
else
	fail "$name" "kelp-agent pods: $(kelp-agent pods 2>&1 | tr '\n' '|')"
fi

after=$(snapshot)
name="every pod process kept its PID"
gone=$(comm -23 <(echo "$before") <(echo "$after"))
new=$(comm -13 <(echo "$before") <(echo "$after"))
if [ -z "$gone" ] && [ -z "$new" ]; then
	pass "$name ($count processes, same PID and start time)"
else
	fail "$name" "gone: [$(tr '\n' '|' <<<"$gone")] new: [$(tr '\n' '|' <<<"$new")]"
fi

name="the unit's journal shows no errors after the restart"
# Colour codes stripped (kelp server colours its log even into the journal). The embedded
# broker (rumqttd) logs every client that goes away as an ERROR: those lines, which a
# restart necessarily causes, are counted but not failures. Errors before the restart (the
# first start) are shown, not judged: this test is about the restart.
strip() { sed 's/\x1b\[[0-9;]*m//g'; }
journal=$(journalctl -u "$unit" --no-pager -o cat --after-cursor="$cursor" 2>&1 | strip)
whole=$(journalctl -u "$unit" --no-pager -o cat 2>&1 | strip)
first=$(head -n "$(($(wc -l <<<"$whole") - $(wc -l <<<"$journal")))" <<<"$whole" | grep -E ' ERROR |error:' || true)
[ -z "$first" ] || echo "# errors logged before the restart: $(tr '\n' '|' <<<"$first")"
disconnect=' ERROR .* rumqttd::server::broker: .*(connection closed by peer|Disconnected)'
errors=$(grep -E ' ERROR |error:' <<<"$journal" | grep -Ev "$disconnect" || true)
broker=$(grep -Ec "$disconnect" <<<"$journal" || true)
if [ -z "$errors" ]; then
	pass "$name (rumqttd disconnect errors: $broker)"
else
	fail "$name" "$(tr '\n' '|' <<<"$errors")"
fi

finish
