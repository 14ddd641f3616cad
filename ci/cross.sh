#!/usr/bin/env bash
# Cross builds and emulation for kelp's ARM targets, with plain cargo (no container engine):
# Debian's cross gcc links (.cargo/config.toml), qemu-user runs the test binaries.
#
#   ci/cross.sh            CI stage: installs what it needs, builds the aarch64 release agent
#                          and checks its stripped size (< 10 MB), runs the aarch64 and armv7
#                          unit tests under qemu-user, `cargo check`s the two musl targets,
#                          and runs the emulated aarch64 agent against an x86 `kelp server`.
#   ci/cross.sh release [TARGET...]
#                          Builds kelp-agent in release for all four targets (or those named)
#                          and prints the stripped sizes (the table in docs/cross-builds.md).
#   ci/cross.sh setup      Only the installs.
#
# Runs as root on Debian bookworm (amd64) from the checkout; CARGO_TARGET_DIR is respected.
# docs/cross-builds.md explains each choice.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# Debian's musl headers for the two ARM musl targets (C code of ring and mimalloc).
MUSL_ROOT=${KELP_MUSL_ROOT:-/opt/kelp-musl}
SIZE_BUDGET=10000000 # bytes: the stripped aarch64 agent must stay under 10 MB

A64=aarch64-unknown-linux-gnu
A32=armv7-unknown-linux-gnueabihf
A64M=aarch64-unknown-linux-musl
A32M=armv7-unknown-linux-musleabihf

declare -a STEPS=()
step() {
    local name=$1
    shift
    local start=$SECONDS
    echo "::: cross $name"
    "$@"
    local took=$((SECONDS - start))
    STEPS+=("$(printf '%-22s %3d min %2d s' "$name" $((took / 60)) $((took % 60)))")
}
report() {
    echo "::: cross step times"
    for s in "${STEPS[@]}"; do echo "  $s"; done
    echo "  total                  $((SECONDS / 60)) min $((SECONDS % 60)) s"
}
trap 'stop_background; report' EXIT

apt_update() {
    local try
    for try in 1 2 3; do
        apt-get update -qq && return 0
        echo "apt-get update failed (attempt $try of 3)" >&2
        sleep 10
    done
    return 1
}
apt_install() {
    local try
    for try in 1 2 3; do
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null && return 0
        echo "apt-get install $* failed (attempt $try of 3)" >&2
        sleep 10
        apt_update || true
    done
    return 1
}

setup() {
    export DEBIAN_FRONTEND=noninteractive
    apt_update
    # qemu-user (bookworm's 7.2) installs beside backports' qemu-utils; it registers no binfmt
    # handler, which is why the emulated agent cannot start containers (see the docs).
    apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf \
        libc6-dev-armhf-cross qemu-user nftables iproute2
    if [ ! -f "$MUSL_ROOT/usr/include/aarch64-linux-musl/stdlib.h" ] ||
        [ ! -f "$MUSL_ROOT/usr/include/arm-linux-musleabihf/stdlib.h" ]; then
        # Only the two musl-dev packages are downloaded and unpacked; the foreign
        # architectures are removed again so a broken foreign index cannot fail later updates.
        local debs
        debs=$(mktemp -d)
        dpkg --add-architecture arm64
        dpkg --add-architecture armhf
        apt_update || true
        (cd "$debs" && chmod 777 . && apt-get download -qq musl-dev:arm64 musl-dev:armhf)
        dpkg --remove-architecture arm64
        dpkg --remove-architecture armhf
        apt_update
        mkdir -p "$MUSL_ROOT"
        for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$MUSL_ROOT"; done
        rm -rf "$debs"
    fi
    rustup target add "$A64" "$A32" "$A64M" >/dev/null
    # Rust 1.94 and later publish no prebuilt standard library for armv7 musl: it is built
    # from source (see musl_env).
    rustup component add rust-src >/dev/null
}

