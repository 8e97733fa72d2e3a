"""geomean(x DOUBLE) -> DOUBLE as a Laminar aggregate plugin, written in Python.

The geometric mean of the positive values of `x`, computed as exp(mean(ln x)): a group's
state is (sum of ln x, count) over its rows with x > 0; NULL rows and x <= 0 are skipped,
and a group with no such row evaluates to NULL. State bytes are 16 bytes per group,
little-endian: the f64 sum, then the count as u64 -- the encoding of the Rust SDK's
`(f64, u64)` state, so states move freely between the Rust, Python and JavaScript builds.

Built from wit/laminar-udaf.wit (world `udaf`) by componentize-py; see ../build.sh. The
checks and layouts shared with the Python SUM are in ../common/laminar_groups.py.

How componentize-py 0.25 maps the WIT:

* The functions of the exported interface `aggregate` are methods of a class `Aggregate`
  in the app module, and its resource `accumulator` is the class `Accumulator` in a
  top-level module named after the interface, `aggregate`. This file is that module and
  the app module at once (the build names the app `aggregate`).
* The resource's constructor is `__init__`; kebab-case names are snake_case.
* Records are dataclasses (`wit.Column(data, validity)`), the enum `data-type` is
  `wit.DataType`, and the variant `column-data` is one dataclass per case
  (`wit.ColumnData_Float64(value)`).
* `list<f64>` and `list<u32>` are Python lists, `list<u8>` is `bytes`, and
  `option<list<u8>>` is `bytes` or `None`.
* A function returning `result<_, string>` returns normally for `ok` and raises
  `componentize_py_types.Err(message)` for `err`; any other exception traps.
"""

import math
import struct

import wit_world
from laminar_groups import (
    check_ids,
    ensure_groups,
    fixed_states,
    float64_column,
    float64_rows,
    float64_signature,
    pack_states,
)
from wit_world.exports import aggregate as wit

NAME = "geomean"
STATE_VERSION = 1

# One group's state: f64 sum of logarithms, u64 count, little-endian.
_STATE = struct.Struct("<dQ")
_STATE_BYTES = _STATE.size
_EMPTY_STATE = _STATE.pack(0.0, 0)


class Aggregate(wit_world.exports.Aggregate):
    def describe(self) -> wit.Signature:
        return float64_signature(NAME, STATE_VERSION)


class Accumulator(wit.Accumulator):
    """Per-group sums of ln x and counts, indexed by group id."""

    def __init__(self) -> None:
        self.sums: list[float] = []
        self.counts: list[int] = []

    def update(self, group_ids, total_groups: int, args) -> None:
        batch = float64_rows(NAME, group_ids, args)
        ensure_groups((self.sums, self.counts), (0.0, 0), group_ids, total_groups)
        sums = self.sums
        counts = self.counts
        log = math.log
        for g, x in batch:
            if x > 0.0:
                sums[g] += log(x)
                counts[g] += 1

    def evaluate(self, group_ids) -> wit.Column:
        check_ids(group_ids, len(self.sums))
        sums = self.sums
        counts = self.counts
        exp = math.exp
        out = [0.0] * len(group_ids)
        nulls = []
        for i, g in enumerate(group_ids):
            n = counts[g]
            if n:
                out[i] = exp(sums[g] / n)
            else:
                nulls.append(i)
            # Evaluating resets the group: the host may reuse its id for a new group.
            sums[g] = 0.0
            counts[g] = 0
        return float64_column(out, nulls)

    def state(self, group_ids) -> wit.VarBinary:
        sums = self.sums
        counts = self.counts
        pack = _STATE.pack
        # A group never updated is empty: its state is (0.0, 0).
        return pack_states(group_ids, len(sums), lambda g: pack(sums[g], counts[g]), _EMPTY_STATE)

    def merge(self, group_ids, total_groups: int, states: wit.VarBinary) -> None:
        starts = fixed_states(NAME, group_ids, states, _STATE_BYTES)
        ensure_groups((self.sums, self.counts), (0.0, 0), group_ids, total_groups)
        sums = self.sums
        counts = self.counts
        unpack_from = _STATE.unpack_from
        data = states.data
        for g, start in zip(group_ids, starts):
            s, c = unpack_from(data, start)
            sums[g] += s
            counts[g] += c
