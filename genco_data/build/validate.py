"""Vectorized checks of impression rows: an Arrow batch in, (good rows, rejected rows + ``reason``) out.

Two levels, kept apart:

* **File level** (:func:`check_schema`, :func:`coerce`): the column *names* must be exactly the schema's
  (:data:`genco_data.format.records.ROW_COLUMNS`) and every column's Arrow type must be one we can convert to the
  schema's type without guessing. A file that breaks this is refused whole with a one-line
  :class:`~genco_data.errors.SchemaError` naming the file and the column; no row of it is kept.
  Accepted conversions (everything else is refused):

  ====================  =====================================================================
  schema type           accepted source types
  ====================  =====================================================================
  string                string, large_string, string_view, dictionary<string>
  date32 (``day``)      date32, date64, timestamp (truncated to the date), ISO ``YYYY-MM-DD`` text
  int8/int16/int64      any integer type; decimal text
  float32               any float or integer type (float64 is rounded to float32); decimal text
  list<int64>           list / large_list / fixed_size_list / list_view of integers; JSON-array text
  any                   the ``null`` type (a column with no values)
  ====================  =====================================================================

  Text (string) sources are how CSV cells arrive; a cell that does not parse rejects its *row* with
  ``malformed:<column>`` (the file is fine, the row is not). Text that is not valid UTF-8 refuses the
  *file* (:class:`~genco_data.errors.InvalidInputError`): an encoding belongs to the file, and Arrow's CSV
  reader refuses such a file already, while its JSON and Parquet readers would pass the bytes through.

* **Row level** (:func:`row_reasons`): every invariant of DESIGN.md, evaluated over whole columns with
  ``pyarrow.compute`` and numpy on the list offsets; no Python loop over rows on the good path. Each row
  gets the code of the **first** rule it breaks, in this order (:data:`REASONS` lists every name):

  1. ``malformed:<column>`` — a text cell that does not parse (CSV), in column order;
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
     ``propensity_out_of_range:<c>`` (not finite, or not in (0, 1] after rounding to float32);
  10. ``duplicate_id:impression_id`` — the id was already taken by an earlier row that passed every other
      rule (earlier in this batch, or in an earlier batch when a :class:`IdSet` ``seen`` is passed). The
      first occurrence in input order wins; a row rejected for another reason takes no id.

``impression_id`` uniqueness across a whole build keeps one 64-bit hash per accepted row
(:func:`hash_strings`, 8 bytes/row: 80 MB for 10 M rows). Two different ids collide with probability
about ``N**2 / 2**65`` (3e-6 for N = 10 M); such a row would be rejected (never lost).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import COMPONENTS, LOGGING_POLICIES, UNIFORM, candidates_col, exposed_col, propensity_col
from genco_data.errors import InvalidInputError, SchemaError
from genco_data.format.records import ROW_COLUMNS

# ----------------------------------------------------------------------------------------- the catalogue
_SCHEMA = impressions_schema()
#: kind of every column: string | date | int | float | list
KINDS: dict[str, str] = {}
for _f in _SCHEMA:
    if pa.types.is_string(_f.type):
        KINDS[_f.name] = "string"
    elif pa.types.is_date32(_f.type):
        KINDS[_f.name] = "date"
    elif pa.types.is_integer(_f.type):
        KINDS[_f.name] = "int"
    elif pa.types.is_floating(_f.type):
        KINDS[_f.name] = "float"
    elif pa.types.is_list(_f.type):
        KINDS[_f.name] = "list"
    else:  # pragma: no cover - the schema only uses the types above
        raise TypeError(f"unsupported schema type {_f.type} for {_f.name}")

#: Types columns are widened to for checking (int8/int16 are checked as int64 so overflow is a rule, not a crash).
WIDE_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "date": pa.date32(),
    "int": pa.int64(),
    "float": pa.float32(),
    "list": pa.list_(pa.int64()),
}
WIDE_SCHEMA = pa.schema([pa.field(n, WIDE_TYPES[KINDS[n]]) for n in ROW_COLUMNS])
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
)


def _catalogue() -> tuple[str, ...]:
    names: list[str] = [f"malformed:{c}" for c in ROW_COLUMNS]
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


# --------------------------------------------------------------------------------------------- hashing
_U = np.uint64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, elementwise on uint64 (wrapping arithmetic): a bijective bit mixer."""
    z = x.astype(np.uint64, copy=True)
    z += _U(0x9E3779B97F4A7C15)
    z ^= z >> _U(30)
    z *= _U(0xBF58476D1CE4E5B9)
    z ^= z >> _U(27)
    z *= _U(0x94D049BB133111EB)
    z ^= z >> _U(31)
    return z