# The musl targets compile their C code with the glibc cross gcc, but against musl's headers
# (gcc's own freestanding headers first: stddef.h, stdatomic.h).
musl_env() {
    local gcc=$1 triple=$2 target=$3
    local var=${target//-/_}
    export "CC_$var=$gcc"
    export "AR_$var=${gcc%gcc}ar"
    export "CFLAGS_$var=-nostdinc -isystem $($gcc -print-file-name=include) -isystem $MUSL_ROOT/usr/include/$triple"
}
musl_envs() {
    musl_env aarch64-linux-gnu-gcc aarch64-linux-musl "$A64M"
    musl_env arm-linux-gnueabihf-gcc arm-linux-musleabihf "$A32M"
    armv7_musl_link
}

# Without a rust-std for armv7 musl there are no self-contained start files, libc or
# libunwind either: rustc looks for them by name in the native search path, so a directory
# of links supplies them — musl's crt1.o, crti.o, crtn.o and libc.a (Debian's
# musl-dev:armhf), gcc's static crtbegin/crtend, and as libunwind.a a linker script naming
# gcc's libgcc_eh.a (ARM EHABI; musl provides the __gnu_Unwind_Find_exidx it calls).
armv7_musl_link() {
    local dir=$MUSL_ROOT/armv7-link musl=$MUSL_ROOT/usr/lib/arm-linux-musleabihf gcc
    gcc=$(dirname "$(arm-linux-gnueabihf-gcc -print-libgcc-file-name)")
    mkdir -p "$dir"
    for f in crt1.o crti.o crtn.o libc.a; do ln -sf "$musl/$f" "$dir/$f"; done
    ln -sf "$gcc/crtbeginT.o" "$dir/crtbegin.o"
    ln -sf "$gcc/crtend.o" "$dir/crtend.o"
    echo "GROUP ( $gcc/libgcc_eh.a $gcc/libgcc.a )" >"$dir/libunwind.a"
    export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-L native=$dir"
}

# armv7 musl has no rustup std since Rust 1.94: build std from rust-src with the pinned
# stable compiler (RUSTC_BOOTSTRAP only unlocks -Zbuild-std; the code is stable Rust).
cargo_target() {
    local target=$1
    shift
    if [ "$target" = "$A32M" ]; then
        RUSTC_BOOTSTRAP=1 cargo "$1" -Zbuild-std=std,panic_abort --target "$target" "${@:2}"
    else
        cargo "$1" --target "$target" "${@:2}"
    fi
}

# The aarch64 release agent builds in a target dir of its own, in the background while the
# debug builds and emulated unit tests run: its fat-LTO link runs on one core, and the two
# share no artifacts anyway (other profile).
RELEASE_DIR=$TARGET_DIR/cross-release
RELEASE_LOG=$TARGET_DIR/cross-release.log
RELEASE_PID=""
release_agent_a64_start() {
    mkdir -p "$TARGET_DIR"
    echo "building the aarch64 release agent in the background (log: $RELEASE_LOG)"
    CARGO_TARGET_DIR=$RELEASE_DIR cargo build --release -p kelp-agent --target "$A64" \
        >"$RELEASE_LOG" 2>&1 &
    RELEASE_PID=$!
}
release_agent_a64_wait() {
    local rc=0
    wait "$RELEASE_PID" || rc=$?
    RELEASE_PID=""
    tail -n 5 "$RELEASE_LOG"
    if [ "$rc" != 0 ]; then
        cat "$RELEASE_LOG" >&2
        echo "FAIL: the aarch64 release build failed (exit status $rc)" >&2
        return 1
    fi
}
stop_background() {
    if [ -n "$RELEASE_PID" ]; then
        kill "$RELEASE_PID" 2>/dev/null || true
        wait "$RELEASE_PID" 2>/dev/null || true
    fi
}

# The size in bytes of BIN (built for TARGET) once stripped with the target's binutils.
stripped_size() {
    local target=$1 bin=$2 strip=aarch64-linux-gnu-strip tmp
    case $target in armv7*) strip=arm-linux-gnueabihf-strip ;; esac
    tmp=$(mktemp)
    "$strip" -o "$tmp" "$bin"
    stat -c %s "$tmp"
    rm -f "$tmp"
}

