"""The cold path's fast padding: an Arrow table -> the padded numpy block in one compiled pass per column.

:func:`pad_block_fused` returns exactly the block :func:`genco_data.load.padding._pad_block_numpy` returns (same
fields, dtypes, shapes and bytes; same one-line errors, in the same order: per component its pool ids, its
exposed index then its propensity; then the context columns), for vocabularies whose six pool tables and
``query_segments`` are hashed (:data:`FUSED_NAMES`; the default). The kernels (:mod:`genco_data.load.kernels`)
read the Arrow buffers in place — list offsets and flat ids, primitive values and validity bitmaps — and write
every slot of the outputs once, row by row: the hashed candidates, mask and original index, the exposed fix-up of
long pools (truncation rule in padding.py), pool sizes and propensities, then the hashed / direct context ids and
the segments. The outputs are views of one recycled buffer per block (:mod:`genco_data.load.buffers`: no fresh
pages per block). The category strings stay in pyarrow (:meth:`Vocabularies.lookup_category`; the cold loader
reads them dictionary-encoded, so that is one lookup per distinct word).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from genco_data.errors import InvalidInputError
from genco_data.format.components import COMPONENTS, PAD_TO, candidates_col, exposed_col, propensity_col
from genco_data.load import buffers, kernels
from genco_data.load.columns import (
    _INT_FIELDS,
    _as_array,
    _checked_click,
    _list_parts,
    _values,
)

#: Tables that must be hashed (with the current hash) for the fused path to run.
FUSED_NAMES: tuple[str, ...] = (*COMPONENTS, "query_segments")
#: The block fields pad_pools writes, in its argument order.
_POOL_FIELDS = ("candidates", "mask", "original_index", "exposed", "n_candidates", "propensity")
#: Value dtypes the kernels are compiled for (others are cast to one of these first).
_KERNEL_DTYPES = {np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                         np.uint64, np.float32, np.float64)}


class NeedsReference(Exception):
    """Raised by :func:`pad_block_fused` when a row is bad: the numpy path then pads the block and raises the one
    error line (so both paths report the same first bad row, column and message)."""


_NO_BITS = np.empty(0, np.uint8)
_NO_BITS.flags.writeable = False
_DTYPES: dict[pa.DataType, np.dtype] = {}  # Arrow primitive type -> numpy dtype (to_pandas_dtype is slow-ish)


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view (Arrow buffers are read-only: one numba type for every tuple member)."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, int]:
    """(values [B] numpy, zero-copy where possible; validity bitmap uint8 or empty = no nulls; its first bit)."""
    if pa.types.is_boolean(arr.type):
        values = arr.fill_null(False).to_numpy(zero_copy_only=False).view(np.int8)
    else:
        dtype = _DTYPES.get(arr.type)
        if dtype is None:
            dtype = _DTYPES[arr.type] = np.dtype(arr.type.to_pandas_dtype())
        if dtype not in _KERNEL_DTYPES:  # e.g. float16: the numpy path casts it to float32 too
            return _parts(arr.cast(pa.float32() if pa.types.is_floating(arr.type) else pa.int64()))
        buf = arr.buffers()[1]
        values = np.frombuffer(buf, dtype)[arr.offset : arr.offset + len(arr)] if buf is not None else np.empty(0, dtype)
    if not arr.null_count:
        return _ro(values), _NO_BITS, 0
    return _ro(values), _ro(np.frombuffer(arr.buffers()[0], np.uint8)), arr.offset


def _stacked(arrays: list[pa.Array], dtype: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """C primitive columns of B rows as (values [C, B], validity bitmaps uint8 [C, nbytes], first bits [C]).

    ``values`` keeps the columns' dtype when they share one (else int64), or ``dtype`` when given (the cast the
    numpy path makes); a column without nulls gets an all-ones bitmap. Copies B values and B/8 bytes per column."""
    B = len(arrays[0]) if arrays else 0
    parts = [_parts(a) for a in arrays]
    if dtype is None:
        dtypes = {v.dtype for v, _, _ in parts}
        dtype = dtypes.pop() if len(dtypes) == 1 else np.int64
    values = np.empty((len(arrays), B), dtype)
    bits = np.empty((len(arrays), (B + 14) // 8), np.uint8)
    bit0 = np.zeros(len(arrays), np.int64)
    for c, (v, b, o) in enumerate(parts):
        values[c] = v
        if len(b):
            raw = b[o // 8 : (o + B + 7) // 8]
            bits[c, : len(raw)] = raw
            bit0[c] = o % 8
        else:
            bits[c] = 0xFF
    return values, bits, bit0


def _table_args(spec: tuple[int, ...]) -> tuple[np.uint64, np.uint64]:
    _, salt, k = spec
    return np.uint64(salt), np.uint64(k)


def pad_block_fused(
    table: pa.Table | pa.RecordBatch,
    vocabs: Any,
    tables: Mapping[str, tuple[int, ...]],
    max_segments: int,
    where: Callable[[int], str] | None,
    out: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The padded block of a schema-checked ``table`` (``B`` rows; layout in padding.py's docstring).

    ``tables``: ``vocabs.kernel_tables()`` — ``("hash", salt, K)`` for hashed tables (every :data:`FUSED_NAMES`
    one must be), ``("direct", codes)``; a context id table absent from it goes through ``vocabs.lookup``.
    Raises :class:`NeedsReference` when a pool column holds a bad row (the caller lets the numpy path raise).
    ``out``: arrays the kernels write into (at least the :func:`kernels.block_fields` ones; fields computed
    outside the kernels are new arrays in the returned dict: ``padding._pad_block`` copies them over)."""
    B = table.num_rows
    out = buffers.arrays(kernels.block_fields(B, max_segments)) if out is None else dict(out)
    C = len(COMPONENTS)
    offsets = np.empty((C, B + 1), np.int64)
    values = []
    for ci, comp in enumerate(COMPONENTS):
        name = candidates_col(comp)
        try:
            offs, vals = _list_parts(_as_array(table.column(name)), name)
        except InvalidInputError:
            raise NeedsReference from None
        offsets[ci] = offs
        values.append(_ro(vals.to_numpy()))
    ev, eb, e0 = _stacked([_as_array(table.column(exposed_col(c))) for c in COMPONENTS])
    pv, pb, p0 = _stacked([_as_array(table.column(propensity_col(c))) for c in COMPONENTS], np.float32)
    salts = np.array([tables[c][1] for c in COMPONENTS], np.uint64)
    ks = np.array([tables[c][2] for c in COMPONENTS], np.uint64)
    bad_e, bad_p = np.full(C, -1, np.int64), np.full(C, -1, np.int64)
    work = buffers.scratch(sum(len(v) for v in values) + kernels.LANE_PAD, np.int64)
    kernels.pad_pools(offsets, tuple(values), ev, eb, e0, pv, pb, p0, salts, ks,
                      *(out[f].reshape(-1) for f in _POOL_FIELDS), bad_e, bad_p, work)
    if (bad_e >= 0).any() or (bad_p >= 0).any():
        raise NeedsReference
    out["click"] = _checked_click(table, where)
    for name in _INT_FIELDS:
        arr = _as_array(table.column(name))
        spec = tables.get(name)
        if spec is None:  # an exact (or legacy-hashed) context table: the vocabulary's own lookup
            ids, valid = _values(arr, 0, np.int64)
            idx = vocabs.lookup(name, ids)
            if valid is not None:
                idx[~valid] = 0
            out[name] = idx
            continue
        res = out[name]
        if spec[0] == "direct":
            kernels.direct_column(*_parts(arr), int(spec[1]), res)
        else:
            kernels.hash_column(*_parts(arr), *_table_args(spec), res)
    out["category"] = vocabs.lookup_category(_as_array(table.column("category")))
    offs, vals = _list_parts(_as_array(table.column("query_segments")), "query_segments")
    segs = vals.to_numpy()
    kernels.pad_lists(offs, segs, *_table_args(tables["query_segments"]), out["query_segments"],
                      out["query_segments_mask"], buffers.scratch(len(segs) + kernels.LANE_PAD, np.int64))
    out["impression_id"] = _as_array(table.column("impression_id"))
    return out


__all__ = ["FUSED_NAMES", "NeedsReference", "pad_block_fused"]
