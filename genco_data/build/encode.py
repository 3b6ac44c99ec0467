"""Encode one shard of the release from its spilled pieces: the unit of work of the last pass.

A :class:`~genco_data.build.layout.ShardSpec` says which rows (segments of spilled pieces, duplicates
dropped) and which row-group sizes; :func:`encode_shard` writes exactly that Parquet file with the release's
writer settings (:func:`~genco_data.build.writer.open_parquet_writer`: zstd, content-defined chunking, page
index), each row group combined into one chunk first so that the bytes depend on the rows alone. On the way
it measures what needs every row: the Table-1 statistics of a train shard
(:class:`~genco_data.build.stats.StatsAccumulator`, merged by the builder) and the shard's sample candidates
(its ``sample_rows`` smallest sample keys: the split's sample is the smallest keys over all shards).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from genco_data.build.layout import ShardSpec
from genco_data.release import sha256_file
from genco_data.build.stats import StatsAccumulator
from genco_data.build.writer import open_parquet_writer, sample_keys


@dataclass
class SampleCandidates:
    """Rows with the smallest sample keys of a shard: ``keys`` uint64, ``positions`` (in the split) int64;
    ``table`` while encoding, then ``path``: the file they were written to (only keys travel back)."""

    keys: np.ndarray
    positions: np.ndarray
    table: pa.Table | None
    path: str | None = None


@dataclass
class EncodeResult:
    split: str
    name: str
    rows: int
    stats: StatsAccumulator | None
    sample: SampleCandidates
    sha256: str = ""  # of the written file: checksums are computed where the file is, in parallel


def _pieces(spec: ShardSpec):
    """The shard's rows, segment by segment. Each piece is memory-mapped only while it is read: mapped pages
    count as resident memory, so a long shard must not keep its whole spill mapped."""
    for seg in spec.segments:
        p = seg.piece
        table = pa.Table.from_batches([pa.ipc.open_file(pa.memory_map(p.file)).get_batch(p.batch)])
        if len(seg.drop):
            keep = np.ones(table.num_rows, dtype=bool)
            keep[seg.drop] = False
            table = table.filter(pa.array(keep))
        yield table.slice(seg.start, seg.stop - seg.start)


class _Smallest:
    """The rows with the ``k`` smallest ``(sample key, position)`` of a shard, gathered group by group: a group
    gives only its rows whose key is below the ``k``-th smallest key held so far (a later row with an equal key
    has a larger position, so it loses), taken once; the held rows are cut back to ``k`` only when they pass
    ``4 k`` (a ``take`` of ``k`` rows), so most groups copy a few rows and nothing else."""

    def __init__(self, k: int, seed: int) -> None:
        self.k, self.seed = k, seed
        self.tables: list[pa.Table] = []
        self.keys: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []
        self.held = 0
        self.threshold: np.uint64 | None = None  # the k-th smallest key held, once k rows are held

    def offer(self, group: pa.Table, position: int) -> None:
        n, k = group.num_rows, self.k
        if k == 0 or n == 0:
            return
        keys = sample_keys(group.column("impression_id"), self.seed)
        if self.threshold is not None:
            sel = np.flatnonzero(keys < self.threshold)
        elif n > k:
            sel = np.flatnonzero(keys <= np.partition(keys, k - 1)[k - 1])  # ties at the k-th key: all kept
        else:
            sel = None
        if sel is None:
            pos = np.arange(position, position + n, dtype=np.int64)
        elif not len(sel):
            return
        else:
            group, keys, pos = group.take(pa.array(sel)), keys[sel], sel.astype(np.int64) + position
        self.tables.append(group)
        self.keys.append(keys)
        self.pos.append(pos)
        self.held += len(keys)
        if self.held >= k:
            if self.held > 4 * k:
                self._cut()
            all_keys = np.concatenate(self.keys) if len(self.keys) > 1 else self.keys[0]
            self.threshold = np.partition(all_keys, k - 1)[k - 1]

    def _cut(self) -> None:
        keys, pos = np.concatenate(self.keys), np.concatenate(self.pos)
        keep = np.lexsort((pos, keys))[: self.k]
        table = pa.concat_tables(self.tables).take(pa.array(keep)).combine_chunks()
        self.tables, self.keys, self.pos, self.held = [table], [keys[keep]], [pos[keep]], len(keep)

    def result(self) -> SampleCandidates:
        if not self.held:
            return SampleCandidates(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), None)
        self._cut()
        return SampleCandidates(self.keys[0], self.pos[0], self.tables[0])


def encode_shard(spec: ShardSpec, folder: str, sample_rows: int, seed: int, with_stats: bool, spill: str) -> EncodeResult:
    """Write ``folder/spec.name`` (and the shard's sample candidates under ``spill``); see the module docstring."""
    path = Path(folder) / spec.name
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = StatsAccumulator() if with_stats else None
    smallest = _Smallest(sample_rows, seed)
    writer = open_parquet_writer(path)
    try:
        source = _pieces(spec)
        buffer: list[pa.Table] = []
        have = 0
        position = spec.first_row
        for k in spec.groups:
            while have < k:
                t = next(source)
                buffer.append(t)
                have += t.num_rows
            joined = pa.concat_tables(buffer)
            group, rest = joined.slice(0, k).combine_chunks(), joined.slice(k)
            buffer, have = ([rest] if rest.num_rows else []), rest.num_rows
            writer.write_table(group, k)
            if stats is not None:
                stats.update(group)
            smallest.offer(group, position)
            position += k
    finally:
        writer.close()
    cand = smallest.result()
    if cand.table is not None:
        cand_path = Path(spill) / f"sample-{spec.name}.arrow"
        with pa.ipc.new_file(str(cand_path), cand.table.schema) as w:
            w.write_table(cand.table)
        cand = SampleCandidates(cand.keys, cand.positions, None, str(cand_path))
    return EncodeResult(spec.split, spec.name, spec.rows, stats, cand, sha256_file(path))


__all__ = ["EncodeResult", "SampleCandidates", "encode_shard"]
