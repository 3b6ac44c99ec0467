"""``rejects/``: every row that failed a rule, as its reader produced it, with ``reason``, ``source_file``, ``source_row``.

The passes note rejected rows as ``(source_row, code)`` only (the per-batch rules while ingesting; the
build-wide duplicate check after it). :func:`write_rejects` then reads the files that have rejects once
more, with the same readers, and writes ``rejects/rejects-NNNNN.parquet`` — one file per input file with
rejects (a new one if the reader's schema changes within a file), rows in file order: Parquet rows keep the
file's own columns and types, CSV rows the cells as text, JSONL rows the values parsed with the schema's
JSON types. Engines never carry rows of every input type between workers, and the rejects are identical
whatever the engine. The extra read costs only files that have rejects (a clean release reads nothing).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.build.plan import BuildConfig, _Input
from genco_data.build.readers import _read
from genco_data.build.validate import REASONS, reason_strings


class RejectLog:
    """Rejected rows per input file: ``(source_row, code)``, gathered from the passes in any order."""

    def __init__(self) -> None:
        self.rows: dict[int, list[np.ndarray]] = {}
        self.codes: dict[int, list[np.ndarray]] = {}

    def add(self, input_index: int, rows: np.ndarray, codes: np.ndarray) -> None:
        if len(rows):
            self.rows.setdefault(input_index, []).append(np.asarray(rows, dtype=np.int64))
            self.codes.setdefault(input_index, []).append(np.asarray(codes, dtype=np.int16))

    def of(self, input_index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate(self.rows[input_index])
        codes = np.concatenate(self.codes[input_index])
        order = np.argsort(rows, kind="stable")
        return rows[order], codes[order]

    @property
    def total(self) -> int:
        return sum(len(r) for parts in self.rows.values() for r in parts)

    def reasons(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for parts in self.codes.values():
            for codes in parts:
                for code, k in zip(*np.unique(codes, return_counts=True)):
                    out[REASONS[int(code) - 1]] += int(k)
        return out


def write_rejects(folder: Path, inputs: list[_Input], log: RejectLog, cfg: BuildConfig) -> int:
    """Write the rejects of every input with some; returns the number of files written."""
    files = 0
    for k, inp in enumerate(inputs):
        if k not in log.rows:
            continue
        rows, codes = log.of(k)
        writer: pq.ParquetWriter | None = None
        offset = 0
        try:
            for batch in _read(inp, cfg):
                n = batch.num_rows
                a, b = np.searchsorted(rows, [offset, offset + n])
                if b > a:
                    local = rows[a:b] - offset
                    t = pa.Table.from_batches([batch]).take(pa.array(local))
                    t = t.append_column("reason", reason_strings(codes[a:b]))
                    t = t.append_column("source_file", pa.array([inp.name] * len(local), pa.string()))
                    t = t.append_column("source_row", pa.array(rows[a:b], pa.int64()))
                    if writer is None or not writer.schema.equals(t.schema):
                        if writer is not None:
                            writer.close()
                        folder.mkdir(parents=True, exist_ok=True)
                        writer = pq.ParquetWriter(folder / f"rejects-{files:05d}.parquet", t.schema, compression="zstd")
                        files += 1
                    writer.write_table(t)
                offset += n
                if offset > rows[-1]:
                    break
        finally:
            if writer is not None:
                writer.close()
    return files


__all__ = ["RejectLog", "write_rejects"]
