"""Ingest: one task — a run of one input file's rows — read, checked and spilled; the first pass of a build.

A build cuts its inputs into :class:`IngestTask` s (a Parquet file's row groups, in runs of about
``TASK_ROWS`` rows; a CSV / JSONL file whole), numbered in input order. Any worker runs any task
(:func:`run_task`); what it writes depends on the task alone, so the release does not depend on how many
workers ran which tasks. Per batch of the task:

1. the per-batch rules (:func:`check_batch`: :func:`~genco_data.build.coerce.coerce` +
   :func:`~genco_data.build.validate.row_reasons` without the build-wide duplicate rule) — the one function
   every engine calls;
2. rows that break a rule are noted as ``(source_row, code)``; their original form is read back at the end
   (:mod:`genco_data.build.rejects`), so no engine has to carry rows of every input type around;
3. good rows, in the release schema, are cut into *pieces* by (split, day) and appended to the task's spill
   file, with their byte sizes (int32, for the shard cuts) in a side file. The spill is Arrow IPC,
   uncompressed by default: ~350 B a row on disk, read back memory-mapped, ~0.6 µs a row both ways against
   ~2 µs with LZ4 (``BuildConfig.spill_compression`` trades disk for CPU);
4. each good row's ``(hash, row in task, impression_id, piece in task, row in piece)`` goes to the id spill,
   hash-partitioned into ``n_partitions`` runs: the input of the exact uniqueness check
   (:mod:`genco_data.build.unique`).

``seq = task << 32 | row in task`` orders rows as the input does (sources as given, files sorted, rows in
file order): the first occurrence of an id, and the order of rows of the same day, follow it. The spill
stores rows *within* the task only, so an engine that learns a task's number after the fact (Ray Data hands
back blocks, whose place in the input is known once the earlier ones are counted) spills the same way.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.build.coerce import coerce
from genco_data.build.plan import BuildConfig, _Input, _Plan
from genco_data.build.readers import read_chunks
from genco_data.build.unique import PIECE_BITS, hash_strings
from genco_data.build.validate import row_reasons, to_release_schema
from genco_data.build import writer as _writer  # row_bytes looked up at call time (tests patch it)

#: Rows per Parquet task (whole row groups are grouped up to this many rows).
TASK_ROWS = 1 << 20
IDS_SCHEMA = pa.schema([("hash", pa.uint64()), ("local", pa.int64()), ("id", pa.string()), ("k", pa.int32()), ("prow", pa.int32())])
#: Id records are written per partition in runs of at least this many rows, or when this many are buffered
#: in all (~44 bytes each): few large IPC batches even with thousands of partitions.
ID_RUN_ROWS = 1 << 16
ID_BUFFER_ROWS = 1 << 19
_SCHEMA = impressions_schema()
_EPOCH = _dt.date(1970, 1, 1)


@dataclass(frozen=True)
class IngestTask:
    index: int  # global, in input order
    input: int  # index into the plan's inputs
    path: str
    name: str
    fmt: str
    row_groups: tuple[int, ...] | None  # Parquet: the row groups of this task; None: the whole file
    row0: int  # source row of the task's first row in its file


@dataclass(frozen=True)
class Piece:
    """Good rows of one (split, day) from one batch of a task, in input order."""

    id: int  # task << PIECE_BITS | k (k-th piece of the task)
    split: int  # 0 train, 1 test
    day: int  # days since 1970-01-01
    file: str  # the task's spill file
    batch: int  # record batch index in it
    rows: int
    sizes_at: int  # offset (rows) of its row sizes in the task's sizes file


@dataclass
class IngestResult:
    task: int
    rows_in: int
    reject_rows: np.ndarray  # int64 source rows (of the task's file)
    reject_codes: np.ndarray  # int16
    pieces: list[Piece] = field(default_factory=list)
    ids_file: str = ""
    partitions: dict[int, list[int]] = field(default_factory=dict)  # partition -> batch indices in ids_file
    sizes_file: str = ""


@dataclass(frozen=True)
class IngestContext:
    cfg: BuildConfig
    test_start_day: _dt.date
    spill: str  # folder
    n_partitions: int


def plan_tasks(plan: _Plan, task_rows: int | None = None) -> list[IngestTask]:
    """The tasks of a build, in input order (Parquet row groups grouped up to ``task_rows`` rows, default
    :data:`TASK_ROWS`)."""
    task_rows = task_rows or TASK_ROWS
    tasks: list[IngestTask] = []
    for k, inp in enumerate(plan.inputs):
        if inp.fmt != "parquet" or inp.path.stat().st_size == 0:
            tasks.append(IngestTask(len(tasks), k, str(inp.path), inp.name, inp.fmt, None, 0))
            continue
        try:
            meta = pq.ParquetFile(inp.path).metadata
        except (pa.ArrowException, OSError):  # the reader reports it, with its message
            tasks.append(IngestTask(len(tasks), k, str(inp.path), inp.name, inp.fmt, None, 0))
            continue
        groups: list[int] = []
        rows = row0 = 0
        for g in range(meta.num_row_groups):
            groups.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= task_rows:
                tasks.append(IngestTask(len(tasks), k, str(inp.path), inp.name, inp.fmt, tuple(groups), row0))
                row0 += rows
                groups, rows = [], 0
        if groups or not tasks or tasks[-1].input != k:
            tasks.append(IngestTask(len(tasks), k, str(inp.path), inp.name, inp.fmt, tuple(groups) if meta.num_row_groups else None, row0))
    return tasks


def estimated_rows(plan: _Plan) -> int:
    """Rows in the inputs: exact for Parquet (metadata), ~1 row per 600 bytes of text."""
    total = 0
    for inp in plan.inputs:
        try:
            total += pq.ParquetFile(inp.path).metadata.num_rows if inp.fmt == "parquet" else inp.path.stat().st_size // 600
        except (pa.ArrowException, OSError):
            pass
    return total


def check_batch(batch: pa.RecordBatch | pa.Table, where: str, test_start_day: _dt.date,
                missing: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, pa.Table]:
    """The per-batch rules, with no engine and no I/O inside: ``(codes int16 [n], good rows in the release
    schema)``; ``codes[i] = 0`` for a good row, else the code of the first rule it breaks (all rules but the
    build-wide ``duplicate_id``)."""
    coerced = coerce(batch, where, missing)
    codes = row_reasons(coerced, test_start_day=test_start_day, duplicates=False)
    wide = coerced.table
    if codes.any():
        wide = wide.filter(pa.array(codes == 0))
    return codes, to_release_schema(wide)


class TaskSpill:
    """Where one task's good rows, their sizes and their ids go (see the module docstring)."""

    def __init__(self, folder: Path, task: int, n_partitions: int, stem: str | None = None, compression: str = "none") -> None:
        self.task = task  # may be a placeholder (0) when the engine numbers the task later
        self.n_partitions = n_partitions
        self.shift = np.uint64(64 - max(1, (n_partitions - 1).bit_length())) if n_partitions > 1 else None
        stem = stem or f"{task:06d}"
        self.rows_file = folder / f"rows-{stem}.arrow"
        self.ids_file = folder / f"ids-{stem}.arrow"
        self.sizes_file = folder / f"sizes-{stem}.i32"
        folder.mkdir(parents=True, exist_ok=True)
        options = pa.ipc.IpcWriteOptions(compression=None if compression == "none" else compression)
        self._rows = pa.ipc.new_file(str(self.rows_file), _SCHEMA, options=options)
        self._ids = pa.ipc.new_file(str(self.ids_file), IDS_SCHEMA, options=options)
        self._sizes = open(self.sizes_file, "wb")
        self.pieces: list[Piece] = []
        self.partitions: dict[int, list[int]] = {}
        self._row_batches = 0
        self._id_batches = 0
        self._sizes_rows = 0
        self._buffer: dict[int, list[pa.Table]] = {}  # partition -> id records not written yet
        self._buffered: dict[int, int] = {}
        self._buffered_total = 0

    def write(self, good: pa.Table, local_rows: np.ndarray, tsd: int) -> None:
        """``good``: a batch's good rows (release schema); ``local_rows``: their rows within the task."""
        n = good.num_rows
        if n == 0:
            return
        good = good.combine_chunks()
        days = good.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        key = days * 2 + (days >= tsd)  # (day, split): days order the splits too
        order = np.argsort(key, kind="stable") if len(key) > 1 and np.any(key[1:] < key[:-1]) else None
        if order is not None:
            good, key, days, local_rows = good.take(pa.array(order)), key[order], days[order], local_rows[order]
        sizes = _writer.row_bytes(good).astype(np.int32)
        cuts = np.concatenate([[0], np.flatnonzero(key[1:] != key[:-1]) + 1, [n]])
        piece_of = np.empty(n, dtype=np.int64)
        prow = np.empty(n, dtype=np.int32)
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            pid = (self.task << PIECE_BITS) | len(self.pieces)
            (batch,) = good.slice(a, b - a).to_batches()
            self._rows.write_batch(batch)
            self.pieces.append(Piece(pid, int(days[a] >= tsd), int(days[a]), str(self.rows_file), self._row_batches, b - a, self._sizes_rows))
            self._row_batches += 1
            self._sizes_rows += b - a
            piece_of[a:b] = len(self.pieces) - 1
            prow[a:b] = np.arange(b - a, dtype=np.int32)
        self._sizes.write(sizes.tobytes())
        ids = good.column("impression_id")
        h = hash_strings(ids)
        part = (h >> self.shift).astype(np.int64) if self.shift is not None else np.zeros(n, dtype=np.int64)
        porder = np.argsort(part, kind="stable")
        part_sorted = part[porder]
        pcuts = np.concatenate([[0], np.flatnonzero(part_sorted[1:] != part_sorted[:-1]) + 1, [n]])
        table = pa.table({"hash": h[porder], "local": local_rows.astype(np.int64)[porder], "id": ids.take(pa.array(porder)),
                          "k": piece_of[porder].astype(np.int32), "prow": prow[porder]}, schema=IDS_SCHEMA)
        for a, b in zip(pcuts[:-1].tolist(), pcuts[1:].tolist()):
            q = int(part_sorted[a])
            self._buffer.setdefault(q, []).append(table.slice(a, b - a))
            self._buffered[q] = self._buffered.get(q, 0) + (b - a)
            self._buffered_total += b - a
            if self._buffered[q] >= ID_RUN_ROWS:
                self._flush(q)
        if self._buffered_total >= ID_BUFFER_ROWS:
            for q in sorted(self._buffer):
                self._flush(q)

    def _flush(self, q: int) -> None:
        """Write partition ``q``'s buffered id records as one batch (few, large batches whatever the partitions)."""
        parts = self._buffer.pop(q, [])
        if not parts:
            return
        (batch,) = pa.concat_tables(parts).combine_chunks().to_batches()
        self._ids.write_batch(batch)
        self.partitions.setdefault(q, []).append(self._id_batches)
        self._id_batches += 1
        self._buffered_total -= self._buffered.pop(q)

    def close(self) -> None:
        for q in sorted(self._buffer):
            self._flush(q)
        self._rows.close()
        self._ids.close()
        self._sizes.close()


