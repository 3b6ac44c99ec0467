"""Arrow impressions -> padded numpy blocks: the torch-free core of the adapters (layout, truncation, checks).

Everything is computed on whole Arrow columns (list offsets + flat values); no Python code runs per row.
Two engines give byte-identical blocks: with hashed vocabularies (the default) the compiled one-pass kernels
of :mod:`genco_data.load.fused` / :mod:`genco_data.load.kernels` (numba); otherwise (exact vocabularies, or
inside ``with pad_engine("numpy")``) the numpy path below, which is also the reference that builds every
error message. :func:`genco_data.load.batch.pad_table` wraps a block into a torch ``Batch``.

Layout of a :class:`Batch` of ``B`` rows (``C = 6`` components in :data:`COMPONENTS` order,
``P = PAD_TO = 15`` slots, ``S = SEGMENTS_PAD_TO = 16`` query segments)::

    candidates      int64   [B, C, P]  vocabulary index per slot; 0 = padding, 1 = out of vocabulary
    mask            bool    [B, C, P]  True where the slot holds a candidate
    original_index  int16   [B, C, P]  slot -> index into the original pool; -1 in padding
    exposed         int64   [B, C]     slot of the shown element; -1 when the component is absent
    n_candidates    int64   [B, C]     full pool size before truncation (the evaluator's n); 0 = absent
    propensity      float32 [B, C]     logging propensity of the shown element; 0.0 when absent
    click           float32 [B]        1.0 click, 0.0 no click
    user_id, ad_id, query_id, user_age, user_gender, category   int64 [B]   vocabulary indices
    query_segments  int64   [B, S]     vocabulary indices, 0 = padding; first S segments kept
    query_segments_mask bool [B, S]
    impression_id   pyarrow.StringArray [B]   kept aside (not a tensor), to write predictions

**Truncation rule.** A pool of ``n <= 15`` candidates fills slots ``0..n-1`` in pool order and the rest
is padding. A pool of ``n > 15`` keeps 15 candidates and never drops the shown element: if the shown
index ``e`` is below 15 the slots hold the original candidates ``0..14``; otherwise they hold
``0..13`` followed by ``e`` (slot 14). Either way the kept candidates stay in original pool order,
``exposed`` is the slot of the shown element, ``original_index`` records the original index of every
slot, and ``n_candidates`` keeps the full ``n``. A policy that picks slot ``s`` therefore chose the
original candidate ``original_index[s]`` (see :meth:`Batch.original_choice`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from genco_data.format.components import (
    CANDIDATE_COLUMNS,
    COMPONENTS,
    EXPOSED_COLUMNS,
    N_COMPONENTS,
    PAD_TO,
    PROPENSITY_COLUMNS,
    candidates_col,
    exposed_col,
    propensity_col,
)
from genco_data.errors import SchemaError
from genco_data.load.columns import (  # noqa: F401 - re-exported: vocab, cache, datasets import them from here
    _INT_FIELDS,
    _as_array,
    _checked_click,
    _column,
    _exposed_error,
    _list_parts,
    _propensity_error,
    _values,
)

# ---------------------------------------------------------------------------------------------
# Layout constants
# ---------------------------------------------------------------------------------------------
#: Query segments kept per row (the first ones; the rest are dropped).
SEGMENTS_PAD_TO = 16
PAD_INDEX = 0  #: vocabulary index of padding and of null values
OOV_INDEX = 1  #: vocabulary index of an id absent from the vocabulary
FIRST_INDEX = 2  #: vocabulary index of the smallest known id
#: Rows padded per vectorized call (large enough to amortize Python, small enough to stay in cache).
PAD_ROWS = 16384
#: Columns a table must have to be padded (``day`` and ``logging_policy`` are not read).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "impression_id",
    *_INT_FIELDS,
    "category",
    "query_segments",
    *CANDIDATE_COLUMNS,
    *EXPOSED_COLUMNS,
    *PROPENSITY_COLUMNS,
    "click",
)
#: The tensor fields of a :class:`~genco_data.load.batch.Batch` (every field but ``impression_id``), in its
#: field order; also the numpy arrays of a block (a test keeps the two equal).
TENSOR_FIELDS: tuple[str, ...] = (
    "candidates",
    "mask",
    "original_index",
    "exposed",
    "n_candidates",
    "propensity",
    "click",
    "user_id",
    "ad_id",
    "query_id",
    "user_age",
    "user_gender",
    "category",
    "query_segments",
    "query_segments_mask",
)


class _Lookups(Protocol):
    """What padding reads of a :class:`~genco_data.load.vocab.Vocabularies` (vocab.py builds on this module)."""

    def lookup(self, name: str, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...

    def lookup_category(self, values: pa.Array) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------
# A "block" is the numpy form of a Batch: {field: ndarray} plus "impression_id": pa.Array.
_Block = dict[str, Any]


def _block_slice(block: _Block, start: int, stop: int) -> _Block:
    out = {k: block[k][start:stop] for k in TENSOR_FIELDS}
    out["impression_id"] = block["impression_id"].slice(start, stop - start)
    return out


def _block_take(block: _Block, perm: np.ndarray) -> _Block:
    out = {k: np.take(block[k], perm, axis=0) for k in TENSOR_FIELDS}
    out["impression_id"] = block["impression_id"].take(pa.array(perm))
    return out


def _block_concat(blocks: list[_Block]) -> _Block:
    if len(blocks) == 1:
        return blocks[0]
    out = {k: np.concatenate([b[k] for b in blocks]) for k in TENSOR_FIELDS}
    out["impression_id"] = pa.concat_arrays([b["impression_id"] for b in blocks])
    return out


def _block_len(block: _Block) -> int:
    return len(block["impression_id"])


# ---------------------------------------------------------------------------------------------
# Arrow helpers
# ---------------------------------------------------------------------------------------------
def _check_schema(schema: pa.Schema) -> None:
    if schema in _GOOD_SCHEMAS:
        return
    _check_schema_now(schema)
    if len(_GOOD_SCHEMAS) < 64:
        _GOOD_SCHEMAS.append(schema)


_GOOD_SCHEMAS: list[pa.Schema] = []


def _check_schema_now(schema: pa.Schema) -> None:
    missing = [c for c in REQUIRED_COLUMNS if schema.get_field_index(c) < 0]
    if missing:
        raise SchemaError(f"missing column(s) {missing} (expected the impressions schema: genco_data.format.arrow.impressions_schema())")
    for name in ("query_segments", *CANDIDATE_COLUMNS):
        t = schema.field(name).type
        if not ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)):
            raise SchemaError(f"column {name!r}: expected list<int64>, got {t}")
    for name in (*_INT_FIELDS, *EXPOSED_COLUMNS, "click"):
        t = schema.field(name).type
        if not (pa.types.is_integer(t) or pa.types.is_boolean(t)):
            raise SchemaError(f"column {name!r}: expected an integer type, got {t}")
    for name in PROPENSITY_COLUMNS:
        t = schema.field(name).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            raise SchemaError(f"column {name!r}: expected float32, got {t}")
    for name in ("impression_id", "category"):
        t = schema.field(name).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise SchemaError(f"column {name!r}: expected string, got {t}")


def _check_columns(schema: pa.Schema, columns: Sequence[str]) -> None:
    missing = [c for c in columns if schema.get_field_index(c) < 0]
    if missing:
        raise SchemaError(f"missing column(s) {missing} (expected the impressions schema)")


_ARANGE = np.arange(1 << 20, dtype=np.int64)
_ARANGE32 = np.arange(1 << 20, dtype=np.int32)
# Row k of these tables is the mask / original_index pattern of a pool with k kept candidates; a
# row gather (np.take on axis 0) is ~5x faster than building [B, C, P] by broadcasting.
_MASK_BY_KEPT = np.arange(PAD_TO + 1)[:, None] > np.arange(PAD_TO)
_ORIG_BY_KEPT = np.where(_MASK_BY_KEPT, np.arange(PAD_TO), -1).astype(np.int16)


def _zeros(n: int, dtype: Any) -> np.ndarray:
    # np.zeros of a large array maps fresh pages (a page fault per 4 KiB); empty + fill reuses the heap
    out = np.empty(n, dtype)
    out.fill(0)
    return out


def _arange32(n: int) -> np.ndarray:
    global _ARANGE32
    if n > len(_ARANGE32):
        _ARANGE32 = np.arange(max(n, 2 * len(_ARANGE32)), dtype=np.int32)
    return _ARANGE32[:n]


def _arange(n: int) -> np.ndarray:
    global _ARANGE
    if n > len(_ARANGE):
        _ARANGE = np.arange(max(n, 2 * len(_ARANGE)), dtype=np.int64)
    return _ARANGE[:n]


def _truncate(offs: np.ndarray, n: np.ndarray, values: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of the lists cut to their first ``keep`` items.

    Only the values past ``keep`` in the few long lists are touched: their positions (one ``repeat`` over the
    excess) are cleared in a byte mask, which then compresses ``values`` once."""
    new_offs = np.zeros(len(offs), np.int64)
    np.cumsum(np.minimum(n, keep), out=new_offs[1:])
    long = np.flatnonzero(n > keep)
    excess = n[long] - keep
    cut = np.repeat(offs[long] + keep - np.cumsum(excess) + excess, excess) + _arange(int(excess.sum()))
    kept = np.ones(len(values), bool)
    kept[cut] = False
    return new_offs, values[kept]


