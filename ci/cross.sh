#!/usr/bin/env bash
# Cross builds and emulation for kelp's ARM targets, with plain cargo (no container engine):
# Debian's cross gcc links (.cargo/config.toml), qemu-user runs the test binaries.
#
#   ci/cross.sh            CI stage: installs what it needs, builds the aarch64 release agent
#                          and checks its stripped size (< 10 MB), runs the aarch64 and armv7
#                          unit tests under qemu-user, `cargo check`s the two musl targets,
#                          and runs the emulated aarch64 agent against an x86 `kelp server`.
#   ci/cross.sh release    Builds kelp-agent in release for all four targets and prints the
#                          stripped sizes (the table in docs/cross-builds.md).
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

# Unit tests that cannot pass under qemu-user, with the reason (docs/cross-builds.md lists
# them too). Each is skipped by its exact path.
AGENT_SKIPS=(
)

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
trap report EXIT

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

# Whether kelp-agent builds for `target`: libcontainer 0.7.0 does not compile for 32-bit ARM
# (docs/cross-builds.md); once the agent leaves it out of 32-bit builds, this says yes.
agent_builds_for() {
    case $1 in aarch64-*) return 0 ;; esac
    ! cargo tree -q -p kelp-agent --target "$1" -e normal -i libcontainer >/dev/null 2>&1
}

release_agent_a64() {
    cargo build --release -p kelp-agent --target "$A64"
}

size_budget() {
    local bin=$TARGET_DIR/$A64/release/kelp-agent stripped
    stripped=$(mktemp)
    aarch64-linux-gnu-strip -o "$stripped" "$bin"
    local size
    size=$(stat -c %s "$stripped")
    rm -f "$stripped"
    echo "aarch64 kelp-agent stripped: $size bytes (budget < $SIZE_BUDGET)"
    if [ "$size" -ge "$SIZE_BUDGET" ]; then
        echo "FAIL: the aarch64 agent is $size bytes stripped, the budget is under $SIZE_BUDGET" >&2
        return 1
    fi
}

unit_tests() {
    local target=$1
    cargo test --target "$target" -p kelp-shared
    if agent_builds_for "$target"; then
        local skips=()
        for s in "${AGENT_SKIPS[@]}"; do skips+=(--skip "$s"); done
        cargo test --target "$target" -p kelp-agent --lib -- --exact "${skips[@]}"
    else
        echo "NOT RUN: kelp-agent's unit tests on $target: libcontainer 0.7.0 does not compile for it" >&2
        echo "         (docs/cross-builds.md; they run here as soon as the agent leaves it out)" >&2
    fi
}
unit_tests_a64() { unit_tests "$A64"; }
unit_tests_a32() { unit_tests "$A32"; }

musl_check() {
    local target=$1
    musl_envs
    if agent_builds_for "$target"; then
        cargo_target "$target" check -p kelp-agent
    else
        cargo_target "$target" check -p kelp-shared
        echo "NOT CHECKED: kelp-agent on $target: libcontainer 0.7.0 does not compile for it" >&2
    fi
}
musl_check_a64() { musl_check "$A64M"; }
musl_check_a32() { musl_check "$A32M"; }

emulated_agent() {
    KELP_QEMU_AGENT=$TARGET_DIR/$A64/release/kelp-agent \
        cargo test -p kelp-controller --test qemu_agent_e2e -- --ignored --nocapture
}

release_all() {
    musl_envs
    local failed=0 rows=()
    for target in "$A64" "$A32" "$A64M" "$A32M"; do
        local start=$SECONDS
        if cargo_target "$target" build --release -p kelp-agent; then
            local bin=$TARGET_DIR/$target/release/kelp-agent size
            local strip=aarch64-linux-gnu-strip
            case $target in armv7*) strip=arm-linux-gnueabihf-strip ;; esac
            local tmp
            tmp=$(mktemp)
            $strip -o "$tmp" "$bin"
            size=$(stat -c %s "$tmp")
            rm -f "$tmp"
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
    step release-all release_all
    ;;
ci)
    step setup setup
    step release-aarch64 release_agent_a64
    step size-budget size_budget
    step test-aarch64-qemu unit_tests_a64
    step test-armv7-qemu unit_tests_a32
    step check-aarch64-musl musl_check_a64
    step check-armv7-musl musl_check_a32
    step emulated-agent emulated_agent
    ;;
*)
    echo "usage: $0 [ci|release|setup]" >&2
    exit 2
    ;;
esac
