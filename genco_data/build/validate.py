"""Vectorized checks of impression rows: an Arrow batch in, (good rows, rejected rows + ``reason``) out.

Two levels, kept apart:

* **File level** (:mod:`genco_data.build.coerce`): the column names and types; a file that breaks them is
  refused whole, text cells that do not parse are flagged for the row level.

* **Row level** (:func:`row_reasons`): every invariant of DESIGN.md, evaluated over whole columns with
  ``pyarrow.compute`` and numpy on the list offsets; no Python loop over rows on the good path. Each row
  gets the code of the **first** rule it breaks, in this order (:data:`REASONS` lists every name):

  1. ``malformed:<column>`` — a text cell that does not parse (CSV), in column order; ``missing:<column>`` — a
     JSONL line without that key (a JSON object may not omit a key, nullable or not: an omitted key is not
     the same statement as ``null``, and the first line fixes the file's columns);
     ``out_of_range:day`` — a day outside :data:`DAY_MIN` .. :data:`DAY_MAX` (never wrapped into range:
     timestamps are converted to days in 64 bits and checked before the cast to date32);
  2. ``null:<column>`` — null in a non-nullable column; ``null_element:<column>`` — a null inside a list;
  3. ``empty:impression_id`` — the empty string;
  4. ``unknown_policy:logging_policy`` — not one of :data:`~genco_data.format.components.LOGGING_POLICIES`;
  5. ``not_uniform_in_test:logging_policy`` — ``day >= test_start_day`` but not ``uniform``-logged;
  6. ``negative_id:<column>`` — ``user_id``, ``ad_id``, ``query_id``, ``query_segments``;
  7. ``out_of_range:<column>`` — ``user_age`` / ``user_gender`` outside int8;
  8. ``not_binary:click`` — ``click`` not in {0, 1};
  9. per component *c*, components in :data:`~genco_data.format.components.COMPONENTS` order, rules in this order:
     ``negative_id:<c>``, ``duplicate_candidate:<c>``, ``exposed_null:<c>`` (non-empty pool, null exposed),
     ``exposed_on_empty_pool:<c>``, ``exposed_out_of_range:<c>`` (not ``0 <= exposed < len(pool)``, or
     beyond int16), ``propensity_null:<c>``, ``propensity_on_empty_pool:<c>``,
     ``propensity_out_of_range:<c>`` (not finite, or not in (0, 1] after rounding to float32),
     ``propensity_not_uniform:<c>`` (a ``uniform``-logged row whose propensity is not ``1/len(pool)``, to
     a relative :data:`UNIFORM_TOLERANCE`: the replay estimators weigh by ``n`` and trust it);
  10. ``duplicate_id:impression_id`` — the id was already taken by an earlier row that passed every other
      rule (earlier in this batch, or in an earlier batch when a :class:`IdSet` ``seen`` is passed). The
      first occurrence in input order wins; a row rejected for another reason takes no id.

The builder calls :func:`row_reasons` with ``duplicates=False`` and decides rule 10 for the whole build after
a pass, exactly and in bounded memory (:mod:`genco_data.build.unique`).
:func:`validate` is the whole thing for one batch (coerce, rules, split), with no I/O and no engine inside it.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import COMPONENTS, LOGGING_POLICIES, UNIFORM, candidates_col, exposed_col, propensity_col
from genco_data.format.records import ROW_COLUMNS
from genco_data.build.coerce import KINDS, Coerced, coerce
from genco_data.build.unique import IdSet, hash_strings

# ----------------------------------------------------------------------------------------- the catalogue
_SCHEMA = impressions_schema()
_NON_NULLABLE = tuple(f.name for f in _SCHEMA if not f.nullable)
_LIST_COLUMNS = tuple(n for n in ROW_COLUMNS if KINDS[n] == "list")
_BASE_ID_COLUMNS = ("user_id", "ad_id", "query_id", "query_segments")
_INT8_COLUMNS = tuple(f.name for f in _SCHEMA if f.type == pa.int8() and f.name != "click")
_INT16_MAX = 32767
_COMPONENT_RULES = (
    "negative_id",
    "duplicate_candidate",
    "exposed_null",
    "exposed_on_empty_pool",
    "exposed_out_of_range",
    "propensity_null",
    "propensity_on_empty_pool",
    "propensity_out_of_range",
    "propensity_not_uniform",
)


#: Plausible log days; a day outside is rejected (``out_of_range:day``), never wrapped into range.
DAY_MIN = _dt.date(1990, 1, 1)
DAY_MAX = _dt.date(2099, 12, 31)
#: |propensity * n - 1| allowed for a uniform-logged row (float32 rounding and ~6-digit text).
UNIFORM_TOLERANCE = 1e-5


def _catalogue() -> tuple[str, ...]:
    names: list[str] = [f"malformed:{c}" for c in ROW_COLUMNS]
    names += [f"missing:{c}" for c in ROW_COLUMNS]
    names.append("out_of_range:day")
    for c in ROW_COLUMNS:
        if c in _NON_NULLABLE:
            names.append(f"null:{c}")
        if c in _LIST_COLUMNS:
            names.append(f"null_element:{c}")
    names += ["empty:impression_id", "unknown_policy:logging_policy", "not_uniform_in_test:logging_policy"]
    names += [f"negative_id:{c}" for c in _BASE_ID_COLUMNS]
    names += [f"out_of_range:{c}" for c in _INT8_COLUMNS]
    names.append("not_binary:click")
    for comp in COMPONENTS:
        names += [f"{rule}:{comp}" for rule in _COMPONENT_RULES]
    names.append("duplicate_id:impression_id")
    return tuple(names)


#: Every reason name, in the order rules are applied (code ``k`` = ``REASONS[k - 1]``; 0 = good row).
REASONS: tuple[str, ...] = _catalogue()
CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(REASONS)}
_REASON_ARRAY = pa.array(("",) + REASONS, pa.string())


# ------------------------------------------------------------------------------------------ row level
def _np(arr: pa.Array, fill=0) -> np.ndarray:
    if arr.null_count:
        arr = pc.fill_null(arr, fill)
    return arr.to_numpy(zero_copy_only=False)


def _nulls(arr: pa.Array) -> np.ndarray:
    if not arr.null_count:
        return np.zeros(len(arr), dtype=bool)
    return np.asarray(arr.is_null())


@dataclass
class _Lists:
    """Flattened view of a list<int64> column: ``values[offsets[i]:offsets[i+1]]`` is row i's list."""

    lengths: np.ndarray  # int64 [n]
    values: np.ndarray  # int64 [E], the elements of rows 0..n-1 in order
    starts: np.ndarray  # int64 [n], start of each row in ``values``
    null_element_rows: np.ndarray  # bool [n]

    @classmethod
    def of(cls, arr: pa.Array) -> "_Lists":
        n = len(arr)
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
        lengths = np.diff(offsets)
        if arr.null_count:
            lengths[np.asarray(arr.is_null())] = 0  # a null list is rejected by `null:`; look at no elements
        lo, hi = int(offsets[0]), int(offsets[-1])
        child = arr.values.slice(lo, hi - lo)
        null_rows = np.zeros(n, dtype=bool)
        if child.null_count:
            pos = np.flatnonzero(np.asarray(child.is_null()))
            null_rows[np.searchsorted(offsets, pos + lo, side="right") - 1] = True
        vals = _np(child)
        starts = offsets[:-1] - lo
        if arr.null_count:  # drop the elements of null lists so that values is exactly the kept rows' elements
            keep = np.repeat(lengths > 0, np.diff(offsets)) if hi > lo else np.zeros(0, dtype=bool)
            vals = vals[keep]
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(lengths=lengths, values=vals, starts=starts, null_element_rows=null_rows & (lengths > 0))

    def rows_of(self, mask: np.ndarray) -> np.ndarray:
        """bool [n]: rows holding at least one element where ``mask`` (bool [E]) is true."""
        out = np.zeros(len(self.lengths), dtype=bool)
        pos = np.flatnonzero(mask)
        if len(pos):
            out[np.searchsorted(self.starts, pos, side="right") - 1] = True
            # zero-length rows share their start with the next row; searchsorted(right) picks the last
            # row starting at or before pos, which is the non-empty owner.
        return out


