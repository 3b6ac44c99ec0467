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


def encode_shard(spec: ShardSpec, folder: str, sample_rows: int, seed: int, with_stats: bool, spill: str) -> EncodeResult:
    """Write ``folder/spec.name`` (and the shard's sample candidates under ``spill``); see the module docstring."""
    path = Path(folder) / spec.name
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = StatsAccumulator() if with_stats else None
    cand = SampleCandidates(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), None)
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
            cand = _keep_smallest(cand, group, position, sample_rows, seed)
            position += k
    finally:
        writer.close()
    if cand.table is not None:
        cand_path = Path(spill) / f"sample-{spec.name}.arrow"
        with pa.ipc.new_file(str(cand_path), cand.table.schema) as w:
            w.write_table(cand.table)
        cand = SampleCandidates(cand.keys, cand.positions, None, str(cand_path))
    return EncodeResult(spec.split, spec.name, spec.rows, stats, cand, sha256_file(path))


def _keep_smallest(cand: SampleCandidates, group: pa.Table, position: int, k: int, seed: int) -> SampleCandidates:
    if k == 0 or group.num_rows == 0:
        return cand
    keys = sample_keys(group.column("impression_id"), seed)
    pos = np.arange(position, position + group.num_rows, dtype=np.int64)
    if len(cand.keys) >= k:
        sel = np.flatnonzero(keys < cand.keys.max())
        if not len(sel):
            return cand
        group, keys, pos = group.take(pa.array(sel)), keys[sel], pos[sel]
    table = pa.concat_tables([cand.table, group]) if cand.table is not None else group
    keys = np.concatenate([cand.keys, keys])
    pos = np.concatenate([cand.positions, pos])
    if len(keys) > k:
        keep = np.lexsort((pos, keys))[:k]
        table, keys, pos = table.take(pa.array(keep)), keys[keep], pos[keep]
    return SampleCandidates(keys, pos, table.combine_chunks())


__all__ = ["EncodeResult", "SampleCandidates", "encode_shard"]
