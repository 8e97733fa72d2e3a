#!/usr/bin/env bash
# Builds the C guest `l2norm` from wit/laminar-udaf.wit:
#
#   bash operators/c/build.sh OUT_DIR      # → OUT_DIR/c_l2norm.wasm
#
# 1. clang for wasm32-wasi with wasi-libc (Debian: clang lld wasi-libc
#    libclang-rt-dev-wasm32; installed with apt-get when missing and running as root);
# 2. the C bindings of world `udaf` (the `wit-bindgen c` generator of wit-bindgen 0.46.0)
#    and the componentizer with the WASI preview-1 *reactor* adapter, both from
#    operators/c/tools (a small Rust helper, built once into target/guest-tools/build);
# 3. clang → core module (-mexec-model=reactor: a library, no main) → component.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/c-build"
mkdir -p "$work"

packages="clang lld wasi-libc libclang-rt-dev-wasm32"

# Whether clang can build a WASI reactor that calls into wasi-libc.
clang_works() {
    command -v clang >/dev/null 2>&1 || return 1
    printf '#include <stdlib.h>\nvoid *f(unsigned n) { return malloc(n); }\n' \
        | clang --target=wasm32-wasi -mexec-model=reactor -O2 -x c - -o "$work/probe.wasm" \
            >/dev/null 2>&1
}

if ! clang_works; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $packages with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends $packages >/dev/null 2>&1 \
            || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $packages >/dev/null; }
    fi
    if ! clang_works; then
        echo "clang cannot build for wasm32-wasi with wasi-libc; install it with: apt-get install -y $packages" >&2
        exit 1
    fi
fi

# The helper, built with the toolchain of the checkout and nothing of an outer cargo's
# settings (this script runs inside the test build).
tools_target="$root/target/guest-tools/build"
env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u CARGO_ENCODED_RUSTFLAGS -u RUSTFLAGS \
    -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER -u CARGO_MAKEFLAGS -u MAKEFLAGS -u MFLAGS \
    "${CARGO:-cargo}" build --quiet --locked --manifest-path "$here/tools/Cargo.toml" \
    --target-dir "$tools_target"
tools="$tools_target/debug/laminar-c-tools"

"$tools" bindings "$root/wit" udaf "$work"
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
    -I "$work" -o "$work/l2norm.core.wasm" \
    "$here/l2norm.c" "$work/udaf.c" "$work/udaf_component_type.o"
"$tools" componentize "$work/l2norm.core.wasm" "$out/c_l2norm.wasm"
