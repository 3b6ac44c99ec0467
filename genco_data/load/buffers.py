"""Reused memory for the padded blocks of the compiled path: one buffer per block, recycled once unreferenced.

A padded block of 16,384 rows is ~21 MB. Allocated field by field with ``np.empty``, its largest arrays come
from fresh ``mmap`` pages each time (glibc maps allocations at or above its mmap threshold, and the candidates
array of a full block is always exactly that size), so every block paid ~5,000 page faults (kernel time: ~10 %
of the cold loader's CPU on the default release) and wrote to cold memory. Here a block's fields are views of
one ``uint8`` buffer (each field 64-byte aligned, C-contiguous, of its own dtype and shape), and a buffer is
handed out again only when *nothing* references it any more: every numpy view, and every tensor made from one
by ``torch.from_numpy``, holds a reference to the buffer, so its reference count returns to the pool's own
exactly when the last batch of the block is gone (CPython reference counting; checked under a lock, so two
threads never get the same buffer). A batch that is kept (a list of batches, a prefetch queue, a shuffle
buffer) keeps its block's buffer out of the pool; the pool then allocates another one.

At most :data:`KEEP` buffers are kept per process (~21 MB each at the default block size); the largest
requests win a slot. The shuffle buffers of :mod:`genco_data.load.shuffle` (~171 MB at the default 131,072
rows) live in a pool of their own, :data:`SHUFFLE_POOL`, keeping one (an epoch reuses the previous epoch's
pages). :func:`release` empties both pools.
"""
from __future__ import annotations

import functools
import math
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Buffers the pool keeps (a reader alternates two: the block being cut into batches and the next one).
KEEP = 3
_ALIGN = 64
_lock = threading.Lock()
_pool: list[np.ndarray] = []
#: The pool of the shuffle buffers (kept: one).
SHUFFLE_POOL: list[np.ndarray] = []
_local = threading.local()


def _up(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _free(pool: list[np.ndarray], i: int) -> bool:
    """Whether pooled buffer ``i`` is referenced by the pool only (the list and getrefcount's argument)."""
    return sys.getrefcount(pool[i]) == 2


def _aligned(raw: np.ndarray, nbytes: int) -> np.ndarray:
    off = -raw.__array_interface__["data"][0] % _ALIGN
    return raw[off : off + nbytes]


def take(nbytes: int, pool: list[np.ndarray] | None = None) -> np.ndarray:
    """A 64-byte aligned ``uint8`` array of ``nbytes`` bytes (contents undefined), from a free pooled buffer when
    one is large enough, else newly allocated (and pooled when there is room, or in place of a smaller free one).
    ``pool``: the default block pool (None, :data:`KEEP` buffers) or :data:`SHUFFLE_POOL` (one)."""
    keep = KEEP if pool is None else 1
    pool = _pool if pool is None else pool
    with _lock:
        for i in range(len(pool)):
            if pool[i].nbytes - _ALIGN >= nbytes and _free(pool, i):
                return _aligned(pool[i], nbytes)
        fresh = np.empty(_up(max(nbytes, 1)) + _ALIGN, np.uint8)
        if len(pool) < keep:
            pool.append(fresh)
        else:
            free = [i for i in range(len(pool)) if _free(pool, i)]
            if free:
                i = min(free, key=lambda j: pool[j].nbytes)
                if pool[i].nbytes < fresh.nbytes:
                    pool[i] = fresh
        return _aligned(fresh, nbytes)


def scratch(n: int, dtype: Any) -> np.ndarray:
    """A per-thread work array of ``n`` items of ``dtype`` (contents undefined), valid until this thread's next
    call: for what a kernel uses only while it runs."""
    nbytes = n * np.dtype(dtype).itemsize
    buf = getattr(_local, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _local.buf = np.empty(_up(max(nbytes, 1) + nbytes // 4), np.uint8)
    return buf[:nbytes].view(dtype)


@functools.lru_cache(maxsize=32)
def _layout(fields: tuple[tuple[str, Any, tuple[int, ...]], ...]) -> tuple[int, tuple[tuple[str, Any, tuple[int, ...], int, int], ...]]:
    spans = []
    pos = 0
    for name, dtype, shape in fields:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        spans.append((name, np.dtype(dtype), shape, pos, pos + nbytes))
        pos += _up(nbytes)
    return pos, tuple(spans)


def arrays(fields: Sequence[tuple[str, Any, tuple[int, ...]]], pool: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{name: array}`` of uninitialised C-contiguous arrays (``(name, dtype, shape)`` each), views of one
    pooled buffer (of ``pool``, see :func:`take`), each starting on a 64-byte boundary."""
    total, spans = _layout(tuple(fields))
    buf = take(total, pool)
    return {name: buf[a:b].view(dtype).reshape(shape) for name, dtype, shape, a, b in spans}


def release() -> None:
    """Drop the pooled buffers (their memory is freed once nothing references them)."""
    with _lock:
        _pool.clear()
        SHUFFLE_POOL.clear()


__all__ = ["KEEP", "SHUFFLE_POOL", "take", "scratch", "arrays", "release"]
