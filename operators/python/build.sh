#!/usr/bin/env bash
# Builds the Python aggregates into Wasm components: OUT_DIR/py_geomean.wasm (geomean/)
# and OUT_DIR/py_sum.wasm (sum/), each with the helpers in common/.
#
#   operators/python/build.sh OUT_DIR
#
# Needs componentize-py 0.25.1 (`python3 -m pip install componentize-py==0.25.1`, or
# .ci/install-guest-tools). The component is built straight from wit/laminar-udaf.wit.
#
# The component imports the WASI 0.2 interfaces that CPython's runtime links against (the
# host grants nothing through them; geomean calls none). PY_STUB_WASI=1 builds it with
# `--stub-wasi` instead: no imports at all, every WASI call traps (a Python traceback
# included), and the PRNG seed is fixed at build time.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out_dir="$1"

version=0.25.1
install_hint="install it with: python3 -m pip install componentize-py==$version (or run .ci/install-guest-tools)"
# The console script if it is on PATH; else the module (e.g. installed with --user, or a
# pyenv shim not yet rehashed).
if command -v componentize-py >/dev/null 2>&1; then
    cpy=(componentize-py)
elif python3 -c 'import componentize_py' >/dev/null 2>&1; then
    cpy=(python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())')
else
    echo "error: componentize-py not found; $install_hint" >&2
    exit 1
fi
# The app follows the conventions of this version (see geomean/aggregate.py).
found="$("${cpy[@]}" --version 2>/dev/null | awk '{print $2}')"
if [[ "$found" != "$version" ]]; then
    echo "error: componentize-py $version is required, found '${found:-unknown}'; $install_hint" >&2
    exit 1
fi

mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

# componentize-py generates the bindings (module `wit_world`) itself. The app module is
# `aggregate` (e.g. geomean/aggregate.py): it holds both the class `Aggregate` (the
# interface's functions) and the module-level resource class `Accumulator` that
# componentize-py looks up in a module named after the exported interface.
stub=()
if [[ "${PY_STUB_WASI:-0}" == 1 ]]; then
    stub=(--stub-wasi)
fi
for app in geomean sum; do
    out="$out_dir/py_$app.wasm"
    "${cpy[@]}" \
        --wit-path "$repo/wit/laminar-udaf.wit" \
        --world udaf \
        --quiet \
        componentize aggregate \
        --python-path "$here/$app" \
        --python-path "$here/common" \
        "${stub[@]}" \
        --output "$out"
    echo "built $out"
done