# ---------------------------------------------------------------------------------------------
# Padding (the core): public validates (pad_table, in batch.py), private computes
# ---------------------------------------------------------------------------------------------
#: Which padding runs: "auto" = the compiled kernels where the vocabularies are hashed (the default), else numpy.
_ENGINE = ["auto"]
PAD_ENGINES = ("auto", "numpy")


@contextmanager
def pad_engine(name: str) -> Iterator[None]:
    """Run the padding inside the ``with`` block with engine ``name`` (:data:`PAD_ENGINES`): ``"numpy"`` forces
    the numpy reference path (benchmarks and tests compare the two; the blocks are byte-identical)."""
    if name not in PAD_ENGINES:
        raise ValueError(f"unknown pad engine {name!r}; expected one of {PAD_ENGINES}")
    before, _ENGINE[0] = _ENGINE[0], name
    try:
        yield
    finally:
        _ENGINE[0] = before


def _pad_block(
    table: pa.Table | pa.RecordBatch,
    vocabs: _Lookups,
    max_segments: int = SEGMENTS_PAD_TO,
    where: Callable[[int], str] | None = None,
    out: _Block | None = None,
) -> _Block:
    """Private compute of :func:`pad_table` on a schema-checked table → numpy block: the compiled one-pass
    kernels (:mod:`genco_data.load.fused`) when every pool table and the segments are hashed, else numpy.

    ``out``: ``{field: array}`` of every :data:`TENSOR_FIELDS` array of the block's shape and dtype (e.g. rows of
    a shuffle buffer) — the block is written there (the kernels write in place, the rest is copied) and its
    fields are those arrays."""
    block = None
    tables = getattr(vocabs, "kernel_tables", None)
    if _ENGINE[0] == "auto" and tables is not None and table.num_rows:
        from genco_data.load.fused import FUSED_NAMES, NeedsReference, pad_block_fused

        t = tables()
        if all(t.get(n, ("",))[0] == "hash" for n in FUSED_NAMES):
            try:
                block = pad_block_fused(table, vocabs, t, max_segments, where, out)
            except NeedsReference:  # a bad row: the numpy path raises its one line
                pass
    if block is None:
        block = _pad_block_numpy(table, vocabs, max_segments, where)
    if out is None:
        return block
    for k in TENSOR_FIELDS:
        if block[k] is not out[k]:
            out[k][...] = block[k]
    return {**{k: out[k] for k in TENSOR_FIELDS}, "impression_id": block["impression_id"]}