_POLY = _U(0x100000001B3)  # an odd multiplier (the FNV-64 prime)
_POWERS = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> np.ndarray:
    global _POWERS
    if len(_POWERS) < n:
        p = np.empty(max(n, 2 * len(_POWERS)), dtype=np.uint64)
        p[0] = 1
        with np.errstate(over="ignore"):  # arithmetic mod 2^64 on purpose
            for i in range(1, len(p)):  # runs a handful of times per process (lengths only grow)
                p[i] = p[i - 1] * _POLY
        _POWERS = p
    return _POWERS


def hash_strings(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash of every string: ``splitmix64(Σ_j b_j·P^j mod 2^64  XOR  len·φ)`` over the UTF-8 bytes
    ``b_j``; nulls hash like the empty string. Shape ``[len(arr)]`` uint64; one numpy pass over the bytes."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    lens = np.diff(offsets)
    if arr.null_count:
        lens[np.asarray(arr.is_null())] = 0
    h = np.zeros(n, dtype=np.uint64)
    total = int(offsets[-1] - offsets[0])
    nonempty = lens > 0
    width = int(offsets[1] - offsets[0])
    if total and total == width * n and not arr.null_count:  # every string has the same length: a matrix
        data = np.frombuffer(bufs[2], dtype=np.uint8, count=total, offset=int(offsets[0])).reshape(n, width)
        w = _powers(width)
        with np.errstate(over="ignore"):
            for j in range(width):
                h += data[:, j].astype(np.uint64) * w[j]
    elif total and nonempty.any():
        data = np.frombuffer(bufs[2], dtype=np.uint8, count=total, offset=int(offsets[0])) if bufs[2] is not None else None
        starts = offsets[:-1] - offsets[0]
        raw_lens = np.diff(offsets)  # positions of null entries (usually empty) are still skipped below
        pos = np.arange(total, dtype=np.int64) - np.repeat(starts, raw_lens)
        w = _powers(int(raw_lens.max()))[pos]
        prod = data.astype(np.uint64) * w
        sel = raw_lens > 0
        sums = np.add.reduceat(prod, starts[sel])
        h[sel] = sums
        h[~nonempty] = 0
    h ^= lens.astype(np.uint64) * _U(0x9E3779B97F4A7C15)
    return splitmix64(h)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (Arrow's hash ``unique``, then a sort of the few left)."""
    values = np.asarray(values)
    if len(values) < 2:
        return values.copy()
    return np.sort(pc.unique(pa.array(values)).to_numpy())


class IdSet:
    """A set of integers (uint64 or int64) as a few sorted, disjoint numpy runs whose sizes roughly double
    (a log-structured merge): ``add`` and ``contains`` cost O(m log n) for m values against n stored;
    memory is one machine word per distinct value."""

    def __init__(self, dtype: type = np.uint64) -> None:
        self._dtype = np.dtype(dtype)
        self._runs: list[np.ndarray] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def values(self) -> np.ndarray:
        """All members, sorted."""
        if not self._runs:
            return np.zeros(0, dtype=self._dtype)
        return np.sort(np.concatenate(self._runs)) if len(self._runs) > 1 else self._runs[0].copy()

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Boolean ``[len(values)]``: which values are in the set (fastest when ``values`` is sorted)."""
        values = np.asarray(values, dtype=self._dtype)
        hit = np.zeros(len(values), dtype=bool)
        for run in self._runs:
            i = np.searchsorted(run, values)
            np.minimum(i, len(run) - 1, out=i)
            hit |= run[i] == values
        return hit

    def add(self, values: np.ndarray, *, sorted_unique_values: bool = False) -> int:
        """Insert ``values``; returns how many were new. ``sorted_unique_values=True`` promises that
        ``values`` is already sorted and distinct (skips that step)."""
        u = np.asarray(values, dtype=self._dtype)
        if not sorted_unique_values:
            u = sorted_unique(u)
        if self._runs and len(u):
            u = u[~self.contains(u)]
        if not len(u):
            return 0
        self._runs.append(u)
        self._n += len(u)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            b = self._runs.pop()
            a = self._runs.pop()
            merged = np.concatenate([a, b])
            merged.sort(kind="stable")  # two sorted runs: a linear merge under timsort
            self._runs.append(merged)
        return len(u)


# ---------------------------------------------------------------------------------------- file level
def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def _accepts(kind: str, t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t) or _is_text(t):
        return True
    if kind == "string":
        return False
    if kind == "date":
        return pa.types.is_date(t) or pa.types.is_timestamp(t)
    if kind == "int":
        return pa.types.is_integer(t)
    if kind == "float":
        return pa.types.is_floating(t) or pa.types.is_integer(t)
    # list
    return _is_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_null(t.value_type))


def check_schema(schema: pa.Schema, where: str) -> None:
    """Refuse a file whose columns are not exactly the schema's, or whose types cannot be converted.

    Raises :class:`SchemaError` ``"<where>: missing column 'x' …"`` / ``"unknown column"`` /
    ``"column 'x' has type T; expected …"``."""
    names = list(schema.names)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SchemaError(f"{where}: duplicate column {dup[0]!r}")
    missing = [c for c in ROW_COLUMNS if c not in names]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SchemaError(f"{where}: missing column {missing[0]!r}{more}; expected the impressions schema (schema/v1/)")
    extra = [n for n in names if n not in KINDS]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise SchemaError(f"{where}: unknown column {extra[0]!r}{more}; expected only the impressions schema's columns")
    for name in ROW_COLUMNS:
        t = schema.field(name).type
        if not _accepts(KINDS[name], t):
            raise SchemaError(
                f"{where}: column {name!r} has type {t}, which cannot be converted safely to {_SCHEMA.field(name).type}"
            )


@dataclass
class Coerced:
    """A batch converted to :data:`WIDE_SCHEMA`; ``malformed[col]`` flags text cells that did not parse."""

    table: pa.Table
    malformed: dict[str, np.ndarray] = field(default_factory=dict)


def coerce(batch: pa.RecordBatch | pa.Table, where: str) -> Coerced:
    """Convert ``batch`` (any accepted source types, any column order) to :data:`WIDE_SCHEMA`.

    File-level problems raise :class:`SchemaError`; unparseable text cells are flagged per row."""
    check_schema(batch.schema, where)
    arrays = []
    malformed: dict[str, np.ndarray] = {}
    for name in ROW_COLUMNS:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        arr, bad = _coerce_column(col, KINDS[name], name, where)
        arrays.append(arr)
        if bad is not None and bad.any():
            malformed[name] = bad
    return Coerced(pa.Table.from_arrays(arrays, schema=WIDE_SCHEMA), malformed)


def coerce_column(arr: pa.Array, name: str, where: str) -> tuple[pa.Array, np.ndarray | None]:
    """One column converted like :func:`coerce` does: ``(wide array, malformed mask or None)``."""
    if name not in KINDS:
        raise SchemaError(f"{where}: unknown column {name!r}")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not _accepts(KINDS[name], arr.type):
        raise SchemaError(f"{where}: column {name!r} has type {arr.type}, which cannot be converted safely to {_SCHEMA.field(name).type}")
    return _coerce_column(arr, KINDS[name], name, where)


def _coerce_column(arr: pa.Array, kind: str, name: str, where: str) -> tuple[pa.Array, np.ndarray | None]:
    target = WIDE_TYPES[kind]
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if _is_text(t):
        _check_utf8(arr, name, where)
    if t == target:
        return arr, None
    if pa.types.is_null(t):
        return pa.nulls(len(arr), target), None
    if _is_text(t):
        if kind == "string":
            return arr.cast(pa.string()), None
        return _parse_text(arr.cast(pa.string()), kind, name)
    try:
        if kind == "date" and pa.types.is_timestamp(t):
            return pc.cast(arr, target, safe=False), None  # keep the date, drop the time of day
        if kind == "float":
            return pc.cast(arr, target, safe=False), None  # float64 -> float32 rounds; range checked later
        return pc.cast(arr, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{where}: column {name!r} ({t}) cannot be converted to {target}: {_one_line(exc)}") from None


_BINARY_VIEW = {"string": pa.binary(), "large_string": pa.large_binary(), "string_view": pa.binary_view()}


def _check_utf8(arr: pa.Array, name: str, where: str) -> None:
    """Refuse text that is not valid UTF-8. Arrow's CSV reader checks it; its JSON and Parquet readers do
    not, and such bytes would otherwise reach the release and break every reader of it. An encoding is a
    property of the whole file, so the file is refused (like a CSV with invalid UTF-8)."""
    try:
        arr.validate(full=True)  # one vectorized pass over the bytes (checks UTF-8 for text types)
        return
    except pa.ArrowInvalid as exc:
        reason = _one_line(exc)
    example = ""
    binary = _BINARY_VIEW.get(str(arr.type))
    for v in arr.view(binary).to_pylist() if binary is not None else ():  # error path only: find an example
        try:
            if v is not None:
                v.decode("utf-8")
        except UnicodeDecodeError:
            example = f" (e.g. {v[:40]!r})"
            break
    raise InvalidInputError(
        f"{where}: column {name!r} holds text that is not valid UTF-8{example}; the file must be UTF-8 encoded"
        + ("" if example else f" ({reason})")
    )


# Text cells: vectorized parse; on a failure (rare, bad files only) fall back to a per-cell parse of this
# column of this batch to find the cells at fault.
_LIST_TEXT = r"^[ \t]*\[[0-9, \t-]*\][ \t]*$"


def _parse_text(arr: pa.Array, kind: str, name: str) -> tuple[pa.Array, np.ndarray | None]:
    target = WIDE_TYPES[kind]
    trimmed = pc.utf8_trim_whitespace(arr)
    if kind == "list":
        ok = pc.fill_null(pc.match_substring_regex(trimmed, _LIST_TEXT), True)
        bad = ~np.asarray(ok)
        try:
            parsed = _json_lists(pc.if_else(ok, trimmed, pa.scalar(None, pa.string())))
            return parsed, bad
        except (pa.ArrowInvalid, ValueError):
            return _parse_cells(arr, kind)
    try:
        if kind == "float":
            return pc.cast(pc.cast(trimmed, pa.float64()), target, safe=False), None
        return pc.cast(trimmed, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_cells(arr, kind)


def _json_lists(cells: pa.Array) -> pa.Array:
    """Parse JSON-array text cells (already matched against ``_LIST_TEXT``; nulls stay null) in one
    ``pyarrow.json`` call: ``{"v":<cell>}`` lines."""
    n = len(cells)
    lines = pc.binary_join_element_wise(pa.scalar('{"v":'), pc.fill_null(cells, "null"), pa.scalar("}\n"), "")
    buf = _joined_bytes(lines)
    table = pa_json.read_json(
        pa.BufferReader(buf),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(1 << 20, len(buf) + 1)),
        parse_options=pa_json.ParseOptions(
            explicit_schema=pa.schema([("v", pa.list_(pa.int64()))]), unexpected_field_behavior="error"
        ),
    )
    if table.num_rows != n:
        raise ValueError("row count changed while parsing")
    col = table.column("v")
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _joined_bytes(arr: pa.Array) -> pa.Buffer:
    """The concatenated UTF-8 bytes of a non-null string array (zero-copy slice of its data buffer)."""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return arr.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _parse_cells(arr: pa.Array, kind: str) -> tuple[pa.Array, np.ndarray]:
    values = arr.to_pylist()
    out: list = []
    bad = np.zeros(len(values), dtype=bool)
    for i, s in enumerate(values):
        if s is None:
            out.append(None)
            continue
        try:
            out.append(_parse_cell(s.strip(), kind))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            bad[i] = True
    return pa.array(out, WIDE_TYPES[kind]), bad


_I64 = (-(2**63), 2**63 - 1)


_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def _parse_cell(s: str, kind: str):
    if kind == "int":
        if not _INT_TEXT.fullmatch(s):
            raise ValueError(s)
        v = int(s)
        if not _I64[0] <= v <= _I64[1]:
            raise OverflowError(s)
        return v
    if kind == "float":
        return float(s)
    if kind == "date":
        return _dt.date.fromisoformat(s)
    v = json.loads(s)
    if not isinstance(v, list) or not all(type(x) is int and _I64[0] <= x <= _I64[1] for x in v):
        raise ValueError(s)
    return v


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


_LOW40 = np.int64((1 << 40) - 1)


def _duplicate_rows(lists: _Lists) -> np.ndarray:
    """bool [n]: rows whose list holds some value twice.

    One sort of 64-bit keys ``row << 40 | (value & (2^40 - 1))`` finds candidate pairs (equal
    neighbours); candidates are confirmed exactly on (row, value) so that no row is flagged by a
    collision of the low 40 bits."""
    n = len(lists.lengths)
    out = np.zeros(n, dtype=bool)
    if not len(lists.values) or lists.lengths.max(initial=0) < 2:
        return out
    rows = np.repeat(np.arange(n, dtype=np.int64), lists.lengths)
    keys = (rows << np.int64(40)) | (lists.values & _LOW40)  # row < 2^23 per batch, so no overflow
    s = np.sort(keys, kind="stable")  # keys are sorted by row already: timsort only sorts within rows
    eq = s[1:] == s[:-1]
    if not eq.any():
        return out
    dup_keys = np.unique(s[1:][eq])
    i = np.minimum(np.searchsorted(dup_keys, keys), len(dup_keys) - 1)
    cand = np.flatnonzero(dup_keys[i] == keys)
    r, v = rows[cand], lists.values[cand]
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
) -> np.ndarray:
    """Reason code of every row: int16 ``[n]``, 0 for a good row, else ``CODE[first rule broken]``.

    ``seen``: impression-id hashes accepted so far in this build; the good rows' ids are added to it."""
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
        day = _np(col["day"].cast(pa.int32()), np.iinfo(np.int32).min)
        in_test = day >= (test_start_day - _dt.date(1970, 1, 1)).days
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

    # impression_id uniqueness among the rows that passed everything else, first occurrence wins
    ok = np.flatnonzero(codes == 0)
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
    "KINDS",
    "WIDE_SCHEMA",
    "REASONS",
    "CODE",
    "splitmix64",
    "hash_strings",
    "IdSet",
    "check_schema",
    "Coerced",
    "coerce",
    "coerce_column",
    "sorted_unique",
    "row_reasons",
    "reason_strings",
    "to_release_schema",
    "validate",
]
