# Sourced by kelp's shell test scripts (yocto/ci.sh, vm/tests/*.sh): each check prints
# "ok   - NAME" or "FAIL - NAME: why" and is counted in $passed / $failed.
# shellcheck shell=bash
passed=0
failed=0
pass() {
	echo "ok   - $1"
	passed=$((passed + 1))
}
fail() {
	echo "FAIL - $1: $2"
	failed=$((failed + 1))
}
