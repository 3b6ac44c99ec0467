"""Arrow column access and the row checks both padding paths share (torch-free, numpy + pyarrow only).

:func:`_list_parts` gives a list column as (offsets int64 [B+1] from 0, flat int64 values) without copying the
values; :func:`_values` a primitive column as numpy with nulls filled; the ``*_error`` helpers build the one-line
:class:`~genco_data.errors.InvalidInputError` of a bad row (naming the row, its impression_id and the column),
the same whichever path found it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from genco_data.errors import InvalidInputError, SchemaError
from genco_data.format.components import exposed_col, propensity_col

#: The integer context columns of a row (hashed or direct ids).
_INT_FIELDS = ("user_id", "ad_id", "query_id", "user_age", "user_gender")


def _column(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array | pa.ChunkedArray:
    try:
        return table.column(name)
    except KeyError:
        raise SchemaError(f"missing column {name!r} (expected the impressions schema)") from None


def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        return col.combine_chunks() if col.num_chunks else pa.array([], type=col.type)
    return col


def _list_parts(arr: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """(offsets int64 [B+1] starting at 0, flat int64 values) of a list column."""
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise SchemaError(f"column {name!r}: expected list<int64>, got {arr.type}")
    offs = arr.offsets.to_numpy().astype(np.int64, copy=False)
    base = int(offs[0])
    values = arr.values.slice(base, int(offs[-1]) - base)
    if base:
        offs = offs - base
    if not pa.types.is_integer(values.type):
        raise SchemaError(f"column {name!r}: expected list<int64>, got {arr.type}")
    if values.null_count:
        raise InvalidInputError(f"column {name!r}: null id inside a list")
    if values.type != pa.int64():
        values = values.cast(pa.int64())
    return offs, values


def _valid(arr: pa.Array) -> np.ndarray | None:
    """Validity of a primitive array as bool numpy (None when it has no nulls), straight from the bitmap."""
    if not arr.null_count:
        return None
    bits = np.frombuffer(arr.buffers()[0], np.uint8)
    return np.unpackbits(bits, bitorder="little", count=arr.offset + len(arr))[arr.offset :].view(bool)


def _values(arr: pa.Array, fill: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(values as ``dtype`` with nulls set to ``fill``, validity or None) of a primitive array.

    Reads the value buffer directly (no compute-kernel call: this runs ~20 times per batch)."""
    valid = _valid(arr)
    if pa.types.is_boolean(arr.type):
        raw = arr.to_numpy(zero_copy_only=False) if valid is None else arr.fill_null(False).to_numpy(zero_copy_only=False)
    else:
        raw = np.frombuffer(arr.buffers()[1], arr.type.to_pandas_dtype())[arr.offset : arr.offset + len(arr)]
    out = raw.astype(dtype)  # a copy: the buffer may be shared and read-only
    if valid is not None:
        out[~valid] = fill
    return out, valid


def _describe_row(table: pa.Table | pa.RecordBatch, i: int, where: Callable[[int], str] | None) -> str:
    iid = _as_array(table.column("impression_id"))[i].as_py()
    return f"{where(i) if where else f'row {i}'} (impression_id {iid!r})"


def _exposed_error(table: pa.Table | pa.RecordBatch, i: int, comp: str, n: int, where: Callable[[int], str] | None) -> InvalidInputError:
    raw = _as_array(table.column(exposed_col(comp)))[i].as_py()
    return InvalidInputError(f"{_describe_row(table, i, where)}: column {exposed_col(comp)!r} is {raw!r} for a pool of "
                             f"{n} candidates (expected 0 <= exposed < n, null iff the pool is empty)")


def _propensity_error(table: pa.Table | pa.RecordBatch, i: int, comp: str, where: Callable[[int], str] | None) -> InvalidInputError:
    raw = _as_array(table.column(propensity_col(comp)))[i].as_py()
    return InvalidInputError(f"{_describe_row(table, i, where)}: column {propensity_col(comp)!r} is {raw!r} "
                             f"(expected a probability in (0, 1] where the pool is non-empty)")


def _checked_click(table: pa.Table | pa.RecordBatch, where: Callable[[int], str] | None) -> np.ndarray:
    """The context columns' checks (no null impression_id / user_id / ad_id / click; click 0 or 1) → click float32 [B]."""
    for name in ("impression_id", "user_id", "ad_id", "click"):
        arr = _as_array(table.column(name))
        if arr.null_count:
            i = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
            raise InvalidInputError(f"{where(i) if where else f'row {i}'}: column {name!r} is null")
    click = _as_array(table.column("click"))
    cv = click.to_numpy(zero_copy_only=False)
    bad = (cv != 0) & (cv != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"{_describe_row(table, i, where)}: column 'click' is {click[i].as_py()!r} (expected 0 or 1)")
    return cv.astype(np.float32)
