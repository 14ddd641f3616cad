#!/usr/bin/env bash
# Acceptance test for kelp's cgroup v2 test host; runs INSIDE the VM as root:
#
#   vm/run.sh -- vm/tests/cgroup-v2.sh
#
# Checks that cgroup v2 is the only hierarchy, that the controllers the agent
# uses are available and enabled, and that memory.max really OOM-kills.
# Exits non-zero, naming every failed check, when anything is wrong (run on a
# cgroup v1 or hybrid host it fails at the first check and touches nothing).
set -euo pipefail

cg=/sys/fs/cgroup
. "$(dirname "${BASH_SOURCE[0]}")/../../ci/checks.sh"
test_cg=""

cleanup() {
	if [ -n "$test_cg" ] && [ -d "$test_cg" ]; then
		# kill whatever is left in it, then remove it
		echo 1 >"$test_cg/cgroup.kill" 2>/dev/null || true
		sleep 0.1
		rmdir "$test_cg" 2>/dev/null || echo "warning: could not remove $test_cg" >&2
	fi
}
trap cleanup EXIT
# Helpers use shell builtins: under TCG emulation every exec costs ~0.2 s.
has_word() { # has_word WORD FILE: FILE's first line has WORD
	local w words=()
	[ -r "$2" ] || return 1
	read -ra words <"$2" || true
	for w in "${words[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}
oom_kills() { # oom_kill count from CGROUP/memory.events
	local k v
	while read -r k v; do
		[ "$k" = oom_kill ] && echo "$v" && return 0
	done <"$1/memory.events"
	echo "?"
}

# 1. cgroup v2 is mounted at /sys/fs/cgroup, and no v1 hierarchy anywhere
name="cgroup v2 is the only hierarchy"
fstype=$(stat -f -c %T "$cg" 2>/dev/null || echo "?")
v1=""
while read -r _ dir type _; do
	[ "$type" = cgroup ] && v1+="$dir "
done </proc/mounts
v2=false
if [ "$fstype" != cgroup2fs ]; then
	fail "$name" "stat -f -c %T $cg is '$fstype', want cgroup2fs"
elif [ -n "$v1" ]; then
	fail "$name" "cgroup v1 hierarchies mounted at: $v1"
else
	pass "$name ($cg is cgroup2fs)"
	v2=true
fi

if [ "$v2" != true ]; then
	for n in "controllers available" "child cgroup limits" "process within memory.max survives" \
		"process over memory.max is OOM-killed"; do
		fail "$n" "skipped: not a cgroup v2 host"
	done
	echo "cgroup-v2: $passed passed, $failed failed"
	exit 1
fi

# 2. controllers available at the root and enabled for children
name="controllers available"
missing=""
for c in memory cpu pids io cpuset; do
	has_word "$c" "$cg/cgroup.controllers" || missing+=" $c(not in cgroup.controllers)"
	if ! has_word "$c" "$cg/cgroup.subtree_control"; then
		echo "+$c" >"$cg/cgroup.subtree_control" 2>/dev/null || true
		has_word "$c" "$cg/cgroup.subtree_control" || missing+=" $c(not in subtree_control)"
	fi
done
if [ -z "$missing" ]; then
	pass "$name ($(<"$cg/cgroup.subtree_control"))"
else
	fail "$name" "missing:$missing"
fi

# 3. a child cgroup gets the controllers, and takes limits
name="child cgroup limits"
test_cg=$cg/kelp-cgroup-v2-test.$$
problems=""
if ! mkdir "$test_cg"; then
	fail "$name" "cannot create $test_cg"
	test_cg=""
else
	for c in memory cpu pids; do
		has_word "$c" "$test_cg/cgroup.controllers" || problems+=" $c not in child cgroup.controllers;"
	done
	write() { # write FILE VALUE EXPECTED-READBACK
		if ! echo "$2" >"$test_cg/$1" 2>/dev/null; then
			problems+=" cannot write $1;"
		elif [ "$(<"$test_cg/$1")" != "$3" ]; then
			problems+=" $1 reads '$(<"$test_cg/$1")', want '$3';"
		fi
	}
	write memory.max 32M 33554432
	[ -f "$test_cg/memory.swap.max" ] && write memory.swap.max 0 0
	write cpu.max "50000 100000" "50000 100000"
	write pids.max 64 64
	if [ -z "$problems" ]; then
		pass "$name (memory.max=32M, swap 0, cpu.max 50%, pids.max=64)"
	else
		fail "$name" "$problems"
	fi
fi

# run_in_cg CMD...: run CMD as the only process of $test_cg; prints its wait status
run_in_cg() {
	local st=0
	bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$test_cg" "$@" \
		>/dev/null 2>&1 || st=$?
	echo "$st"
}

# 4. a process that stays under memory.max survives (control for 5.)
name="process within memory.max survives"
if [ -z "$test_cg" ] || [ ! -f "$test_cg/memory.events" ]; then
	fail "$name" "no test cgroup with memory.events"
else
	before=$(oom_kills "$test_cg")
	st=$(run_in_cg dd if=/dev/zero of=/dev/null bs=8M count=4)
	after=$(oom_kills "$test_cg")
	if [ "$st" = 0 ] && [ "$after" = "$before" ]; then
		pass "$name (dd with an 8 MiB buffer: exit 0, oom_kill $after)"
	else
		fail "$name" "dd with an 8 MiB buffer: exit status $st, oom_kill $before -> $after"
	fi
fi

# 5. a process that needs more than memory.max is OOM-killed with SIGKILL
name="process over memory.max is OOM-killed"
if [ -z "$test_cg" ] || [ ! -f "$test_cg/memory.events" ]; then
	fail "$name" "no test cgroup with memory.events"
else
	before=$(oom_kills "$test_cg")
	st=$(run_in_cg dd if=/dev/zero of=/dev/null bs=128M count=1)
	after=$(oom_kills "$test_cg")
	sig=""
	[ "$st" -gt 128 ] && sig=$(kill -l $((st - 128)) 2>/dev/null || true)
	if [ "$sig" = KILL ] && [ "$after" -gt "$before" ]; then
		pass "$name (dd with a 128 MiB buffer: SIGKILL, oom_kill $before -> $after)"
	else
		fail "$name" "dd with a 128 MiB buffer: exit status $st${sig:+ (SIG$sig)}, want SIGKILL; oom_kill $before -> $after, want an increase"
	fi
fi

echo "cgroup-v2: $passed passed, $failed failed"
[ "$failed" = 0 ]
