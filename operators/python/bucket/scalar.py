"""py_bucket(x DOUBLE) -> BIGINT as a Laminar scalar plugin, written in Python.

`floor(x / 10)`: the bucket of width 10 that `x` falls into, the same value as the SQL
expression `CAST(floor(x / 10) AS BIGINT)`. NULL, NaN and infinite `x` give NULL.

Built from wit/laminar-scalar.wit (world `udf`) by componentize-py; see ../build.sh. One
call per batch: `evaluate` gets the whole column and returns the whole result column.
"""

import math
from itertools import chain

import wit_world
from componentize_py_types import Err
from wit_world.exports import scalar as wit

NAME = "py_bucket"

# _BITS[b] = the 8 validity flags of bitmap byte b, first row first.
_BITS = tuple(tuple(bool(b >> k & 1) for k in range(8)) for b in range(256))


def _bucket(x: float):
    if math.isfinite(x):
        return math.floor(x / 10)
    return None


class Scalar(wit_world.exports.Scalar):
    def describe(self) -> wit.Signature:
        return wit.Signature(
            name=NAME,
            args=[wit.DataType.FLOAT64],
            returns=wit.DataType.INT64,
            deterministic=True,
        )

    def evaluate(self, rows: int, args) -> wit.Column:
        if len(args) != 1:
            raise Err(f"{NAME} takes 1 argument, got {len(args)}")
        column = args[0]
        data = column.data
        if not isinstance(data, wit.ColumnData_Float64):
            raise Err(f"{NAME}: argument 1 is not a DOUBLE column")
        values = data.value
        if len(values) != rows:
            raise Err(f"{NAME}: argument 1 has {len(values)} values for {rows} rows")
        validity = column.validity
        if validity is None:
            valid = [True] * rows
        else:
            if len(validity) * 8 < rows:
                raise Err(f"{NAME}: the validity bitmap is too short for {rows} rows")
            valid = list(chain.from_iterable(map(_BITS.__getitem__, validity)))[:rows]
        out = [0] * rows
        bitmap = bytearray((rows + 7) // 8)
        has_null = False
        for i, x in enumerate(values):
            b = _bucket(x) if valid[i] else None
            if b is None:
                has_null = True
            else:
                out[i] = b
                bitmap[i >> 3] |= 1 << (i & 7)
        return wit.Column(
            data=wit.ColumnData_Int64(out),
            validity=bytes(bitmap) if has_null else None,
        )