def _duplicate_rows(lists: _Lists) -> np.ndarray:
    """bool [n]: rows whose list holds some value twice.

    One sort of keys ``row << b | (value mod 2^b)`` finds candidate rows (equal neighbours): 32-bit keys when
    the row number fits in 16 bits (``b = 32 - row bits``: half the memory traffic of 64-bit keys, the pass
    is memory-bound), else 64-bit keys with ``b = 40``. Keys are sorted by row already, so the stable sort
    (timsort) only sorts within rows. Candidate rows are confirmed exactly on their (row, value) pairs, so
    no row is flagged by a collision of the low bits."""
    n = len(lists.lengths)
    out = np.zeros(n, dtype=bool)
    if not len(lists.values) or lists.lengths.max(initial=0) < 2:
        return out
    row_bits = max(1, (n - 1).bit_length())
    if row_bits <= 16:
        dt, b = np.uint32, 32 - row_bits
        low = lists.values.astype(np.uint32) & np.uint32((1 << b) - 1)
    else:  # row < 2^23 per batch: no overflow
        dt, b = np.int64, 40
        low = lists.values & np.int64((1 << 40) - 1)
    keys = np.repeat(np.arange(n, dtype=dt) << dt(b), lists.lengths)
    keys |= low
    del low
    keys.sort(kind="stable")
    eq = keys[1:] == keys[:-1]
    if not eq.any():
        return out
    rows = np.unique(keys[1:][eq] >> dt(b)).astype(np.int64)  # candidate rows, confirmed exactly below
    lens = lists.lengths[rows]
    r = np.repeat(rows, lens)
    first = np.cumsum(lens) - lens
    idx = np.repeat(lists.starts[rows] - first, lens) + np.arange(int(lens.sum()), dtype=np.int64)
    v = lists.values[idx]
    order = np.lexsort((v, r))
    r, v = r[order], v[order]
    same = (r[1:] == r[:-1]) & (v[1:] == v[:-1])
    out[r[1:][same]] = True
    return out