size_budget() {
    local size
    size=$(stripped_size "$A64" "$RELEASE_DIR/$A64/release/kelp-agent")
    echo "aarch64 kelp-agent stripped: $size bytes (budget < $SIZE_BUDGET)"
    if [ "$size" -ge "$SIZE_BUDGET" ]; then
        echo "FAIL: the aarch64 agent is $size bytes stripped, the budget is under $SIZE_BUDGET" >&2
        return 1
    fi
}

# The unit tests of kelp-shared (lib, its tests/ and doc tests) and kelp-agent (lib), debug
# builds under qemu-user. None is excluded: the agent's unit tests that mount or read /proc
# reach the host kernel through qemu-user's syscall translation and pass; what needs
# containers is in agent/tests (integration tests, not run under emulation). Both packages
# in one selection, so their dependencies are built once with the same features.
# Built without debug info (the ARM targets' artifacts serve only these runs): less to
# compile and link on CI's two cores.
unit_tests() {
    local target=$1
    CARGO_PROFILE_DEV_DEBUG=false cargo test --target "$target" -p kelp-shared -p kelp-agent \
        --lib --test fixtures --test seed --test wire_golden
    CARGO_PROFILE_DEV_DEBUG=false cargo test --target "$target" -p kelp-shared -p kelp-agent --doc
}
unit_tests_a64() { unit_tests "$A64"; }
unit_tests_a32() { unit_tests "$A32"; }

musl_check() {
    musl_envs
    cargo_target "$1" check -p kelp-agent
}
musl_check_a64() { musl_check "$A64M"; }
musl_check_a32() { musl_check "$A32M"; }

# --workspace as in the README's test command, so the test stage's build is reused.
emulated_agent() {
    KELP_QEMU_AGENT=$RELEASE_DIR/$A64/release/kelp-agent \
        cargo test --workspace --test qemu_agent_e2e -- --ignored --nocapture
}

release_all() {
    musl_envs
    local failed=0 rows=() targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("$A64" "$A32" "$A64M" "$A32M")
    for target in "${targets[@]}"; do
        local start=$SECONDS
        if cargo_target "$target" build --release -p kelp-agent; then
            local size
            size=$(stripped_size "$target" "$TARGET_DIR/$target/release/kelp-agent")
            rows+=("$(printf '| %-31s | %10s | %4d s |' "$target" "$size" $((SECONDS - start)))")
        else
            failed=1
            rows+=("$(printf '| %-31s | %10s | %4d s |' "$target" "FAILED" $((SECONDS - start)))")
        fi
    done
    echo "kelp-agent release, stripped, $(date -u +%F) at $(git rev-parse --short HEAD):"
    echo "| target                          |      bytes | build  |"
    printf '%s\n' "${rows[@]}"
    return $failed
}

case ${1:-ci} in
setup) step setup setup ;;
release)
    step setup setup
    step release-all release_all "${@:2}"
    ;;
ci)
    step setup setup
    release_start=$SECONDS
    release_agent_a64_start
    step test-aarch64-qemu unit_tests_a64
    step test-armv7-qemu unit_tests_a32
    step check-aarch64-musl musl_check_a64
    step check-armv7-musl musl_check_a32
    step release-wait release_agent_a64_wait
    took=$((SECONDS - release_start))
    STEPS+=("$(printf '%-22s %3d min %2d s' "(release, in all)" $((took / 60)) $((took % 60)))")
    step size-budget size_budget
    step emulated-agent emulated_agent
    ;;
*)
    echo "usage: $0 [ci|release|setup]" >&2
    exit 2
    ;;
esac
