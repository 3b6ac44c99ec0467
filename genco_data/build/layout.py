"""The shard layout of a split: its rows in final order, cut into row groups and shards, before any is written.

Final order: the split's pieces (:class:`~genco_data.build.ingest.Piece`) sorted by ``(day, piece id)`` —
chronological, rows of one day in input order — minus the rows the uniqueness check found to be
duplicates. Cuts (:func:`plan_split`) are the ones the shard writer has always made, on the row sequence
alone: a row group ends at the first of ``row_group_rows`` rows, the shard's remaining rows,
``row_group_max_bytes`` or the shard's remaining ``shard_max_bytes`` (uncompressed, per-row estimates of
:func:`~genco_data.build.writer.row_bytes`); a row larger than those is written alone; a shard closes at
``rows_per_shard`` rows or when the next row does not fit its bytes. So the layout, like the bytes, does not
depend on input batches, files, tasks or workers. The plan reads only the 4-byte row sizes, piece by piece.

Each :class:`ShardSpec` is then encoded on its own (:mod:`genco_data.build.encode`), by any worker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genco_data.build.ingest import Piece
from genco_data.build.plan import BuildConfig
from genco_data.release import shard_name


@dataclass
class Segment:
    """Rows ``[start, stop)`` of a piece once its ``drop`` rows (duplicates, piece-local) are removed."""

    piece: Piece
    drop: np.ndarray
    start: int
    stop: int


@dataclass
class ShardSpec:
    split: str
    index: int
    name: str = ""
    segments: list[Segment] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)  # rows per row group
    first_row: int = 0  # position of the shard's first row in the split

    @property
    def rows(self) -> int:
        return sum(self.groups)


def _sizes(piece: Piece, sizes_file: str, drop: np.ndarray) -> np.ndarray:
    s = np.fromfile(sizes_file, dtype=np.int32, count=piece.rows, offset=4 * piece.sizes_at).astype(np.int64)
    if len(drop):
        s = np.delete(s, drop)
    return s


class _Stream:
    """The split's rows as a stream of (piece, net sizes), consumed a row group at a time."""

    def __init__(self, pieces: list[tuple[Piece, str, np.ndarray]]) -> None:
        self.todo = iter(pieces)
        self.pending: list[tuple[Piece, np.ndarray, np.ndarray, int]] = []  # piece, drop, sizes, start
        self.pending_rows = 0
        self.done = False

    def more(self) -> bool:
        for piece, sizes_file, drop in self.todo:
            s = _sizes(piece, sizes_file, drop)
            if len(s):
                self.pending.append((piece, drop, s, 0))
                self.pending_rows += len(s)
                return True
        self.done = True
        return False

    def head(self, m: int) -> np.ndarray:
        out, need = [], m
        for _, _, s, start in self.pending:
            if need <= 0:
                break
            take = s[start:start + need]
            out.append(take)
            need -= len(take)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def take(self, k: int) -> list[Segment]:
        segs = []
        while k:
            piece, drop, s, start = self.pending[0]
            n = min(k, len(s) - start)
            segs.append(Segment(piece, drop, start, start + n))
            k -= n
            self.pending_rows -= n
            if start + n == len(s):
                self.pending.pop(0)
            else:
                self.pending[0] = (piece, drop, s, start + n)
        return segs


def plan_split(split: str, pieces: list[tuple[Piece, str, np.ndarray]], cfg: BuildConfig) -> list[ShardSpec]:
    """Shard specs of one split; ``pieces`` = ``[(piece, its task's sizes file, dropped rows)]`` in final
    order. A split without rows gets one empty shard (a release always has both splits' files)."""
    rg_rows = min(cfg.row_group_rows, cfg.rows_per_shard)
    shards: list[ShardSpec] = []
    cur = ShardSpec(split, 0)
    shard_rows = shard_bytes = position = 0
    stream = _Stream(pieces)

    def close() -> None:
        nonlocal cur, shard_rows, shard_bytes
        if cur.groups:
            shards.append(cur)
        cur = ShardSpec(split, len(shards), first_row=position)
        shard_rows = shard_bytes = 0

    while True:
        if stream.pending_rows <= rg_rows and not stream.done:
            stream.more()
            continue
        if not stream.pending_rows:
            break
        rows_left = cfg.rows_per_shard - shard_rows
        bytes_left = cfg.shard_max_bytes - shard_bytes
        k = min(rg_rows, rows_left, stream.pending_rows)
        cum = np.cumsum(stream.head(k))
        k = min(k, int(np.searchsorted(cum, min(cfg.row_group_max_bytes, bytes_left), side="right")))
        if k == 0:
            if shard_rows:
                close()  # the next row does not fit in this shard's bytes
                continue
            k = 1  # one row above the byte caps: alone in its row group and shard
        cur.segments.extend(stream.take(k))
        cur.groups.append(k)
        shard_rows += k
        shard_bytes += int(cum[k - 1])
        position += k
        if shard_rows >= cfg.rows_per_shard:
            close()
    close()
    if not shards:
        shards.append(ShardSpec(split, 0))
    for s in shards:
        s.name = shard_name(split, s.index, len(shards))
    return shards


__all__ = ["Segment", "ShardSpec", "plan_split"]
