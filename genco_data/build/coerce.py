"""File level: an impression batch's columns checked and converted to the wide checking schema.

The column *names* must be exactly the schema's (:data:`genco_data.format.records.ROW_COLUMNS`) and every
column's Arrow type must be one we can convert to the schema's type without guessing
(:func:`check_schema`, :func:`coerce`). A file that breaks this is refused whole with a one-line
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
``malformed:<column>`` (the file is fine, the row is not: :attr:`Coerced.malformed` carries the mask to
:func:`genco_data.build.validate.row_reasons`). Text that is not valid UTF-8 refuses the *file*
(:class:`~genco_data.errors.InvalidInputError`): an encoding belongs to the file, and Arrow's CSV reader
refuses such a file already, while its JSON and Parquet readers would pass the bytes through.
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
from genco_data.errors import InvalidInputError, SchemaError
from genco_data.format.records import ROW_COLUMNS

# ------------------------------------------------------------------------------------------ the kinds
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
    """A batch converted to :data:`WIDE_SCHEMA`; ``malformed[col]`` flags text cells that did not parse,
    ``missing[col]`` JSONL lines without that key, ``day_out_of_range`` days that a 32-bit date cannot hold
    (nulled here, so that they are rejected by name instead of wrapped into a plausible date)."""

    table: pa.Table
    malformed: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    day_out_of_range: np.ndarray | None = None


def coerce(batch: pa.RecordBatch | pa.Table, where: str, missing: dict[str, np.ndarray] | None = None) -> Coerced:
    """Convert ``batch`` (any accepted source types, any column order) to :data:`WIDE_SCHEMA`.

    File-level problems raise :class:`SchemaError`; unparseable text cells are flagged per row; ``missing``
    (from the JSONL reader) is passed through."""
    check_schema(batch.schema, where)
    arrays = []
    malformed: dict[str, np.ndarray] = {}
    day_out: np.ndarray | None = None
    for name in ROW_COLUMNS:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if KINDS[name] == "date":
            col, day_out = _bounded_days(col)
        arr, bad = _coerce_column(col, KINDS[name], name, where)
        arrays.append(arr)
        if bad is not None and bad.any():
            malformed[name] = bad
    return Coerced(pa.Table.from_arrays(arrays, schema=WIDE_SCHEMA), malformed, dict(missing or {}), day_out)


_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
_I32 = (-(2**31), 2**31 - 1)


def _bounded_days(arr: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Timestamps and date64 as int64 days (floor), checked against int32 *before* any cast: a value a date32
    cannot hold becomes null and is flagged, never wrapped. Other types pass unchanged."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_timestamp(t):
        per_day = _UNITS_PER_DAY[t.unit]
    elif pa.types.is_date64(t):
        per_day = 86_400_000
    else:
        return arr, None
    raw = arr.cast(pa.int64()).to_numpy(zero_copy_only=False) if not arr.null_count else pc.fill_null(arr.cast(pa.int64()), 0).to_numpy()
    days = np.floor_divide(raw, per_day)
    out = (days < _I32[0]) | (days > _I32[1])
    valid = np.asarray(arr.is_valid()) if arr.null_count else np.ones(len(arr), dtype=bool)
    days32 = pa.array(np.where(out, 0, days).astype(np.int32), pa.int32(), mask=~valid | out)
    return days32.cast(pa.date32()), (out & valid) if (out & valid).any() else None


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


__all__ = ["KINDS", "WIDE_SCHEMA", "check_schema", "Coerced", "coerce", "coerce_column"]
