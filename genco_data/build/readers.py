"""Planned input files -> Arrow record batches, as read (the rows' original form, kept for rejects).

* **Inputs.** Files ``*.parquet``/``*.pq`` (read with ``iter_batches``), ``*.jsonl``/``*.ndjson`` (one JSON
  object per line, the schema's column names as keys), ``*.csv`` (header = column names; an empty cell is
  null; **list columns are JSON-array text**, e.g. ``"[12,7,40]"``, ``[]`` for an empty pool; ``day`` as
  ``YYYY-MM-DD``).
* **File-level errors** (unreadable / empty file, a file above ``max_file_bytes`` — checked before
  anything is read —, missing or unknown columns, unconvertible types, text that is not UTF-8, a CSV
  cell spanning lines) stop the build with one line naming the file; **row-level** errors send the row to
  ``rejects/``, as the reader produced it: Parquet rows keep the file's own columns and types, CSV rows
  every cell as the text in the file, JSONL rows the values parsed with the schema's JSON types (ints as
  int64, floats as float64, ``day`` as text). ``source_row`` is the 0-based row of the file (CSV: data
  row, so file line ``source_row + 2``).
"""
from __future__ import annotations

import json
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from genco_data.errors import GencoError, InvalidInputError
from genco_data.format.records import ROW_COLUMNS
from genco_data.build.coerce import KINDS, check_schema
from genco_data.build.plan import BuildConfig, _Input, _one_line

# -------------------------------------------------------------------------------------------- readers
_JSON_TYPES = {"string": pa.string(), "date": pa.string(), "int": pa.int64(), "float": pa.float64(), "list": pa.list_(pa.int64())}
_JSON_SCHEMA = pa.schema([(c, _JSON_TYPES[KINDS[c]]) for c in ROW_COLUMNS])


def _read(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    """Batches of ``inp`` as read (the rows' original form, kept for rejects). File-level problems raise."""
    for batch, _ in read_chunks(inp, cfg):
        yield batch


def read_chunks(inp: _Input, cfg: BuildConfig, row_groups: list[int] | None = None) -> Iterator[tuple[pa.RecordBatch, dict[str, np.ndarray]]]:
    """``(batch, missing)`` pairs: the batches of :func:`_read` and, for JSONL, ``missing[column]`` = bool
    ``[rows]`` flags of the lines that lack that key (other formats: ``{}``). ``row_groups``: Parquet only,
    read just these row groups (a build task)."""
    try:
        if inp.path.stat().st_size == 0:
            raise InvalidInputError(f"{inp.name}: empty file (0 bytes)")
        if inp.fmt == "parquet":
            for batch in _read_parquet(inp, cfg, row_groups):
                yield batch, {}
        elif inp.fmt == "jsonl":
            yield from _read_jsonl(inp, cfg)
        else:
            for batch in _read_csv(inp, cfg):
                yield batch, {}
    except GencoError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(f"{inp.name}: cannot read as {inp.fmt} ({_one_line(exc)})") from None


def _read_parquet(inp: _Input, cfg: BuildConfig, row_groups: list[int] | None = None) -> Iterator[pa.RecordBatch]:
    # buffered column reads: memory stays bounded even when a file has one huge row group
    pf = pq.ParquetFile(inp.path, buffer_size=8 << 20)
    check_schema(pf.schema_arrow, inp.name)
    yield from pf.iter_batches(batch_size=cfg.batch_rows, row_groups=row_groups)


def _first_json_line(inp: _Input, limit: int) -> dict | None:
    """The first non-blank line as a JSON object (for its keys); reads at most ``limit`` bytes per line, so a
    file without line breaks is refused instead of read whole."""
    with open(inp.path, "rb") as fh:
        k = 0
        while True:
            line = fh.readline(limit + 1)
            if not line:
                return None
            k += 1
            if len(line) > limit and not line.endswith(b"\n"):
                raise InvalidInputError(f"{inp.name}: line {k} is longer than {limit:,} bytes (block_bytes); one JSON object per line")
            if line.strip():
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(f"{inp.name}: line {k} is not valid UTF-8 ({exc.reason} at byte {exc.start}); the file must be UTF-8 encoded") from None
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise InvalidInputError(f"{inp.name}: line {k} is not a JSON object")
                return obj


def _read_jsonl(inp: _Input, cfg: BuildConfig) -> Iterator[tuple[pa.RecordBatch, dict[str, np.ndarray]]]:
    first = _first_json_line(inp, cfg.block_bytes)
    if first is None:
        return
    # names only (types are checked by the explicit schema below)
    check_schema(pa.schema([(k, pa.null()) for k in first]), inp.name)
    line0 = 0
    for block in _line_blocks(inp, cfg.block_bytes):
        lines = _nonblank_lines(block)
        if not len(lines):
            continue
        table = json_lines_table(lines)
        missing = missing_keys(lines)
        line0 += len(lines)
        for batch in table.to_batches():
            yield batch, {c: m[:batch.num_rows] for c, m in missing.items()}
            missing = {c: m[batch.num_rows:] for c, m in missing.items()}


def _line_blocks(inp: _Input, block_bytes: int) -> Iterator[bytes]:
    """The file in blocks of about ``block_bytes`` that end at a line break (the last one may not)."""
    with open(inp.path, "rb") as fh:
        rest = b""
        k = 0  # lines before this block, for the message
        while True:
            data = fh.read(block_bytes)
            if not data:
                if rest:
                    yield rest
                return
            data = rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > block_bytes:
                    raise InvalidInputError(f"{inp.name}: line {k + 1} is longer than {block_bytes:,} bytes (block_bytes); one JSON object per line")
                rest = data
                continue
            block, rest = data[: cut + 1], data[cut + 1:]
            k += block.count(b"\n")
            yield block


def _nonblank_lines(block: bytes) -> pa.Array:
    """large_binary ``[lines]``: the block's lines that hold more than whitespace, without their line breaks
    (the lines Arrow's JSON reader turns into rows)."""
    buf = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if not len(ends) or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))  # a last line without its line break
    starts = np.concatenate([[0], ends[:-1] + 1])
    offsets = np.empty(len(starts) + 1, dtype=np.int64)
    offsets[:-1] = starts
    offsets[-1] = len(buf)
    # each line with its line break, zero-copy over the block; the breaks are trimmed below
    arr = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    arr = pc.binary_slice(arr, 0, -1) if block.endswith(b"\n") and len(starts) else arr
    if not block.endswith(b"\n") and len(starts) > 1:  # only the last line lacks a break
        head = pc.binary_slice(arr.slice(0, len(starts) - 1), 0, -1)
        arr = pa.concat_arrays([head, arr.slice(len(starts) - 1)])
    blank = np.asarray(pc.match_substring_regex(arr, r"^[ \t\r]*$"))
    return arr.filter(pa.array(~blank)) if blank.any() else arr


