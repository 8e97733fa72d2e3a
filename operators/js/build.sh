#!/usr/bin/env bash
# Builds the JavaScript geomean aggregate into a Wasm component: OUT_DIR/js_geomean.wasm.
#
#   operators/js/build.sh OUT_DIR
#
# Needs Node.js (20 or later) and npm; installs the pinned jco / componentize-js from
# package-lock.json (`npm ci`) when node_modules is missing. The component is built
# straight from wit/laminar-udaf.wit.
#
# `--disable all` builds a "pure" component that imports no WASI at all: no stdio, clocks,
# random or HTTP (geomean needs none of them). The price is that an uncaught JS exception
# traps without printing a stack; errors the aggregate reports itself still reach the host
# as `err(message)`. For a debugging build that prints to stderr, set
# JS_DISABLE_FEATURES="http fetch-event clocks random".
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out_dir="$1"

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found on PATH; install Node.js 20 or later (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi

mkdir -p "$out_dir"
out="$(cd "$out_dir" && pwd)/js_geomean.wasm"

cd "$here"
if [[ ! -d node_modules ]]; then
    npm ci --no-audit --no-fund
fi

read -r -a disable <<<"${JS_DISABLE_FEATURES:-all}"
npx --no-install jco componentize geomean.js \
    --wit "$repo/wit/laminar-udaf.wit" \
    --world-name udaf \
    --disable "${disable[@]}" \
    --out "$out"

echo "built $out"
