"""Impression-id uniqueness, exact and in bounded memory: 64-bit string hashes, a hash-partitioned check.

The build's rule ``duplicate_id:impression_id`` (the first occurrence in input order wins; a row rejected
for another reason takes no id) is decided after the first pass, not while streaming:

* every good row's ``(hash, seq, impression_id, piece, row in piece)`` was spilled by its ingest task into one of
  ``P`` partitions by the top bits of :func:`hash_strings` (:mod:`genco_data.build.ingest`);
* :func:`partition_duplicates` loads one partition (~``rows / P`` rows, ~40 bytes each), sorts it by
  ``(hash, seq)`` and takes the rows whose hash equals a neighbour's as *candidates*; among the candidates
  the ids are compared **as strings** (Arrow's dictionary encoding: exact equality), and every row but the
  smallest ``seq`` of an id is a duplicate. A 64-bit collision between two different ids only makes both
  candidates; both are kept. Partitions are independent, so workers check them in parallel.

Memory is one partition at a time per worker; the spill is ~40 bytes per good row on disk. The same hashes
key the release's sample (:mod:`genco_data.build.writer`); :class:`IdSet` is the exact set behind the
statistics' small distinct counts (:mod:`genco_data.build.sketch`) and :func:`~genco_data.build.validate.validate`'s
optional cross-batch check.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# --------------------------------------------------------------------------------------------- hashing
_U = np.uint64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, elementwise on uint64 (wrapping arithmetic): a bijective bit mixer."""
    z = x.astype(np.uint64, copy=True)
    z += _U(0x9E3779B97F4A7C15)
    z ^= z >> _U(30)
    z *= _U(0xBF58476D1CE4E5B9)
    z ^= z >> _U(27)
    z *= _U(0x94D049BB133111EB)
    z ^= z >> _U(31)
    return z


_POLY = _U(0x100000001B3)  # an odd multiplier (the FNV-64 prime)
_POWERS = np.ones(1, dtype=np.uint64)


def _powers(n: int) -> np.ndarray:
    global _POWERS
    if len(_POWERS) < n:
        p = np.empty(max(n, 2 * len(_POWERS)), dtype=np.uint64)
        p[0] = 1
        with np.errstate(over="ignore"):  # arithmetic mod 2^64 on purpose
            for i in range(1, len(p)):  # runs a handful of times per process (lengths only grow)
                p[i] = p[i - 1] * _POLY
        _POWERS = p
    return _POWERS


