"""geomean(x DOUBLE) -> DOUBLE as a Laminar aggregate plugin, written in Python.

The geometric mean of the positive values of `x`, computed as exp(mean(ln x)): a group's
state is (sum of ln x, count) over its rows with x > 0; NULL rows and x <= 0 are skipped,
and a group with no such row evaluates to NULL. State bytes are 16 bytes per group,
little-endian: the f64 sum, then the count as u64 -- the encoding of the Rust SDK's
`(f64, u64)` state, so states move freely between the Rust, Python and JavaScript builds.

Built from wit/laminar-udaf.wit (world `udaf`) by componentize-py; see ../build.sh.

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
from itertools import chain, compress

import wit_world
from componentize_py_types import Err
from wit_world.exports import aggregate as wit

NAME = "geomean"
STATE_VERSION = 1

# One group's state: f64 sum of logarithms, u64 count, little-endian.
_STATE = struct.Struct("<dQ")
_STATE_BYTES = _STATE.size
_EMPTY_STATE = _STATE.pack(0.0, 0)

# _BITS[b] = the 8 validity flags of bitmap byte b, least significant bit (first row) first;
# chaining them over a bitmap gives one flag per row without a Python-level loop.
_BITS = tuple(tuple(bool(b >> k & 1) for k in range(8)) for b in range(256))


class Aggregate(wit_world.exports.Aggregate):
    def describe(self) -> wit.Signature:
        return wit.Signature(
            name=NAME,
            args=[wit.DataType.FLOAT64],
            returns=wit.DataType.FLOAT64,
            state_version=STATE_VERSION,
        )


class Accumulator(wit.Accumulator):
    """Per-group sums of ln x and counts, indexed by group id."""

    def __init__(self) -> None:
        self.sums: list[float] = []
        self.counts: list[int] = []

    def _grow(self, total_groups: int) -> None:
        missing = total_groups - len(self.sums)
        if missing > 0:
            self.sums.extend([0.0] * missing)
            self.counts.extend([0] * missing)

    def _check_ids(self, group_ids) -> None:
        if group_ids:
            top = max(group_ids)
            if top >= len(self.sums):
                raise Err(f"group id {top} is not below the number of groups {len(self.sums)}")

    def update(self, group_ids, total_groups: int, args) -> None:
        if len(args) != 1:
            raise Err(f"{NAME} takes 1 arguments, got {len(args)}")
        column = args[0]
        data = column.data
        if not isinstance(data, wit.ColumnData_Float64):
            found = type(data).__name__.removeprefix("ColumnData_")
            raise Err(f"argument 1 has type {found}, the aggregate declares Float64")
        values = data.value
        rows = len(group_ids)
        if len(values) != rows:
            raise Err(f"argument 1 has {len(values)} values for {rows} group ids")
        validity = column.validity
        if validity is not None and len(validity) * 8 < rows:
            raise Err(f"argument 1 has a validity bitmap of {len(validity)} bytes for {rows} rows")
        self._grow(total_groups)
        self._check_ids(group_ids)

        batch = zip(group_ids, values)
        if validity is not None:
            # Drop NULL rows in C (itertools) rather than testing bits in the loop.
            batch = compress(batch, chain.from_iterable(map(_BITS.__getitem__, validity)))
        sums = self.sums
        counts = self.counts
        log = math.log
        for g, x in batch:
            if x > 0.0:
                sums[g] += log(x)
                counts[g] += 1

    def evaluate(self, group_ids) -> wit.Column:
        self._check_ids(group_ids)
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
        validity = None
        if nulls:
            rows = len(group_ids)
            bits = bytearray(b"\xff" * ((rows + 7) // 8))
            if rows % 8:
                bits[-1] = (1 << (rows % 8)) - 1
            for i in nulls:
                bits[i >> 3] &= ~(1 << (i & 7))
            validity = bytes(bits)
        return wit.Column(data=wit.ColumnData_Float64(out), validity=validity)

    def state(self, group_ids) -> wit.VarBinary:
        sums = self.sums
        counts = self.counts
        groups = len(sums)
        pack = _STATE.pack
        # A group never updated is empty: its state is (0.0, 0).
        data = b"".join(
            [pack(sums[g], counts[g]) if g < groups else _EMPTY_STATE for g in group_ids]
        )
        offsets = list(range(0, _STATE_BYTES * (len(group_ids) + 1), _STATE_BYTES))
        return wit.VarBinary(offsets=offsets, data=data)

    def merge(self, group_ids, total_groups: int, states: wit.VarBinary) -> None:
        offsets = states.offsets
        data = states.data
        n = len(group_ids)
        if len(offsets) != n + 1:
            raise Err(f"merge got {max(len(offsets) - 1, 0)} states for {n} group ids")
        if offsets[0] != 0 or offsets[-1] > len(data):
            raise Err(
                "malformed offsets (must start at 0, not decrease, "
                f"and end within {len(data)} bytes)"
            )
        for i in range(n):
            length = offsets[i + 1] - offsets[i]
            if length < _STATE_BYTES:
                raise Err(
                    f"{NAME}: malformed state bytes: state {i} has {length} bytes, "
                    f"needs {_STATE_BYTES}"
                )
        self._grow(total_groups)
        self._check_ids(group_ids)
        sums = self.sums
        counts = self.counts
        unpack_from = _STATE.unpack_from
        for g, start in zip(group_ids, offsets):
            s, c = unpack_from(data, start)
            sums[g] += s
            counts[g] += c
