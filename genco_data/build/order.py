"""Chronological order of each split's rows: stream when the input already is, else spill by day and replay.

* **Chronological order, bounded memory.** Rows of each split are written in stable ``day`` order (ties keep
  input order). When every input is Parquet and a pre-scan of the ``day`` column finds each split's days
  already non-decreasing in input order (the simulator's output), rows stream straight to the shards.
  Otherwise each validated batch is stably sorted by day and its per-day pieces are spilled to an
  LZ4-compressed Arrow IPC file (``.spill/``, inside the temporary folder); at the end the pieces are
  replayed in ``(day, arrival)`` order. Memory holds one batch, one pending row group, at most two row
  groups queued for the writer thread and the sample, plus 8 bytes per accepted row (impression-id
  hashes) and one word per distinct (component id, day) pair, user and ad (statistics).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.errors import GencoError, InvalidInputError
from genco_data.build.coerce import check_schema, coerce_column
from genco_data.build.plan import BuildConfig, _Plan, _one_line

_EPOCH = _dt.date(1970, 1, 1)
_SCHEMA = impressions_schema()


def _days_int(day: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return day.cast(pa.int32()).to_numpy(zero_copy_only=False)


def _already_chronological(plan: _Plan, cfg: BuildConfig) -> bool:
    """True when every input is Parquet and each split's (non-null) days never decrease in input order."""
    if any(inp.fmt != "parquet" for inp in plan.inputs):
        return False
    tsd = (plan.test_start_day - _EPOCH).days
    last = {True: -(2**31), False: -(2**31)}  # is_test -> last day seen
    for inp in plan.inputs:
        try:
            if inp.path.stat().st_size == 0:
                raise InvalidInputError(f"{inp.name}: empty file (0 bytes)")
            pf = pq.ParquetFile(inp.path)
            check_schema(pf.schema_arrow, inp.name)
            for batch in pf.iter_batches(batch_size=1 << 20, columns=["day"]):
                col, _ = coerce_column(batch.column(0), "day", inp.name)  # unparseable text -> null
                valid = col.is_valid()
                days = _days_int(col.filter(valid)) if col.null_count else _days_int(col)
                for is_test in (False, True):
                    d = days[(days >= tsd) == is_test]
                    if len(d):
                        if d[0] < last[is_test] or (len(d) > 1 and np.any(d[1:] < d[:-1])):
                            return False
                        last[is_test] = int(d[-1])
        except GencoError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InvalidInputError(f"{inp.name}: cannot read as parquet ({_one_line(exc)})") from None
    return True


# ------------------------------------------------------------------------------------------ the spill
class _Spill:
    """Per split: validated rows as day-sorted pieces in an LZ4 Arrow IPC file; replayed in (day, arrival)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pa.ipc.RecordBatchFileWriter | None = None
        self.days: list[int] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        days = _days_int(table.column("day"))
        if np.any(days[1:] < days[:-1]):
            order = np.argsort(days, kind="stable")
            table, days = table.take(pa.array(order)), days[order]
        table = table.combine_chunks()
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pa.ipc.new_file(str(self.path), _SCHEMA, options=pa.ipc.IpcWriteOptions(compression="lz4"))
        cuts = np.concatenate([[0], np.flatnonzero(days[1:] != days[:-1]) + 1, [len(days)]])
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            (piece,) = table.slice(a, b - a).to_batches()  # one chunk: the table was combined
            self.writer.write_batch(piece)
            self.days.append(int(days[a]))

    def replay(self) -> Iterator[pa.Table]:
        if self.writer is None:
            return
        self.writer.close()
        order = sorted(range(len(self.days)), key=lambda i: (self.days[i], i))  # one entry per piece
        with pa.OSFile(str(self.path)) as source:  # plain reads: a piece's memory is freed once written
            reader = pa.ipc.open_file(source)
            for i in order:
                yield pa.Table.from_batches([reader.get_batch(i)])
        self.path.unlink()


__all__: list[str] = []  # the builder's own parts: _already_chronological, _Spill, _days_int