def _task_input(task: IngestTask) -> _Input:
    return _Input(Path(task.path), task.name, task.fmt)


def task_batches(task: IngestTask, cfg: BuildConfig) -> Iterator[tuple[pa.RecordBatch, dict[str, np.ndarray]]]:
    """The task's batches as read, with the JSONL reader's missing-key flags."""
    groups = list(task.row_groups) if task.row_groups is not None else None
    if groups is not None and not groups:
        return iter(())
    return read_chunks(_task_input(task), cfg, row_groups=groups)


def run_task(task: IngestTask, ctx: IngestContext) -> IngestResult:
    """Read, check and spill one task (the unit of work of the first pass)."""
    tsd = (ctx.test_start_day - _EPOCH).days
    spill = TaskSpill(Path(ctx.spill), task.index, ctx.n_partitions, compression=ctx.cfg.spill_compression)
    rej_rows: list[np.ndarray] = []
    rej_codes: list[np.ndarray] = []
    local = 0
    try:
        for batch, missing in task_batches(task, ctx.cfg):
            n = batch.num_rows
            if n == 0:
                continue
            codes, good = check_batch(batch, task.name, ctx.test_start_day, missing)
            bad = np.flatnonzero(codes)
            if len(bad):
                rej_rows.append(task.row0 + local + bad)
                rej_codes.append(codes[bad])
                good_rows = local + np.flatnonzero(codes == 0)
            else:
                good_rows = local + np.arange(n, dtype=np.int64)
            spill.write(good, good_rows, tsd)
            local += n
    finally:
        spill.close()
    return IngestResult(
        task=task.index,
        rows_in=local,
        reject_rows=np.concatenate(rej_rows) if rej_rows else np.zeros(0, dtype=np.int64),
        reject_codes=np.concatenate(rej_codes) if rej_codes else np.zeros(0, dtype=np.int16),
        pieces=spill.pieces,
        ids_file=str(spill.ids_file),
        partitions=spill.partitions,
        sizes_file=str(spill.sizes_file),
    )


__all__ = ["IngestTask", "IngestResult", "IngestContext", "Piece", "plan_tasks", "check_batch", "run_task", "TASK_ROWS"]
