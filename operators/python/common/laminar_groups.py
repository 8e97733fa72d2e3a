"""Helpers shared by the Python aggregates in this directory: checking what the host sent,
keeping one value per group in plain lists, and building result bitmaps.

componentize-py maps `list<f64>` / `list<u32>` to Python lists, `list<u8>` to `bytes`, and
`result<_, string>` errors to raising `componentize_py_types.Err`.
"""

from itertools import chain, compress

from componentize_py_types import Err
from wit_world.exports import aggregate as wit

# _BITS[b] = the 8 validity flags of bitmap byte b, least significant bit (first row) first;
# chaining them over a bitmap gives one flag per row without a Python-level loop.
_BITS = tuple(tuple(bool(b >> k & 1) for k in range(8)) for b in range(256))


def float64_rows(name: str, group_ids, args):
    """(group id, value) for every row of a one-DOUBLE-argument call whose value is not
    NULL; raises Err when the call does not match that signature."""
    if len(args) != 1:
        raise Err(f"{name} takes 1 arguments, got {len(args)}")
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
    batch = zip(group_ids, values)
    if validity is not None:
        # Drop NULL rows in C (itertools) rather than testing bits in the loop.
        batch = compress(batch, chain.from_iterable(map(_BITS.__getitem__, validity)))
    return batch


def float64_signature(name: str, state_version: int) -> "wit.Signature":
    """The signature of an aggregate of one DOUBLE argument with a DOUBLE result."""
    return wit.Signature(
        name=name,
        args=[wit.DataType.FLOAT64],
        returns=wit.DataType.FLOAT64,
        state_version=state_version,
    )


def ensure_groups(columns, empty, group_ids, total_groups: int) -> None:
    """Extends each per-group list in `columns` to `total_groups` entries (`empty` holds
    a new group's value for each list), then checks every id of `group_ids`."""
    missing = total_groups - len(columns[0])
    if missing > 0:
        for column, value in zip(columns, empty):
            column.extend([value] * missing)
    check_ids(group_ids, len(columns[0]))


def check_ids(group_ids, groups: int) -> None:
    """Raises Err unless every id is below `groups`."""
    if group_ids:
        top = max(group_ids)
        if top >= groups:
            raise Err(f"group id {top} is not below the number of groups {groups}")


def float64_column(values, nulls) -> "wit.Column":
    """A DOUBLE result column of `values`, where the rows listed in `nulls` are NULL."""
    validity = None
    if nulls:
        rows = len(values)
        bits = bytearray(b"\xff" * ((rows + 7) // 8))
        if rows % 8:
            bits[-1] = (1 << (rows % 8)) - 1
        for i in nulls:
            bits[i >> 3] &= ~(1 << (i & 7))
        validity = bytes(bits)
    return wit.Column(data=wit.ColumnData_Float64(values), validity=validity)


def fixed_states(name: str, group_ids, states, state_bytes: int):
    """The start offset of each state in `states` (a `var-binary` for `merge`), checked
    to hold one state of at least `state_bytes` bytes per group id."""
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
        if length < state_bytes:
            raise Err(
                f"{name}: malformed state bytes: state {i} has {length} bytes, "
                f"needs {state_bytes}"
            )
    return offsets[:n]


def pack_states(group_ids, groups: int, pack_group, empty: bytes) -> "wit.VarBinary":
    """The states of `group_ids`, each `len(empty)` bytes: `pack_group(g)` for a known
    group, `empty` for one never updated."""
    data = b"".join([pack_group(g) if g < groups else empty for g in group_ids])
    size = len(empty)
    offsets = list(range(0, size * (len(group_ids) + 1), size))
    return wit.VarBinary(offsets=offsets, data=data)