def _pad_block_numpy(
    table: pa.Table | pa.RecordBatch,
    vocabs: _Lookups,
    max_segments: int = SEGMENTS_PAD_TO,
    where: Callable[[int], str] | None = None,
) -> _Block:
    """The numpy path of :func:`_pad_block` (the reference; exact vocabularies take it).

    For every component: ``n`` = pool sizes from the offsets; the first 15 ids of every pool are
    looked up once on the flat values and scattered into ``[B, C, P]`` at ``b*C*P + c*P + slot``;
    rows whose shown index is >= 15 then get slot 14 overwritten with the shown element.
    """
    B = table.num_rows
    C, P = N_COMPONENTS, PAD_TO
    n = np.empty((B, C), np.int64)
    e = np.empty((B, C), np.int64)
    prop = np.empty((B, C), np.float32)
    kept_parts: list[np.ndarray] = []  # per component: the ids kept (at most P per pool), pool order
    adj_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    fixes: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []
    idx_t = np.int32 if B * C * P < 2**31 else np.int64  # slot positions: half the bytes of int64
    slot_base = _arange(B).astype(idx_t) * (C * P)
    gbase = 0
    for ci, comp in enumerate(COMPONENTS):
        name = candidates_col(comp)
        offs, values = _list_parts(_as_array(table.column(name)), name)
        nc = offs[1:] - offs[:-1]
        n[:, ci] = nc
        ex = _as_array(table.column(exposed_col(comp)))
        ec, ev = _values(ex, -1, np.int64)
        present = nc > 0
        if ev is not None:
            bad = np.where(present, (ec < 0) | (ec >= nc), ev)
        else:
            bad = ~present | (ec < 0) | (ec >= nc)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _exposed_error(table, i, comp, int(nc[i]), where)
        e[:, ci] = ec
        pr = _as_array(table.column(propensity_col(comp)))
        pv, _ = _values(pr, np.nan, np.float32)
        bad = present & ~((pv > 0) & (pv <= 1))  # also catches nulls (NaN here)
        if bad.any():
            raise _propensity_error(table, int(np.flatnonzero(bad)[0]), comp, where)
        prop[:, ci] = np.where(present, pv, np.float32(0.0))
        vals_np = values.to_numpy()
        if len(nc) and int(nc.max()) > P:
            keep_offs, keep_vals = _truncate(offs, nc, vals_np, P)
            far = np.flatnonzero(ec >= P)
            if len(far):
                fixes.append((far, ci, vocabs.lookup(comp, vals_np[offs[far] + ec[far]]), ec[far]))
        else:
            keep_offs, keep_vals = offs, vals_np
        kept_parts.append(keep_vals)
        adj_parts.append(slot_base + (ci * P - gbase) - keep_offs[:-1].astype(idx_t))
        count_parts.append(keep_offs[1:] - keep_offs[:-1])
        gbase += len(keep_vals)
    # one lookup buffer and one scatter for all six components: kept value i of row b goes to b*C*P + c*P + (i - start)
    flat = np.empty(gbase, np.int64)
    pos = 0
    for comp, ids in zip(COMPONENTS, kept_parts):
        vocabs.lookup(comp, ids, out=flat[pos : pos + len(ids)])
        pos += len(ids)
    dest = np.repeat(np.concatenate(adj_parts), np.concatenate(count_parts))
    dest += _arange(gbase).astype(idx_t, copy=False) if idx_t is np.int64 else _arange32(gbase)
    cand = _zeros(B * C * P, np.int64)
    cand[dest] = flat
    cand = cand.reshape(B, C, P)
    k = np.minimum(n, P)
    mask = np.take(_MASK_BY_KEPT, k, axis=0)
    orig = np.take(_ORIG_BY_KEPT, k, axis=0)
    exposed = e
    if fixes:
        exposed = e.copy()
        for rows, ci, ids, shown in fixes:
            cand[rows, ci, P - 1] = ids
            orig[rows, ci, P - 1] = shown
            exposed[rows, ci] = P - 1
    block: _Block = {
        "candidates": cand,
        "mask": mask,
        "original_index": orig,
        "exposed": exposed,
        "n_candidates": n,
        "propensity": prop,
    }
    block.update(_pad_context(table, vocabs, max_segments, where))
    return block


