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
    try:
        if inp.path.stat().st_size == 0:
            raise InvalidInputError(f"{inp.name}: empty file (0 bytes)")
        if inp.fmt == "parquet":
            yield from _read_parquet(inp, cfg)
        elif inp.fmt == "jsonl":
            yield from _read_jsonl(inp, cfg)
        else:
            yield from _read_csv(inp, cfg)
    except GencoError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(f"{inp.name}: cannot read as {inp.fmt} ({_one_line(exc)})") from None


def _read_parquet(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    # buffered column reads: memory stays bounded even when a file has one huge row group
    pf = pq.ParquetFile(inp.path, buffer_size=8 << 20)
    check_schema(pf.schema_arrow, inp.name)
    yield from pf.iter_batches(batch_size=cfg.batch_rows)


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


def _read_jsonl(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    first = _first_json_line(inp, cfg.block_bytes)
    if first is None:
        return
    # names only (types are checked by the explicit schema below)
    check_schema(pa.schema([(k, pa.null()) for k in first]), inp.name)
    reader = pa_json.open_json(
        inp.path,
        read_options=pa_json.ReadOptions(block_size=cfg.block_bytes, use_threads=False),
        parse_options=pa_json.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="error"),
    )
    yield from reader


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
