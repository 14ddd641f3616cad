#!/usr/bin/env bash
# Fuzz kelp's untrusted-input decoders.
#
#   fuzz/run.sh [SECONDS]     run every cargo-fuzz target for SECONDS each (default 60)
#
# Installs cargo-fuzz (and the nightly toolchain it needs) when missing. Seeds each run
# with the golden wire fixtures; new interesting inputs go to fuzz/corpus/<target>/.
# Exits non-zero when a target crashes; the crashing input is saved under
# fuzz/artifacts/<target>/ and can be replayed with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# Set KELP_FUZZ_TOOLCHAIN to use another nightly than `nightly`.
set -euo pipefail

secs="${1:-60}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"
toolchain="${KELP_FUZZ_TOOLCHAIN:-nightly}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "run.sh: installing the $toolchain toolchain" >&2
    rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$root"
targets="$(cargo +"$toolchain" fuzz list --fuzz-dir "$fuzz_dir")"
status=0
for target in $targets; do
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus"
    echo "run.sh: fuzzing $target for ${secs}s" >&2
    # kelp-shared denies unsafe code, so the fuzzer hunts panics and hangs, not memory
    # errors: no sanitizer keeps the CI build to a few minutes instead of half an hour.
    if ! cargo +"$toolchain" fuzz run --sanitizer none --fuzz-dir "$fuzz_dir" "$target" \
        "$corpus" "$root/shared/tests/golden" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1; then
        echo "run.sh: $target FAILED; see $fuzz_dir/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