def _pad_context(
    table: pa.Table | pa.RecordBatch, vocabs: _Lookups, max_segments: int, where: Callable[[int], str] | None
) -> _Block:
    B = table.num_rows
    out: _Block = {"click": _checked_click(table, where)}
    for name in _INT_FIELDS:
        ids, valid = _values(_as_array(table.column(name)), 0, np.int64)
        idx = vocabs.lookup(name, ids)
        if valid is not None:
            idx[~valid] = PAD_INDEX
        out[name] = idx
    out["category"] = vocabs.lookup_category(_as_array(table.column("category")))
    offs, values = _list_parts(_as_array(table.column("query_segments")), "query_segments")
    ns = offs[1:] - offs[:-1]
    S = max_segments
    vals_np = values.to_numpy()
    if len(ns) and int(ns.max()) > S:
        offs, vals_np = _truncate(offs, ns, vals_np, S)
        ns = offs[1:] - offs[:-1]
    seg = _zeros(B * S, np.int64)
    dest = np.repeat(_arange(B) * S - offs[:-1], ns)
    dest += _arange(len(vals_np))
    seg[dest] = vocabs.lookup("query_segments", vals_np)
    out["query_segments"] = seg.reshape(B, S)
    out["query_segments_mask"] = ns[:, None] > np.arange(S)
    out["impression_id"] = _as_array(table.column("impression_id"))
    return out


__all__ = ["PAD_ENGINES", "pad_engine", "SEGMENTS_PAD_TO", "PAD_INDEX", "OOV_INDEX", "FIRST_INDEX", "PAD_ROWS", "REQUIRED_COLUMNS", "TENSOR_FIELDS"]
