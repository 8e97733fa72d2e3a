"""py_sum(x DOUBLE) -> DOUBLE as a Laminar aggregate plugin, written in Python.

The plain SUM of the non-NULL values of `x`; a group with no such value is NULL, as SQL
`SUM`. It exists to measure what a Python guest costs per row when the aggregate itself
does almost nothing (one addition), against the Rust `wasm_sum` and the native SUM. State
bytes are 9 per group, little-endian: the f64 sum, then a byte 1 if any value was seen --
the encoding of the Rust SDK's `(f64, bool)` state used by `wasm_sum`.

Built from wit/laminar-udaf.wit (world `udaf`) by componentize-py; see ../build.sh, and
../geomean/aggregate.py for how componentize-py maps the WIT to Python.
"""

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

NAME = "py_sum"
STATE_VERSION = 1

# One group's state: f64 sum, then whether any value was seen.
_STATE = struct.Struct("<d?")
_STATE_BYTES = _STATE.size
_EMPTY_STATE = _STATE.pack(0.0, False)


class Aggregate(wit_world.exports.Aggregate):
    def describe(self) -> wit.Signature:
        return float64_signature(NAME, STATE_VERSION)


class Accumulator(wit.Accumulator):
    """Per-group sums and whether each group has seen a value, indexed by group id."""

    def __init__(self) -> None:
        self.sums: list[float] = []
        self.seen: list[bool] = []

    def update(self, group_ids, total_groups: int, args) -> None:
        batch = float64_rows(NAME, group_ids, args)
        ensure_groups((self.sums, self.seen), (0.0, False), group_ids, total_groups)
        sums = self.sums
        seen = self.seen
        for g, x in batch:
            sums[g] += x
            seen[g] = True

    def evaluate(self, group_ids) -> wit.Column:
        check_ids(group_ids, len(self.sums))
        sums = self.sums
        seen = self.seen
        out = [0.0] * len(group_ids)
        nulls = []
        for i, g in enumerate(group_ids):
            if seen[g]:
                out[i] = sums[g]
            else:
                nulls.append(i)
            # Evaluating resets the group: the host may reuse its id for a new group.
            sums[g] = 0.0
            seen[g] = False
        return float64_column(out, nulls)

    def state(self, group_ids) -> wit.VarBinary:
        sums = self.sums
        seen = self.seen
        pack = _STATE.pack
        return pack_states(group_ids, len(sums), lambda g: pack(sums[g], seen[g]), _EMPTY_STATE)

    def merge(self, group_ids, total_groups: int, states: wit.VarBinary) -> None:
        starts = fixed_states(NAME, group_ids, states, _STATE_BYTES)
        ensure_groups((self.sums, self.seen), (0.0, False), group_ids, total_groups)
        sums = self.sums
        seen = self.seen
        unpack_from = _STATE.unpack_from
        data = states.data
        for g, start in zip(group_ids, starts):
            s, any_value = unpack_from(data, start)
            if any_value:
                sums[g] += s
                seen[g] = True