_MAX_BATCH_ROWS = 1 << 23


def row_reasons(
    coerced: Coerced,
    *,
    test_start_day: _dt.date | None = None,
    seen: IdSet | None = None,
    duplicates: bool = True,
) -> np.ndarray:
    """Reason code of every row: int16 ``[n]``, 0 for a good row, else ``CODE[first rule broken]``.

    ``seen``: impression-id hashes accepted so far in this build; the good rows' ids are added to it.
    ``duplicates=False``: leave rule 10 (``duplicate_id``) to the caller (the builder decides it build-wide)."""
    t = coerced.table
    n = t.num_rows
    if n > _MAX_BATCH_ROWS:
        raise ValueError(f"batches are limited to {_MAX_BATCH_ROWS:,} rows, got {n:,}")
    codes = np.zeros(n, dtype=np.int16)
    if n == 0:
        return codes

    def mark(rule: str, mask: np.ndarray) -> None:
        if mask.any():
            codes[(codes == 0) & mask] = CODE[rule]

    col = {name: (c.combine_chunks() if c.num_chunks != 1 else c.chunk(0)) for name, c in zip(t.column_names, t.columns)}
    for name in ROW_COLUMNS:
        bad = coerced.malformed.get(name)
        if bad is not None:
            mark(f"malformed:{name}", bad)
    for name in ROW_COLUMNS:
        gone = coerced.missing.get(name)
        if gone is not None:
            mark(f"missing:{name}", gone)
    day = col["day"].cast(pa.int32())
    if coerced.day_out_of_range is not None:
        mark("out_of_range:day", coerced.day_out_of_range)
    day_np = _np(day, np.iinfo(np.int32).min)
    lo, hi = ((d - _dt.date(1970, 1, 1)).days for d in (DAY_MIN, DAY_MAX))
    mark("out_of_range:day", ~_nulls(day) & ((day_np < lo) | (day_np > hi)))
    lists = {name: _Lists.of(col[name]) for name in _LIST_COLUMNS}
    for name in ROW_COLUMNS:
        if name in _NON_NULLABLE:
            mark(f"null:{name}", _nulls(col[name]))
        if name in lists:
            mark(f"null_element:{name}", lists[name].null_element_rows)

    ids = col["impression_id"]
    mark("empty:impression_id", _np(pc.equal(pc.binary_length(ids), 0), False))
    policy = col["logging_policy"]
    mark("unknown_policy:logging_policy", ~_np(pc.is_in(policy, value_set=pa.array(LOGGING_POLICIES)), True))
    if test_start_day is not None:
        in_test = day_np >= (test_start_day - _dt.date(1970, 1, 1)).days
        mark("not_uniform_in_test:logging_policy", in_test & ~_np(pc.equal(policy, UNIFORM), True))

    for name in _BASE_ID_COLUMNS:
        if name in lists:
            mark(f"negative_id:{name}", lists[name].rows_of(lists[name].values < 0))
        else:
            mark(f"negative_id:{name}", _np(col[name]) < 0)
    for name in _INT8_COLUMNS:
        v = _np(col[name])
        mark(f"out_of_range:{name}", (v < -128) | (v > 127))
    click = _np(col["click"])
    mark("not_binary:click", (click != 0) & (click != 1))

    is_uniform = _np(pc.equal(policy, UNIFORM), False)
    for comp in COMPONENTS:
        pool = lists[candidates_col(comp)]
        empty = pool.lengths == 0
        mark(f"negative_id:{comp}", pool.rows_of(pool.values < 0))
        mark(f"duplicate_candidate:{comp}", _duplicate_rows(pool))
        e_arr = col[exposed_col(comp)]
        e_null = _nulls(e_arr)
        e = _np(e_arr)
        mark(f"exposed_null:{comp}", ~empty & e_null)
        mark(f"exposed_on_empty_pool:{comp}", empty & ~e_null)
        mark(f"exposed_out_of_range:{comp}", ~e_null & ((e < 0) | (e >= pool.lengths) | (e > _INT16_MAX)))
        p_arr = col[propensity_col(comp)]
        p_null = _nulls(p_arr)
        p = _np(p_arr, 1.0)
        mark(f"propensity_null:{comp}", ~empty & p_null)
        mark(f"propensity_on_empty_pool:{comp}", empty & ~p_null)
        with np.errstate(invalid="ignore"):
            p_ok = np.isfinite(p) & (p > 0) & (p <= 1)
        mark(f"propensity_out_of_range:{comp}", ~p_null & ~p_ok)
        with np.errstate(invalid="ignore"):
            off = np.abs(p.astype(np.float64) * pool.lengths - 1.0) > UNIFORM_TOLERANCE
        mark(f"propensity_not_uniform:{comp}", is_uniform & ~empty & ~p_null & off)

    # impression_id uniqueness among the rows that passed everything else, first occurrence wins
    ok = np.flatnonzero(codes == 0) if duplicates else np.zeros(0, dtype=np.int64)
    if len(ok):
        h = hash_strings(ids if len(ok) == n else ids.take(pa.array(ok)))
        order = np.argsort(h, kind="stable")  # equal hashes keep input order: the first one wins
        hs = h[order]
        dup_sorted = np.zeros(len(ok), dtype=bool)
        dup_sorted[1:] = hs[1:] == hs[:-1]
        if seen is not None:
            dup_sorted |= seen.contains(hs)  # sorted queries: cache-friendly binary searches
            seen.add(hs[~dup_sorted], sorted_unique_values=True)
        if dup_sorted.any():
            codes[ok[order[dup_sorted]]] = CODE["duplicate_id:impression_id"]
    return codes


