#!/usr/bin/env bash
# Builds the Go guest `geomean` from wit/laminar-udaf.wit with mainline Go (no TinyGo):
#
#   bash operators/go/build.sh OUT_DIR      # → OUT_DIR/go_geomean.wasm
#
# 1. Go 1.25 or later (`go` on PATH, else /usr/local/go/bin/go): GOOS=wasip1 GOARCH=wasm
#    with -buildmode=c-shared, a WASI preview-1 *reactor* whose exports are the
#    `go:wasmexport` functions of the bindings;
# 2. the Go bindings of world `udaf` (the `wit-bindgen go` generator of wit-bindgen 0.63.0)
#    and the componentizer with the WASI preview-1 reactor adapter, both from
#    operators/c/tools (the helper the C guest uses, built once into
#    target/guest-tools/build); the runtime package the bindings import
#    (go.bytecodealliance.org/pkg v0.4.0) is copied from the sources the crates.io crate
#    wit-bindgen-go 0.63.0 ships, so nothing is fetched from the Go module proxy
#    (GOPROXY=off);
# 3. go build → core module → component type embedded (what `wasm-tools component embed`
#    does) → component. The component calls the module's `_initialize` (the Go runtime's
#    start) before any export.
#
# Go's caches are kept under target/guest-tools/go (build cache and module cache).
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/go-build"

go=$(command -v go || true)
if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then
    go=/usr/local/go/bin/go
fi
if [ -z "$go" ]; then
    echo "go is not installed: the Go guest needs Go 1.25 or later (https://go.dev/dl/)" >&2
    exit 1
fi
# The generator formats its output with the gofmt beside go.
export PATH="$(dirname "$go"):$PATH"
export GOTOOLCHAIN=local GOPROXY=off GOWORK=off GOFLAGS= CGO_ENABLED=0
export GOCACHE="$root/target/guest-tools/go/cache" GOMODCACHE="$root/target/guest-tools/go/mod"
version=$("$go" env GOVERSION)
case "$version" in
    go1.2[5-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
    *)
        echo "$go is $version: the Go guest needs Go 1.25 or later" >&2
        exit 1
        ;;
esac

# The helper, built with the toolchain of the checkout and nothing of an outer cargo's
# settings (this script runs inside the test build).
tools_manifest="$root/operators/c/tools/Cargo.toml"
tools_target="$root/target/guest-tools/build"
cargo_clean_env=(env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET -u CARGO_ENCODED_RUSTFLAGS
    -u RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER -u CARGO_MAKEFLAGS -u MAKEFLAGS
    -u MFLAGS)
"${cargo_clean_env[@]}" "${CARGO:-cargo}" build --quiet --locked --manifest-path "$tools_manifest" \
    --target-dir "$tools_target"
tools="$tools_target/debug/laminar-c-tools"

# Where cargo unpacked the crate wit-bindgen-go 0.63.0: its src/pkg is go-pkg v0.4.0.
generator=$("${cargo_clean_env[@]}" "${CARGO:-cargo}" metadata --format-version 1 --locked --offline \
    --manifest-path "$tools_manifest" \
    | grep -o '"manifest_path":"[^"]*/wit-bindgen-go-0\.63\.0/Cargo\.toml"' | head -n 1 \
    | sed -e 's/^"manifest_path":"//' -e 's#/Cargo\.toml"$##')
if [ ! -d "$generator/src/pkg/wit/runtime" ]; then
    echo "cannot find the Go runtime package in the crate wit-bindgen-go 0.63.0 (looked in '$generator')" >&2
    exit 1
fi

# The module: the generated bindings, then this directory's go.mod and aggregate over them,
# and the runtime package (its go.mod asks for a newer Go than it needs: it builds with 1.25).
rm -rf "$work"
mkdir -p "$work/src/go-pkg"
"$tools" go-bindings "$root/wit" udaf "$work/src"
cp "$here/go.mod" "$work/src/go.mod"
cp "$here"/export_laminar_udaf_aggregate/*.go "$work/src/export_laminar_udaf_aggregate/"
cp -R "$generator/src/pkg/wit" "$work/src/go-pkg/wit"
chmod -R u+w "$work/src/go-pkg"
printf 'module go.bytecodealliance.org/pkg\n\ngo 1.25\n' >"$work/src/go-pkg/go.mod"

# -checklinkname=0: the runtime package reaches runtime.sbrk through go:linkname (for
# cabi_realloc calls that come before the Go runtime is initialized).
(cd "$work/src" && GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared -trimpath \
    -buildvcs=false -ldflags=-checklinkname=0 -o "$work/geomean.core.wasm" .)
"$tools" componentize "$work/geomean.core.wasm" "$out/go_geomean.wasm" "$root/wit" udaf
