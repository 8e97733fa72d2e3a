#!/usr/bin/env bash
# Builds the Python aggregates into Wasm components: OUT_DIR/py_geomean.wasm (geomean/)
# and OUT_DIR/py_sum.wasm (sum/), each with the helpers in common/; and the Python scalar
# function OUT_DIR/py_bucket.wasm (bucket/, world `udf` of wit/laminar-scalar.wit).
#
#   operators/python/build.sh OUT_DIR
#
# Needs python3 with pip. Uses componentize-py 0.25.1 if it is installed; otherwise
# installs it (once) under target/guest-tools/ with pip. The component is built straight
# from wit/laminar-udaf.wit.
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
# Where this script installs componentize-py when the machine has no such version: inside
# the cargo target directory, so a fresh checkout needs nothing installed by hand.
tools="$repo/target/guest-tools/componentize-py-$version"

# How to run componentize-py $version: the console script or an installed module if they
# are that version, else the copy under $tools (installed now with pip if missing).
module_runner=(python3 -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())')
version_of() { "$@" --version 2>/dev/null | awk '{print $2}'; }
cpy=()
if command -v componentize-py >/dev/null 2>&1 && [[ "$(version_of componentize-py)" == "$version" ]]; then
    cpy=(componentize-py)
elif [[ "$(version_of "${module_runner[@]}")" == "$version" ]]; then
    cpy=("${module_runner[@]}")
else
    if [[ ! -d "$tools/componentize_py" ]]; then
        if ! command -v python3 >/dev/null 2>&1; then
            echo "error: python3 is needed to build the Python plugins (Debian: apt-get install python3 python3-pip)" >&2
            exit 1
        fi
        echo "installing componentize-py $version into $tools" >&2
        staging="$tools.partial.$$"
        rm -rf "$staging"
        if ! python3 -m pip install --disable-pip-version-check --no-input --quiet --root-user-action=ignore \
            --target "$staging" "componentize-py==$version" >&2; then
            rm -rf "$staging"
            echo "error: cannot install componentize-py $version with pip (python3 -m pip); install it with: python3 -m pip install componentize-py==$version" >&2
            exit 1
        fi
        mkdir -p "$(dirname "$tools")"
        # Another build may have finished first: keep whichever copy is in place.
        mv -T "$staging" "$tools" 2>/dev/null || rm -rf "$staging"
    fi
    export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"
    cpy=("${module_runner[@]}")
    found="$(version_of "${cpy[@]}")"
    if [[ "$found" != "$version" ]]; then
        echo "error: componentize-py $version under $tools does not run (found '${found:-nothing}'); remove that directory and build again" >&2
        exit 1
    fi
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

# The scalar function: app module `scalar` holds the class `Scalar` (the interface's
# functions), built from wit/laminar-scalar.wit, world `udf`.
out="$out_dir/py_bucket.wasm"
"${cpy[@]}" \
    --wit-path "$repo/wit/laminar-scalar.wit" \
    --world udf \
    --quiet \
    componentize scalar \
    --python-path "$here/bucket" \
    "${stub[@]}" \
    --output "$out"
echo "built $out"