def reason_strings(codes: np.ndarray) -> pa.Array:
    """string ``[len(codes)]``: the reason name of each code ("" for 0)."""
    return _REASON_ARRAY.take(pa.array(codes.astype(np.int32)))


def to_release_schema(wide: pa.Table) -> pa.Table:
    """Cast rows that passed :func:`row_reasons` to :func:`~genco_data.format.arrow.impressions_schema` (int8/int16
    narrowing is safe because the rules bounded the values)."""
    return wide.cast(_SCHEMA)


def validate(
    batch: pa.RecordBatch | pa.Table,
    *,
    test_start_day: _dt.date | None = None,
    seen: IdSet | None = None,
    where: str = "<table>",
) -> tuple[pa.Table, pa.Table]:
    """Split ``batch`` into ``(good, rejected)``.

    ``good``: the passing rows in :func:`~genco_data.format.arrow.impressions_schema`, input order kept.
    ``rejected``: the failing rows exactly as given (original columns and types) plus a ``reason`` string
    column (see the module docstring for the names and their order). Raises :class:`SchemaError` when
    the batch as a whole cannot be read as impressions (``where`` names it in the message)."""
    coerced = coerce(batch, where)
    codes = row_reasons(coerced, test_start_day=test_start_day, seen=seen)
    bad = codes != 0
    good = to_release_schema(coerced.table.filter(pa.array(~bad)))
    original = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    rejected = original.filter(pa.array(bad)).append_column("reason", reason_strings(codes[bad]))
    return good, rejected


__all__ = [
    "REASONS",
    "CODE",
    "row_reasons",
    "reason_strings",
    "to_release_schema",
    "validate",
]
