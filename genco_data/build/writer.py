"""The release's writer settings, the per-row size estimate behind the cuts, and the sample.

* **Shards.** :func:`open_parquet_writer` is the one place the Parquet settings live; the cuts are planned by
  :mod:`genco_data.build.layout` from :func:`row_bytes` and the shards written by :mod:`genco_data.build.encode`.
* **Sample.** Bottom-k by ``splitmix64(hash(impression_id) XOR splitmix64(seed))`` (:func:`sample_keys`):
  deterministic, independent of batch boundaries and workers (every shard offers its k smallest, the
  builder keeps the k smallest of those, :class:`SampleMerger`); ``sample_rows`` split between train and test
  in proportion to their sizes (at least one row each when both are non-empty), kept in split order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.release import DATA_DIR, shard_name
from genco_data.build.unique import hash_strings, splitmix64

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


# ----------------------------------------------------------------------------------------- the sample
def sample_keys(ids: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """uint64 ``[n]``: the sample key of each impression id (smallest keys are sampled)."""
    salt = splitmix64(np.array([seed], dtype=np.int64).astype(np.uint64))[0]
    return splitmix64(hash_strings(ids) ^ salt)


class SampleMerger:
    """The ``k`` rows with the smallest ``(key, position)`` among the shards' candidates, in bounded memory: only
    keys, positions and where each row lies in the spill travel; the ``k`` chosen rows are read from the spill
    at the end (each spilled batch memory-mapped only while its rows are taken)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.keys = np.zeros(0, dtype=np.uint64)
        self.pos = np.zeros(0, dtype=np.int64)
        self.src = np.zeros(0, dtype=np.int64)  # index into self.sources
        self.row = np.zeros(0, dtype=np.int64)  # row in that spilled batch
        self.sources: list[tuple[str, int]] = []  # (spilled rows file, batch)
        self._source_index: dict[tuple[str, int], int] = {}

    def absorb(self, keys: np.ndarray, pos: np.ndarray, sources: list[tuple[str, int]], src: np.ndarray, row: np.ndarray) -> None:
        if not len(keys):
            return
        index = np.empty(len(sources), dtype=np.int64)
        for i, where in enumerate(sources):  # a shard's few sources, not its rows
            where = (str(where[0]), int(where[1]))
            if where not in self._source_index:
                self._source_index[where] = len(self.sources)
                self.sources.append(where)
            index[i] = self._source_index[where]
        keys = np.concatenate([self.keys, keys])
        pos = np.concatenate([self.pos, pos])
        src = np.concatenate([self.src, index[src]])
        row = np.concatenate([self.row, row])
        if len(keys) > self.k:
            keep = np.lexsort((pos, keys))[: self.k]
            keys, pos, src, row = keys[keep], pos[keep], src[keep], row[keep]
        self.keys, self.pos, self.src, self.row = keys, pos, src, row

    def result(self, k: int) -> pa.Table:
        """The ``k`` smallest (``k <= self.k``), in split order."""
        if not len(self.keys) or k == 0:
            return _SCHEMA.empty_table()
        keep = np.lexsort((self.pos, self.keys))[:k]
        keep = keep[np.argsort(self.pos[keep])]
        by_source = np.argsort(self.src[keep], kind="stable")
        taken: list[pa.Table] = []
        for a, b in keep_runs(self.src[keep][by_source]):
            file, batch = self.sources[int(self.src[keep[by_source[a]]])]
            rows = self.row[keep[by_source[a:b]]]
            with pa.memory_map(file) as m:
                t = pa.Table.from_batches([pa.ipc.open_file(m).get_batch(batch)]).take(pa.array(rows)).combine_chunks()
            taken.append(t)
        table = pa.concat_tables(taken).combine_chunks()  # grouped by source; back to split order:
        return table.take(pa.array(np.argsort(by_source, kind="stable"))).combine_chunks()


def keep_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of the runs of equal consecutive values."""
    cuts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1, [len(values)]])
    return list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))


def _write_sample(tmp: Path, samplers: dict[str, SampleMerger], split_rows: dict[str, int], k: int) -> dict[str, int]:
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


__all__ = ["row_bytes", "open_parquet_writer", "sample_keys", "SampleMerger"]