def hash_strings(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash of every string: ``splitmix64(Σ_j b_j·P^j mod 2^64  XOR  len·φ)`` over the UTF-8 bytes
    ``b_j``; nulls hash like the empty string. Shape ``[len(arr)]`` uint64; one numpy pass over the bytes."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    lens = np.diff(offsets)
    if arr.null_count:
        lens[np.asarray(arr.is_null())] = 0
    h = np.zeros(n, dtype=np.uint64)
    total = int(offsets[-1] - offsets[0])
    nonempty = lens > 0
    width = int(offsets[1] - offsets[0])
    if total and total == width * n and not arr.null_count:  # every string has the same length: a matrix
        data = np.frombuffer(bufs[2], dtype=np.uint8, count=total, offset=int(offsets[0])).reshape(n, width)
        w = _powers(width)
        with np.errstate(over="ignore"):
            for j in range(width):
                h += data[:, j].astype(np.uint64) * w[j]
    elif total and nonempty.any():
        data = np.frombuffer(bufs[2], dtype=np.uint8, count=total, offset=int(offsets[0])) if bufs[2] is not None else None
        starts = offsets[:-1] - offsets[0]
        raw_lens = np.diff(offsets)  # positions of null entries (usually empty) are still skipped below
        pos = np.arange(total, dtype=np.int64) - np.repeat(starts, raw_lens)
        w = _powers(int(raw_lens.max()))[pos]
        prod = data.astype(np.uint64) * w
        sel = raw_lens > 0
        sums = np.add.reduceat(prod, starts[sel])
        h[sel] = sums
        h[~nonempty] = 0
    h ^= lens.astype(np.uint64) * _U(0x9E3779B97F4A7C15)
    return splitmix64(h)


def distinct_values(values: np.ndarray) -> np.ndarray:
    """Distinct values of an integer array, in no particular order (Arrow's hash ``unique``)."""
    values = np.asarray(values)
    if len(values) < 2:
        return values.copy()
    return pc.unique(pa.array(values)).to_numpy()


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (Arrow's hash ``unique``, then a sort of the few left)."""
    return np.sort(distinct_values(values))


class IdSet:
    """A set of integers (uint64 or int64) as a few sorted, disjoint numpy runs whose sizes roughly double
    (a log-structured merge): ``add`` and ``contains`` cost O(m log n) for m values against n stored;
    memory is one machine word per distinct value."""

    def __init__(self, dtype: type = np.uint64) -> None:
        self._dtype = np.dtype(dtype)
        self._runs: list[np.ndarray] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def values(self) -> np.ndarray:
        """All members, sorted."""
        if not self._runs:
            return np.zeros(0, dtype=self._dtype)
        return np.sort(np.concatenate(self._runs)) if len(self._runs) > 1 else self._runs[0].copy()

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Boolean ``[len(values)]``: which values are in the set (fastest when ``values`` is sorted)."""
        values = np.asarray(values, dtype=self._dtype)
        hit = np.zeros(len(values), dtype=bool)
        for run in self._runs:
            i = np.searchsorted(run, values)
            np.minimum(i, len(run) - 1, out=i)
            hit |= run[i] == values
        return hit

    def add(self, values: np.ndarray, *, sorted_unique_values: bool = False) -> int:
        """Insert ``values``; returns how many were new. ``sorted_unique_values=True`` promises that
        ``values`` is already sorted and distinct (skips that step)."""
        u = np.asarray(values, dtype=self._dtype)
        if not sorted_unique_values:
            u = sorted_unique(u)
        if self._runs and len(u):
            u = u[~self.contains(u)]
        if not len(u):
            return 0
        self._runs.append(u)
        self._n += len(u)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            b = self._runs.pop()
            a = self._runs.pop()
            merged = np.concatenate([a, b])
            merged.sort(kind="stable")  # two sorted runs: a linear merge under timsort
            self._runs.append(merged)
        return len(u)


# ------------------------------------------------------------------------------ the partitioned check
@dataclass
class Duplicates:
    """The duplicate rows of a partition: ``seq``, ``piece``, ``prow`` (int64 [d]), sorted by seq."""

    seq: np.ndarray
    piece: np.ndarray
    prow: np.ndarray

    @classmethod
    def empty(cls) -> "Duplicates":
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy())

    @classmethod
    def concat(cls, parts: list["Duplicates"]) -> "Duplicates":
        if not parts:
            return cls.empty()
        seq = np.concatenate([p.seq for p in parts])
        order = np.argsort(seq, kind="stable")
        return cls(seq[order], np.concatenate([p.piece for p in parts])[order], np.concatenate([p.prow for p in parts])[order])

    def __len__(self) -> int:
        return len(self.seq)


SEQ_BITS = 32  # seq = task << SEQ_BITS | row in task
PIECE_BITS = 24  # piece id = task << PIECE_BITS | piece in task


def partition_duplicates(sources: list[tuple[str, list[int], int]]) -> Duplicates:
    """Exact duplicates among the id records of one partition: ``sources`` = ``[(ids file, batch indices,
    task)]`` (the partition's runs in every task's id spill). See the module docstring."""
    batches, tasks = [], []
    for path, indices, task in sources:
        reader = pa.ipc.open_file(pa.memory_map(path))  # the batches keep the mapping alive
        for i in indices:
            b = reader.get_batch(i)
            batches.append(b)
            tasks.append(np.full(b.num_rows, task, dtype=np.int64))
    if not batches:
        return Duplicates.empty()
    table = pa.Table.from_batches(batches)
    task_of = np.concatenate(tasks)
    h = table.column("hash").to_numpy()
    seq = (task_of << np.int64(SEQ_BITS)) | table.column("local").to_numpy()
    order = np.lexsort((seq, h))
    hs = h[order]
    same = hs[1:] == hs[:-1]
    if not same.any():
        return Duplicates.empty()
    cand = np.zeros(len(hs), dtype=bool)
    cand[1:] |= same
    cand[:-1] |= same
    rows = order[cand]
    ids = table.column("id").take(pa.array(rows)).combine_chunks()
    codes = pc.dictionary_encode(ids).indices.to_numpy()  # equal codes <=> equal strings
    cseq = seq[rows]
    corder = np.lexsort((cseq, codes))
    first = np.ones(len(corder), dtype=bool)
    first[1:] = codes[corder][1:] != codes[corder][:-1]
    dup = rows[corder[~first]]
    if not len(dup):
        return Duplicates.empty()
    dup = dup[np.argsort(seq[dup], kind="stable")]
    piece = (task_of[dup] << np.int64(PIECE_BITS)) | table.column("k").to_numpy()[dup].astype(np.int64)
    return Duplicates(seq[dup], piece, table.column("prow").to_numpy()[dup].astype(np.int64))


__all__ = ["splitmix64", "hash_strings", "sorted_unique", "distinct_values", "IdSet", "Duplicates", "partition_duplicates"]