def json_lines_table(lines: pa.Array) -> pa.Table:
    """Parse non-blank JSON lines (a binary array) with the schema's JSON types: one row per line."""
    joined = pc.binary_join_element_wise(lines, pa.scalar(b"\n", pa.large_binary()), pa.scalar(b"", pa.large_binary()))
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64, count=len(joined) + 1, offset=joined.offset * 8)
    buf = joined.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    table = pa_json.read_json(
        pa.BufferReader(buf),
        read_options=pa_json.ReadOptions(block_size=max(1 << 20, buf.size + 1), use_threads=False),
        parse_options=pa_json.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="error"),
    )
    if table.num_rows != len(lines):  # pragma: no cover - blank lines were dropped before
        raise InvalidInputError(f"{table.num_rows} rows parsed from {len(lines)} lines")
    return table


#: A key ends with an unescaped quote followed by a colon; inside a JSON string every quote is escaped.
_KEY_END = r'[^\\]"[ \t\r]*:'


def missing_keys(lines: pa.Array) -> dict[str, np.ndarray]:
    """``{column: bool [lines]}`` for the columns some line lacks (a JSON object may not omit a key, not even
    a nullable one: such a line is rejected with ``missing:<column>``). One regex count per line finds the
    complete lines (every schema key once: Arrow refuses a key given twice and unknown keys); the few
    others are searched key by key."""
    counts = np.asarray(pc.count_substring_regex(lines, _KEY_END))
    short = np.flatnonzero(counts < len(ROW_COLUMNS))
    if not len(short):
        return {}
    few = lines.take(pa.array(short))
    out: dict[str, np.ndarray] = {}
    for c in ROW_COLUMNS:
        has = np.asarray(pc.match_substring_regex(few, '"' + c + r'"[ \t\r]*:'))
        if not has.all():
            m = np.zeros(len(lines), dtype=bool)
            m[short[~has]] = True
            out[c] = m
    return out


def _read_csv(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    reader = pa_csv.open_csv(
        inp.path,
        read_options=pa_csv.ReadOptions(block_size=cfg.block_bytes, use_threads=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.string() for c in ROW_COLUMNS}, strings_can_be_null=True, null_values=[""]
        ),
    )
    check_schema(pa.schema([(n, pa.string()) for n in reader.schema.names]), inp.name)
    row0 = 0
    for batch in reader:
        # The CSV contract has no line breaks inside cells; one there means an unbalanced quote merged
        # lines into one record, which would silently hide a row. Refuse the file instead.
        for name, col in zip(batch.schema.names, batch.columns):
            newline = pc.fill_null(pc.match_substring_regex(col, "[\\r\\n]"), False)
            if pc.any(newline).as_py():
                k = row0 + int(np.flatnonzero(np.asarray(newline))[0])
                raise InvalidInputError(
                    f"{inp.name}: data row {k}, column {name!r}: a cell spans lines (unbalanced quote?); "
                    "CSV cells may not contain line breaks"
                )
        row0 += batch.num_rows
        yield batch


__all__: list[str] = []  # the builder's own parts: _read (and the per-format readers)
