"""The shuffle buffer of a shuffled stream: padded rows in one reused buffer, handed out as random batches.

A reader's padded blocks are laid end to end into one buffer until it holds at least ``buffer_rows`` rows (the
rows of whole blocks: a block is never split across two buffers); then the buffer's ``n`` rows are permuted
(``rng.permutation(n)``, the reader's generator seeded from ``(seed, epoch, reader, readers)``) and handed out
``batch_size`` rows at a time in that order, each batch gathered from the buffer into arrays of its own. So a
row's batch-mates are drawn uniformly from the rows of its buffer, and every row of the stream is handed out once.

What this costs: the padding writes straight into the buffer (``padding._pad_block(..., out=)``: the kernels of
the compiled path write in place; other blocks — the numpy path, the padded cache's memory-mapped views, an HF
stream's — are copied in once), and every row is copied once more by the gather of its batch (fixed-width numpy
rows: 15 ``np.take`` per batch, into recycled batch buffers). Permuting the padded rows, not the Arrow rows,
keeps the variable-length lists out of the shuffle (an Arrow ``take`` of list columns costs several times the
gather of their padded rows).

Memory: the buffer holds ``buffer_rows + spare_rows`` padded rows (fewer when the reader has fewer rows) —
``spare_rows`` (the stream's ``pad_rows``, 16,384 by default) is room for the last block of a fill and stays
untouched, so unresident, when blocks divide ``buffer_rows`` (in-memory blocks of 4,096 rows do). At 1,306 bytes
per padded row (the default padding) that is ~171 MB resident for the default 131,072 rows (~193 MB at most),
reused by the next fill and, through :data:`~genco_data.load.buffers.SHUFFLE_POOL`, by the next epoch; a block
larger than the spare rows makes the buffer grow (correct, not fast).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from genco_data.load import buffers, kernels
from genco_data.load.padding import TENSOR_FIELDS, _Block, _block_len

#: Dtypes and trailing shapes of the two block fields that the kernels do not write whole.
_OTHER_FIELDS = {"click": (np.float32, ()), "category": (np.int64, ())}


def block_layout(rows: int, segments: int) -> tuple[tuple[str, Any, tuple[int, ...]], ...]:
    """``(name, dtype, shape)`` of every :data:`TENSOR_FIELDS` array of a padded block of ``rows`` rows."""
    spans = {name: (dtype, shape) for name, dtype, shape in kernels.block_fields(rows, segments)}
    spans.update({k: (d, (rows, *s)) for k, (d, s) in _OTHER_FIELDS.items()})
    return tuple((k, np.dtype(spans[k][0]), spans[k][1]) for k in TENSOR_FIELDS)


class ShuffleBuffer:
    """One reader's shuffle buffer (module docstring): :meth:`slot` gives the rows the next block is padded into,
    :meth:`add` takes the block (a copy unless it lies in its slot), :meth:`drain` hands the rows out shuffled."""

    def __init__(self, buffer_rows: int, capacity: int, segments: int) -> None:
        self.buffer_rows, self.segments, self.capacity = int(buffer_rows), int(segments), max(1, int(capacity))
        self.arrays = buffers.arrays(block_layout(self.capacity, self.segments), buffers.SHUFFLE_POOL)
        self.rows = 0
        self.copied_rows = 0  # rows of blocks padded elsewhere and copied in (diagnostics, tests)
        self._ids: list[pa.Array] = []
        self._slot: dict[str, np.ndarray] | None = None

    @property
    def full(self) -> bool:
        return self.rows >= self.buffer_rows

    def slot(self, rows: int) -> dict[str, np.ndarray] | None:
        """Views of the buffer rows a block of ``rows`` rows would take next (None when they do not fit)."""
        if self.rows + rows > self.capacity:
            return None
        self._slot = {k: a[self.rows : self.rows + rows] for k, a in self.arrays.items()}
        return self._slot

    def add(self, block: _Block) -> None:
        n = _block_len(block)
        if self.rows + n > self.capacity:
            self._grow(self.rows + n)
        s = self._slot
        if s is None or len(s["click"]) != n or any(block[k] is not s[k] for k in TENSOR_FIELDS):
            for k in TENSOR_FIELDS:
                self.arrays[k][self.rows : self.rows + n] = block[k]
            self.copied_rows += n
        self._slot = None
        self._ids.append(block["impression_id"])
        self.rows += n

    def _grow(self, rows: int) -> None:
        """A larger buffer (a block larger than the spare rows: kept correct, not fast)."""
        bigger = buffers.arrays(block_layout(rows, self.segments))
        for k, a in self.arrays.items():
            bigger[k][: self.rows] = a[: self.rows]
        self.arrays, self.capacity = bigger, rows

    def drain(self, batch_size: int, rng: np.random.Generator) -> Iterator[_Block]:
        """The buffer's rows in the order of ``rng.permutation(rows)``, ``batch_size`` at a time; empties it."""
        n, self.rows = self.rows, 0
        if not n:
            return
        perm = rng.permutation(n)
        ids = (self._ids[0] if len(self._ids) == 1 else pa.concat_arrays(self._ids)).take(pa.array(perm))
        self._ids = []
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            out = buffers.arrays(block_layout(len(idx), self.segments))
            for k in TENSOR_FIELDS:
                np.take(self.arrays[k], idx, axis=0, out=out[k], mode="clip")  # "clip": no buffered copy
            out["impression_id"] = ids.slice(s, len(idx))
            yield out


def shuffled(
    blocks: Callable[[Callable[[int], dict[str, np.ndarray] | None]], Iterator[_Block]],
    buffer_rows: int, batch_size: int, rng: np.random.Generator, *, spare_rows: int, segments: int,
    total_rows: int | None = None,
) -> Iterator[_Block]:
    """A reader's blocks through a :class:`ShuffleBuffer`: ``blocks(slot)`` yields the padded blocks, padding each
    into ``slot(rows)`` where that is not None (the buffer's next rows; a block elsewhere is copied in).
    ``total_rows``: the reader's rows when known (a smaller stream gets a buffer of its own size)."""
    cap = buffer_rows + spare_rows if total_rows is None else min(buffer_rows + spare_rows, max(1, total_rows))
    state: list[ShuffleBuffer] = []

    def buffer() -> ShuffleBuffer:
        if not state:
            state.append(ShuffleBuffer(buffer_rows, cap, segments))
        return state[0]

    for b in blocks(lambda rows: buffer().slot(rows)):
        buf = buffer()
        buf.add(b)
        if buf.full:
            yield from buf.drain(batch_size, rng)
    if state:
        yield from state[0].drain(batch_size, rng)


__all__ = ["block_layout", "ShuffleBuffer", "shuffled"]
