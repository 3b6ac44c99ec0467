"""The release's files: the impression shards, the rejects, the sample.

* **Shards.** Row groups hold ``row_group_rows`` rows and at most ``row_group_max_bytes`` (uncompressed,
  estimated per row); shards hold ``rows_per_shard`` rows and at most ``shard_max_bytes``. Cuts depend only
  on the row sequence, so the bytes of ``data/`` do not depend on input batch sizes or file splits.
* **Sample.** Bottom-k by ``splitmix64(hash(impression_id) XOR splitmix64(seed))``: deterministic, streaming,
  independent of batch boundaries; ``sample_rows`` split between train and test in proportion to their
  sizes (at least one row each when both are non-empty), kept in split order.
* **Rejects.** ``rejects/rejects-NNNNN.parquet``, one file per input file with rejects: the bad rows as the
  reader produced them, plus ``reason``, ``source_file`` and ``source_row`` (:class:`_Rejects`).
"""
from __future__ import annotations

import os
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.release import DATA_DIR, shard_name
from genco_data.build.plan import BuildConfig
from genco_data.build.unique import hash_strings, splitmix64
from genco_data.build.validate import REASONS, reason_strings

_SCHEMA = impressions_schema()
_DAY = _SCHEMA.get_field_index("day")


# ----------------------------------------------------------------------------------------- the shards
_LIST_COLS = tuple(f.name for f in _SCHEMA if pa.types.is_list(f.type))
_STR_COLS = tuple(f.name for f in _SCHEMA if pa.types.is_string(f.type))
# fixed-width bytes of a row in Arrow (values + offsets + validity, rounded up)
_FIXED_ROW_BYTES = sum((f.type.bit_width + 7) // 8 if pa.types.is_primitive(f.type) else 4 for f in _SCHEMA) + 4


def row_bytes(table: pa.Table) -> np.ndarray:
    """int64 ``[rows]``: each row's uncompressed Arrow size (fixed widths + 8 B per list element + string bytes)."""
    out = np.full(table.num_rows, _FIXED_ROW_BYTES, dtype=np.int64)
    for c in _LIST_COLS:
        out += 8 * pc.fill_null(pc.list_value_length(table.column(c)), 0).to_numpy().astype(np.int64)
    for c in _STR_COLS:
        out += pc.fill_null(pc.binary_length(table.column(c)), 0).to_numpy().astype(np.int64)
    return out


class _Background:
    """One writer thread (Parquet encoding releases the GIL, so it overlaps validation on another core);
    at most ``max_in_flight`` jobs queued, which bounds the memory held by pending row groups. Jobs run in
    submission order; a job's exception is raised in the caller at the next submit or at ``drain``."""

    def __init__(self, max_in_flight: int = 2) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genco-build-write")
        self.futures: deque[Future] = deque()
        self.max_in_flight = max_in_flight

    def submit(self, fn, *args) -> None:
        self.futures.append(self.pool.submit(fn, *args))
        while len(self.futures) > self.max_in_flight:
            self.futures.popleft().result()

    def drain(self) -> None:
        while self.futures:
            self.futures.popleft().result()

    def shutdown(self) -> None:
        """Wait for the thread to stop (errors of abandoned jobs are dropped: the build is failing)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.futures.clear()


class _ShardWriter:
    """Writes one split's rows (already in final order) into row groups and shards cut on the row sequence
    alone; shards are named ``<split>-NNNNN.part`` and renamed to ``-of-MMMMM`` by :meth:`close`. The
    Parquet encoding runs on ``background``."""

    def __init__(self, folder: Path, split: str, cfg: BuildConfig, observers: list, background: _Background) -> None:
        self.folder, self.split, self.cfg = folder, split, cfg
        self.observers = observers
        self.background = background
        self.rg_rows = min(cfg.row_group_rows, cfg.rows_per_shard)
        self.pending: list[pa.Table] = []
        self.pending_bytes: list[np.ndarray] = []
        self.pending_rows = 0
        self.writer: pq.ParquetWriter | None = None
        self.parts: list[Path] = []
        self.shard_rows = 0
        self.shard_bytes = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        for obs in self.observers:
            obs.update(table)
        self.rows += table.num_rows
        self.pending.append(table)
        self.pending_bytes.append(row_bytes(table))
        self.pending_rows += table.num_rows
        self._drain(final=False)

    def _drain(self, final: bool) -> None:
        """Write every row group whose cut is decided. A group ends at the first of: ``row_group_rows``
        rows, the shard's remaining rows, ``row_group_max_bytes`` or the shard's remaining bytes (a single
        row larger than those is written alone). Cuts depend on the row sequence only."""
        while self.pending_rows:
            sizes = np.concatenate(self.pending_bytes) if len(self.pending_bytes) > 1 else self.pending_bytes[0]
            cum = np.cumsum(sizes)
            rows_left = self.cfg.rows_per_shard - self.shard_rows
            bytes_left = self.cfg.shard_max_bytes - self.shard_bytes
            k = min(self.rg_rows, rows_left, self.pending_rows)
            k = min(k, int(np.searchsorted(cum, min(self.cfg.row_group_max_bytes, bytes_left), side="right")))
            if k == 0:
                if self.shard_rows:
                    self._close_shard()  # the next row does not fit in this shard's bytes
                    continue
                k = 1  # one row above the byte caps: alone in its row group and shard
            decided = k < self.pending_rows or k == self.rg_rows or k == rows_left
            if not (decided or final):
                return  # the row group may still grow
            self._write_group(k, int(cum[k - 1]))
            if self.shard_rows >= self.cfg.rows_per_shard:
                self._close_shard()

    def _write_group(self, k: int, nbytes: int) -> None:
        table = pa.concat_tables(self.pending)
        group, rest = table.slice(0, k), table.slice(k)
        sizes = np.concatenate(self.pending_bytes)
        self.pending = [rest] if rest.num_rows else []
        self.pending_bytes = [sizes[k:]] if rest.num_rows else []
        self.pending_rows = rest.num_rows
        writer = self.writer if self.writer is not None else self._open_shard()
        self.background.submit(writer.write_table, group.combine_chunks(), k)
        self.shard_rows += k
        self.shard_bytes += nbytes

    def _open_shard(self) -> pq.ParquetWriter:
        path = self.folder / f"{self.split}-{len(self.parts):05d}.part"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = open_parquet_writer(path)
        self.parts.append(path)
        return self.writer

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.background.submit(self.writer.close)
        self.writer = None
        self.shard_rows = 0
        self.shard_bytes = 0

    def close(self) -> list[tuple[Path, int]]:
        """Flush, close, rename; returns ``[(path, rows)]``. A split without rows gets one empty shard."""
        self._drain(final=True)
        if not self.parts:
            self._open_shard()
        self._close_shard()
        self.background.drain()
        out = []
        for i, part in enumerate(self.parts):
            final = part.with_name(shard_name(self.split, i, len(self.parts)))
            os.replace(part, final)
            out.append((final, pq.ParquetFile(final).metadata.num_rows))
        return out


#: Dictionary encoding for every column but the unique ``impression_id`` (element ids repeat across rows:
#: ~20 % smaller shards on simulator data for ~2 % more encoding time); min/max statistics (and so the
#: page index's column index) for the scalar columns, not the id lists.
_DICTIONARY_COLUMNS = [f.name for f in _SCHEMA if f.name != "impression_id"]
_STATISTICS_COLUMNS = [f.name for f in _SCHEMA if not pa.types.is_list(f.type)]


def open_parquet_writer(path: Path) -> pq.ParquetWriter:
    """A ParquetWriter with the release's settings: zstd, content-defined chunking, page index, sorted by day."""
    return pq.ParquetWriter(
        path,
        _SCHEMA,
        compression="zstd",
        use_content_defined_chunking=True,
        write_page_index=True,
        use_dictionary=_DICTIONARY_COLUMNS,
        write_statistics=_STATISTICS_COLUMNS,
        sorting_columns=[pq.SortingColumn(_DAY)],
    )


# ---------------------------------------------------------------------------------------- the rejects
class _Rejects:
    """``rejects/rejects-NNNNN.parquet``: one file per input file with rejects; its columns as read, plus
    ``reason``, ``source_file`` and ``source_row`` (0-based row of the input file; CSV: data rows)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writer: pq.ParquetWriter | None = None
        self.source: str | None = None
        self.files = 0
        self.rows = 0
        self.reasons: Counter[str] = Counter()

    def write(self, source: str, batch: pa.RecordBatch, codes: np.ndarray, row0: int) -> None:
        bad = np.flatnonzero(codes)
        if not len(bad):
            return
        t = pa.Table.from_batches([batch]).take(pa.array(bad))
        t = t.append_column("reason", reason_strings(codes[bad]))
        t = t.append_column("source_file", pa.array([source] * len(bad), pa.string()))
        t = t.append_column("source_row", pa.array(row0 + bad, pa.int64()))
        if self.writer is None or source != self.source or not self.writer.schema.equals(t.schema):
            self.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.folder / f"rejects-{self.files:05d}.parquet", t.schema, compression="zstd")
            self.files += 1
            self.source = source
        self.writer.write_table(t)
        self.rows += len(bad)
        for code, k in zip(*np.unique(codes[bad], return_counts=True)):
            self.reasons[REASONS[int(code) - 1]] += int(k)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ----------------------------------------------------------------------------------------- the sample
class _BottomK:
    """The ``k`` rows with the smallest keys ``splitmix64(hash(impression_id) ^ s)``, with their positions."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self.salt = splitmix64(np.array([seed], dtype=np.int64).astype(np.uint64))[0]
        self.table: pa.Table | None = None
        self.keys = np.zeros(0, dtype=np.uint64)
        self.pos = np.zeros(0, dtype=np.int64)
        self.seen = 0

    def update(self, table: pa.Table) -> None:
        n = table.num_rows
        start, self.seen = self.seen, self.seen + n
        if self.k == 0 or n == 0:
            return
        keys = splitmix64(hash_strings(table.column("impression_id")) ^ self.salt)
        pos = np.arange(start, start + n, dtype=np.int64)
        if len(self.keys) >= self.k:
            sel = np.flatnonzero(keys < self.keys.max())
            if not len(sel):
                return
            table, keys, pos = table.take(pa.array(sel)), keys[sel], pos[sel]
        both = pa.concat_tables([self.table, table]) if self.table is not None else table
        keys = np.concatenate([self.keys, keys])
        pos = np.concatenate([self.pos, pos])
        if len(keys) > self.k:
            keep = np.lexsort((pos, keys))[: self.k]
            both, keys, pos = both.take(pa.array(keep)), keys[keep], pos[keep]
        self.table, self.keys, self.pos = both.combine_chunks(), keys, pos

    def result(self, k: int) -> pa.Table:
        """The ``k`` smallest (``k <= self.k``), in the order they arrived."""
        if self.table is None or k == 0:
            return _SCHEMA.empty_table()
        keep = np.lexsort((self.pos, self.keys))[:k]
        keep = keep[np.argsort(self.pos[keep])]
        return self.table.take(pa.array(keep))


def _write_sample(tmp: Path, samplers: dict[str, _BottomK], split_rows: dict[str, int], k: int) -> dict[str, int]:
    total = sum(split_rows.values())
    want = {}
    if total:
        want["train"] = min(split_rows["train"], round(k * split_rows["train"] / total))
        want["test"] = min(split_rows["test"], k - want["train"])
        for a, b in (("train", "test"), ("test", "train")):
            if want[a] == 0 and split_rows[a] and k >= 2 and want[b] > 1:
                want[a], want[b] = 1, want[b] - 1
    else:
        want = {s: 0 for s in SPLITS}
    folder = tmp / DATA_DIR / CONFIGS[1]
    folder.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        table = samplers[s].result(want[s])
        w = open_parquet_writer(folder / shard_name(s, 0, 1))
        if table.num_rows:
            w.write_table(table.combine_chunks(), row_group_size=max(table.num_rows, 1))
        w.close()
    return want


__all__ = ["row_bytes", "open_parquet_writer"]
