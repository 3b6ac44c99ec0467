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
    """Rows with the smallest sample keys of a shard: ``keys`` uint64, ``positions`` (in the split) int64, and
    where each row lies in the spill (the shard's rows are spilled rows, unchanged): ``sources[src[i]]`` =
    (rows file, batch), ``row[i]`` its row in that batch. Only these numbers travel back; the builder reads the
    few sampled rows from the spill at the end (:class:`~genco_data.build.writer.SampleMerger`)."""

    keys: np.ndarray
    positions: np.ndarray
    sources: list[tuple[str, int]]
    src: np.ndarray
    row: np.ndarray


@dataclass
class EncodeResult:
    split: str
    name: str
    rows: int
    stats: StatsAccumulator | None
    sample: SampleCandidates
    sha256: str = ""  # of the written file: checksums are computed where the file is, in parallel


def _pieces(spec: ShardSpec):
    """The shard's rows, segment by segment, with each row's row in its spilled batch. Each piece is
    memory-mapped only while it is read: mapped pages count as resident memory, so a long shard must not keep
    its whole spill mapped."""
    for seg in spec.segments:
        p = seg.piece
        table = pa.Table.from_batches([pa.ipc.open_file(pa.memory_map(p.file)).get_batch(p.batch)])
        if len(seg.drop):
            keep = np.ones(table.num_rows, dtype=bool)
            keep[seg.drop] = False
            table = table.filter(pa.array(keep))
            rows = np.flatnonzero(keep)[seg.start:seg.stop]
        else:
            rows = np.arange(seg.start, seg.stop, dtype=np.int64)
        yield table.slice(seg.start, seg.stop - seg.start), (p.file, p.batch), rows


class _Smallest:
    """The ``k`` smallest ``(sample key, position)`` of a shard and where their rows are, gathered group by
    group: a group gives only its rows whose key is below the ``k``-th smallest key held so far (a later row
    with an equal key has a larger position, so it loses); numbers only, no row is copied."""

    def __init__(self, k: int, seed: int) -> None:
        self.k, self.seed = k, seed
        self.parts: list[tuple[np.ndarray, ...]] = []  # (keys, positions, src, row)
        self.held = 0
        self.threshold: np.uint64 | None = None  # the k-th smallest key held, once k rows are held

    def offer(self, group: pa.Table, position: int, src: np.ndarray, row: np.ndarray) -> None:
        n, k = group.num_rows, self.k
        if k == 0 or n == 0:
            return
        keys = sample_keys(group.column("impression_id"), self.seed)
        if self.threshold is not None:
            sel = np.flatnonzero(keys < self.threshold)
        elif n > k:
            sel = np.flatnonzero(keys <= np.partition(keys, k - 1)[k - 1])  # ties at the k-th key: all kept
        else:
            sel = np.arange(n)
        if not len(sel):
            return
        self.parts.append((keys[sel], sel.astype(np.int64) + position, src[sel], row[sel]))
        self.held += len(sel)
        if self.held >= k:
            if self.held > 4 * k:
                self.parts = [self._cut()]
                self.held = len(self.parts[0][0])
            self.threshold = np.partition(np.concatenate([p[0] for p in self.parts]), k - 1)[k - 1]

    def _cut(self) -> tuple[np.ndarray, ...]:
        keys, pos, src, row = (np.concatenate([p[i] for p in self.parts]) for i in range(4))
        keep = np.lexsort((pos, keys))[: self.k]
        return keys[keep], pos[keep], src[keep], row[keep]

    def result(self, sources: list[tuple[str, int]]) -> SampleCandidates:
        if not self.held:
            z = np.zeros(0, dtype=np.int64)
            return SampleCandidates(np.zeros(0, dtype=np.uint64), z, [], z.astype(np.int32), z)
        keys, pos, src, row = self._cut()
        used, src = np.unique(src, return_inverse=True)  # only the sources the candidates come from travel
        return SampleCandidates(keys, pos, [sources[i] for i in used.tolist()], src.astype(np.int32), row)


def encode_shard(spec: ShardSpec, folder: str, sample_rows: int, seed: int, with_stats: bool) -> EncodeResult:
    """Write ``folder/spec.name``; see the module docstring. (The sample candidates are numbers pointing into
    the spill: nothing else is written.)"""
    path = Path(folder) / spec.name
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = StatsAccumulator() if with_stats else None
    smallest = _Smallest(sample_rows, seed)
    sources: list[tuple[str, int]] = []
    writer = open_parquet_writer(path)
    try:
        source = _pieces(spec)
        buffer: list[tuple[pa.Table, np.ndarray, np.ndarray]] = []
        have = 0
        position = spec.first_row
        for k in spec.groups:
            while have < k:
                t, where, rows = next(source)
                sources.append(where)
                buffer.append((t, np.full(len(rows), len(sources) - 1, dtype=np.int32), rows))
                have += t.num_rows
            joined = pa.concat_tables([b[0] for b in buffer])
            src = np.concatenate([b[1] for b in buffer]) if len(buffer) > 1 else buffer[0][1]
            row = np.concatenate([b[2] for b in buffer]) if len(buffer) > 1 else buffer[0][2]
            group, rest = joined.slice(0, k).combine_chunks(), joined.slice(k)
            buffer, have = ([(rest, src[k:], row[k:])] if rest.num_rows else []), rest.num_rows
            writer.write_table(group, k)
            if stats is not None:
                stats.update(group)
            smallest.offer(group, position, src[:k], row[:k])
            position += k
    finally:
        writer.close()
    return EncodeResult(spec.split, spec.name, spec.rows, stats, smallest.result(sources), sha256_file(path))


__all__ = ["EncodeResult", "SampleCandidates", "encode_shard"]
