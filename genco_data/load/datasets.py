"""Torch datasets and the loader: map-style, streaming (shuffle buffer, ranks × workers), a sampler, ``loader``.

With :mod:`genco_data.load.batch`, the only :mod:`genco_data` module that imports torch (``import genco_data``
never does). Padding lives in :mod:`~genco_data.load.padding`, vocabularies in :mod:`~genco_data.load.vocab`,
source discovery in :mod:`~genco_data.load.sources`, the padded row-group cache in :mod:`~genco_data.load.cache`.

Quick start::

    ds = datasets.load_dataset(release_or_hub_id, split="train")
    train = genco_data.loader(ds, batch_size=1024)              # hashed id tables, nothing read before batch 1
    train.vocabs.save("vocab.npz")                              # embedding sizes: train.vocabs.size(name)
    test = genco_data.loader(release_dir, split="test", vocabs="vocab.npz", cache_dir=None)
    for batch in train:                                         # a Batch; no collate needed
        batch = batch.to("cuda", non_blocking=True)
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset as TorchIterableDataset

from genco_data.format.components import CONFIGS
from genco_data.load.batch import Batch, _block_to_batch, _rebatch
from genco_data.load.cache import cache_key, read_unit, write_unit
from genco_data.load.padding import (PAD_ROWS, REQUIRED_COLUMNS, SEGMENTS_PAD_TO, _as_array, _Block, _block_take, _check_columns,
                                     _check_schema, _pad_block)
from genco_data.load.shuffle import shuffled
from genco_data.load.sources import Source, _ArrowRows, _is_hf_dataset, _is_hf_iterable, _is_pathlike, parquet_files
from genco_data.load.streams import SHUFFLE_BLOCK, ParquetTables, Unit, memory_tables, memory_units, parquet_units, reader_plan, reader_rows
from genco_data.load.vocab import VOCAB_MODES, Vocabularies, resolve_vocabs

#: Rows per shuffling buffer of the iterable dataset.
SHUFFLE_BUFFER = 131072
_Slot = Callable[[int], Optional[dict[str, np.ndarray]]]


# ---------------------------------------------------------------------------------------------
# Map-style dataset
# ---------------------------------------------------------------------------------------------
class MapDataset(TorchDataset, _ArrowRows):
    """Random access to padded rows of a ``pa.Table``, a ``datasets.Dataset`` or a release folder.

    ``__getitems__(indices)`` pads a whole batch at once (``DataLoader`` calls it when present), so a
    loader never builds rows one by one; ``ds[i]`` is a one-row :class:`Batch`. A plain
    ``DataLoader(ds, batch_size=k)`` works without a ``collate_fn``: :class:`Batch` is registered with torch's
    ``default_collate``. A release folder is read
    with pyarrow (memory-mapped Parquet, decoded once into RAM — use :class:`StreamingDataset` to stream
    data larger than memory). An HF ``Dataset`` is read through its Arrow table, honouring its indices
    mapping (after ``select``/``shuffle``/``train_test_split``). ``vocabs``: see :func:`resolve_vocabs` —
    None = hashed (sized by the manifest of a release folder; no pass over the data), ``"exact"`` = built from
    the same rows (from the *train* split for a release folder). ``verify``: a release folder is
    checked against its manifest's sha256 first (:func:`parquet_files`); False skips it.
    """

    def __init__(
        self,
        source: Source,
        vocabs: Vocabularies | None = None,
        *,
        split: str = "train",
        config: str = CONFIGS[0],
        max_segments: int = SEGMENTS_PAD_TO,
        verify: bool = True,
    ) -> None:
        self.max_segments = int(max_segments)
        self._indices: np.ndarray | None = None
        if isinstance(source, pa.RecordBatch):
            source = pa.Table.from_batches([source])
        if isinstance(source, pa.Table):
            table = source
        elif _is_hf_dataset(source):
            table = source.data.table
            idx = getattr(source, "_indices", None)
            if idx is not None:
                self._indices = _as_array(idx.column(0)).to_numpy().astype(np.int64, copy=False)
        elif _is_pathlike(source) or isinstance(source, (list, tuple)):
            files = parquet_files(source, split, config, verify=verify)
            tables = []
            for f in files:
                schema = pq.read_schema(f)
                _check_schema(schema)
                tables.append(pq.read_table(f, columns=list(REQUIRED_COLUMNS), memory_map=True))
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        else:
            raise TypeError(
                "MapDataset expects a pyarrow Table, a datasets.Dataset or a release folder, "
                f"got {type(source).__name__} (use StreamingDataset for a streaming dataset)"
            )
        _check_schema(table.schema)
        self.table = table.select(list(REQUIRED_COLUMNS))
        # Arrow's take on a chunked table concatenates every chunk first (O(N) per batch), so random
        # batches are taken chunk by chunk from zero-copy record batches with common boundaries.
        self._chunks = self.table.to_batches()
        self._starts = np.cumsum([0] + [len(b) for b in self._chunks])
        self.vocabs = resolve_vocabs(vocabs, source, self, split=split, config=config, verify=verify)

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> Batch:
        keys = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(keys) and (keys.min() < -n or keys.max() >= n):
            raise IndexError(f"index out of range for a dataset of {n} rows")
        keys = np.where(keys < 0, keys + n, keys)
        table, order = self._grouped(self._indices[keys] if self._indices is not None else keys)
        src = keys if order is None else keys[order]
        block = _pad_block(table, self.vocabs, self.max_segments, lambda i: f"dataset row {int(src[i])}")
        if order is not None:  # back to the requested order, on the padded numpy arrays
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            block = _block_take(block, inverse)
        return _block_to_batch(block)

    def __getitem__(self, index: int | slice) -> Batch:
        if isinstance(index, slice):
            return self.__getitems__(np.arange(len(self))[index])
        return self.__getitems__([index])


class ShardedBatchSampler(Sampler):
    """Index batches (numpy arrays) for a map-style dataset, split across DDP ranks.

    Each epoch orders ``range(num_rows)`` (a permutation from ``(seed, epoch)`` when ``shuffle``), gives
    rank ``r`` of ``R`` the contiguous part ``[r*N//R, (r+1)*N//R)`` of that order (sizes differ by at
    most one; every row on exactly one rank) and cuts it into batches. ``drop_last`` drops each rank's
    last short batch and trims every rank to ``N//R`` rows so that all ranks step the same number of
    times. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        num_rows: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_positive(batch_size=batch_size, world_size=world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.num_rows, self.batch_size = int(num_rows), int(batch_size)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rows(self) -> np.ndarray:
        N, R, r = self.num_rows, self.world_size, self.rank
        order = np.random.default_rng([self.seed, self.epoch]).permutation(N) if self.shuffle else np.arange(N)
        if self.drop_last:
            per = N // R
            return order[r * per : (r + 1) * per]
        return order[r * N // R : (r + 1) * N // R]

    def __iter__(self) -> Iterator[np.ndarray]:
        rows = self._rows()
        stop = len(rows) - len(rows) % self.batch_size if self.drop_last else len(rows)
        for s in range(0, stop, self.batch_size):
            yield rows[s : s + self.batch_size]

    def __len__(self) -> int:
        n = len(self._rows())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _check_positive(**kw: int) -> None:
    for k, v in kw.items():
        if int(v) < 1:
            raise ValueError(f"{k} must be >= 1, got {v}")


# ---------------------------------------------------------------------------------------------
# Iterable dataset
# ---------------------------------------------------------------------------------------------
def _worker_slot(rank: int, world_size: int) -> tuple[int, int]:
    """(global worker index, global worker count) over DDP ranks × DataLoader workers."""
    info = torch.utils.data.get_worker_info()
    w, W = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * W + w, world_size * W


class StreamingDataset(TorchIterableDataset):
    """Padded :class:`Batch` objects streamed from Parquet shards, an in-memory table / ``datasets.Dataset``, or an
    HF ``datasets.IterableDataset``.

    Yields whole batches (use ``DataLoader(ds, batch_size=None)``, which :func:`loader` does).

    **Sharding.** With ``R`` DDP ranks (``rank``/``world_size``, default from ``torch.distributed`` when
    initialized) × ``W`` DataLoader workers there are ``G = R*W`` readers; reader ``g = rank*W + worker``.
    Each epoch orders the units — row groups of the Parquet shards, or blocks of ``shuffle_block`` consecutive
    rows of an in-memory source — (a permutation from ``(seed, epoch)`` when ``shuffle``) and gives reader ``g``
    the contiguous rows ``[g*N//G, (g+1)*N//G)`` of that order (:mod:`genco_data.load.streams`), reading only
    the units they touch — every row exactly once per epoch, readers within one row of each other. For an HF
    ``IterableDataset`` the split is ``datasets.distributed.split_dataset_by_node`` (whole shards when ``G``
    divides ``n_shards``, else every ``G``-th row) and ``set_epoch`` is forwarded. ``drop_last`` trims every
    reader to ``N//G`` rows and drops short batches, so all ranks step equally (use it for DDP); ``equal_rows``
    trims the same way but keeps each reader's last short batch (equal step counts too). ``rows=(lo, hi)``
    reads only positions ``[lo, hi)`` of the epoch's order (e.g. the most recent rows of a chronological split).
    :meth:`set_start_row` skips the first rows of every reader's range (a resumed epoch).

    **Shuffling.** ``shuffle`` permutes the units (a permutation from ``(seed, epoch)``) and then rows within a
    buffer of a reader's consecutive rows — whole blocks until it holds at least ``shuffle_buffer`` rows (exactly
    32 random 4,096-row blocks of an in-memory source at the defaults; the reader's last buffer holds the rest):
    a row's batch-mates are drawn uniformly from its buffer (``rng.permutation`` of the buffer, seeded by
    ``(seed, epoch, g, G)``) — not a uniform permutation of the whole split (rows of one unit always share a
    buffer), but every row once. Rows are padded straight into the buffer and permuted as padded fixed-width
    numpy rows (one gather per batch; :mod:`~genco_data.load.shuffle`), so the buffer holds
    ``shuffle_buffer + pad_rows`` padded rows, ~1.3 KB each: ~171 MB resident at the defaults (~193 MB at most).
    Deterministic given ``(seed, epoch)`` and the ``(R, W)`` layout. Call :meth:`set_epoch` before each epoch
    (it reaches persistent workers too). Without ``shuffle`` rows come in file order — the paper's
    chronological training order.

    **Padded cache** (Parquet only). With ``cache_dir``, the first reader of a row group pads the whole
    row group once and stores it as ``.npy`` files (+ ``impression_id.arrow``) under
    ``cache_dir/<shard>-rg<NNNNN>-<key>/``, the key hashing the file (path, size, mtime), the row group,
    the vocabularies and the padding; later epochs copy batches out of the memory-mapped files instead of
    decoding Parquet and looking ids up (several times faster; about 1.3 KB of disk per row).

    **Integrity.** A release folder is checked against its manifest's sha256 when the dataset is built
    (``verify=True``, :func:`parquet_files`; cached per process); ``verify=False`` skips it.
    """

    def __init__(
        self,
        source: Source,
        vocabs: Vocabularies | str | os.PathLike | None = None,
        *,
        batch_size: int = 1024,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        equal_rows: bool = False,
        rows: tuple[int, int] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        shuffle_block: int = SHUFFLE_BLOCK,
        split: str = "train",
        config: str = CONFIGS[0],
        max_segments: int = SEGMENTS_PAD_TO,
        pad_rows: int = PAD_ROWS,
        cache_dir: str | os.PathLike | None = None,
        verify: bool = True,
    ) -> None:
        _check_positive(batch_size=batch_size, shuffle_buffer=shuffle_buffer, pad_rows=pad_rows, shuffle_block=shuffle_block)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._vocab_fp: str | None = None
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), bool(shuffle), int(seed), bool(drop_last)
        self.equal_rows, self.rows = bool(equal_rows or drop_last), (None if rows is None else (int(rows[0]), int(rows[1])))
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.shuffle_buffer, self.max_segments, self.pad_rows = int(shuffle_buffer), int(max_segments), int(pad_rows)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._start = torch.zeros((), dtype=torch.int64).share_memory_()
        self._hf = None
        self._memory: MapDataset | None = None
        self.files: list[Path] = []
        self.units: list[Unit] = []
        if _is_hf_iterable(source):
            if source.features is not None:
                _check_columns(pa.schema(source.features.arrow_schema), REQUIRED_COLUMNS)
            self._hf = source
            rows_source: Any = source
        elif _is_pathlike(source) or isinstance(source, (list, tuple)):
            self.files = parquet_files(source, split, config, verify=verify)
            self.units = parquet_units(self.files)
            rows_source = self.files
        elif isinstance(source, (pa.Table, pa.RecordBatch, MapDataset)) or _is_hf_dataset(source):
            self._memory = source if isinstance(source, MapDataset) else MapDataset(source, vocabs="hashed", max_segments=max_segments)
            self.units = memory_units(len(self._memory), int(shuffle_block))
            rows_source = self._memory
        else:
            raise TypeError(
                "StreamingDataset expects a release folder, Parquet path(s), a pyarrow Table, a datasets.Dataset or a "
                f"datasets.IterableDataset, got {type(source).__name__}"
            )
        if self.cache_dir is not None and not self.files:
            raise ValueError("cache_dir needs Parquet files (a release folder or paths), not an in-memory source or an HF stream")
        if vocabs is None and isinstance(source, MapDataset):
            vocabs = source.vocabs
        self.vocabs = resolve_vocabs(vocabs, source, rows_source, split=split, config=config, verify=verify)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def set_start_row(self, rows: int) -> None:
        """Skip the first ``rows`` rows of every reader's range from now on (0 = none); for resuming an epoch."""
        self._start.fill_(int(rows))

    @property
    def num_rows(self) -> int | None:
        """Rows per epoch over all readers (None for an HF stream)."""
        if self._hf is not None:
            return None
        return sum(reader_rows(self.units, 1, rows=self.rows))

    def reader_rows(self, G: int) -> list[int]:
        """Rows each of ``G`` readers reads per epoch (Parquet and in-memory sources)."""
        return reader_rows(self.units, G, rows=self.rows, equal=self.equal_rows)

    def reader_plan(self, g: int, G: int, epoch: int) -> list[tuple[Unit, int, int]]:
        """``(unit, start, stop)`` slices reader ``g`` of ``G`` reads in ``epoch``, in order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units)) if self.shuffle else None
        return reader_plan(self.units, g, G, order=order, rows=self.rows, equal=self.equal_rows, skip=int(self._start))

    def _pad(self, t: pa.Table, where: Callable[[int], str], slot: _Slot | None) -> _Block:
        return _pad_block(t, self.vocabs, self.max_segments, where, None if slot is None else slot(t.num_rows))

    def _unit_blocks(self, g: int, G: int, epoch: int, slot: _Slot | None = None) -> Iterator[_Block]:
        parquet = ParquetTables(self.files, self.pad_rows)
        for u, a, b in self.reader_plan(g, G, epoch):
            if self._memory is not None:
                for t, where in memory_tables(self._memory, u, a, b, self.pad_rows):
                    yield self._pad(t, where, slot)
                continue
            if self.cache_dir is None:
                for t, where in parquet.tables(u, a, b):
                    yield self._pad(t, where, slot)
                continue
            unit = self.cache_dir / self._cache_key(u)
            if not unit.is_dir():
                write_unit(unit, u.rows, parquet.tables(u, 0, u.rows), self.vocabs, self.max_segments)
            yield from read_unit(unit, a, b, self.pad_rows, views=self.shuffle)

    def _cache_key(self, u: Unit) -> str:
        if self._vocab_fp is None:
            self._vocab_fp = self.vocabs.fingerprint()
        return cache_key(self.files[u.file], u.index, self.max_segments, self._vocab_fp)

    def _hf_tables(self, g: int, G: int, epoch: int) -> Iterator[tuple[pa.Table, Callable[[int], str]]]:
        from datasets.distributed import split_dataset_by_node

        ds = split_dataset_by_node(self._hf, rank=g, world_size=G) if G > 1 else self._hf
        ds.set_epoch(epoch)
        seen = 0
        for t in ds.select_columns(list(REQUIRED_COLUMNS)).with_format("arrow").iter(batch_size=self.pad_rows):
            _check_schema(t.schema)
            yield t, (lambda i, base=seen: f"stream row {base + i} of reader {g}")
            seen += t.num_rows

    def _blocks(self, g: int, G: int, epoch: int, slot: _Slot | None = None) -> Iterator[_Block]:
        if self._hf is None:
            yield from self._unit_blocks(g, G, epoch, slot)
            return
        for t, where in self._hf_tables(g, G, epoch):
            if t.num_rows:
                yield self._pad(t, where, slot)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        g, G = _worker_slot(self.rank, self.world_size)
        if self.shuffle:  # padded straight into the shuffle buffer, handed out in random batches (load/shuffle.py)
            blocks = shuffled(lambda slot: self._blocks(g, G, epoch, slot), self.shuffle_buffer, self.batch_size,
                              np.random.default_rng([self.seed, epoch, g, G]), spare_rows=self.pad_rows,
                              segments=self.max_segments, total_rows=None if self._hf is not None else self.reader_rows(G)[g])
        else:
            blocks = self._blocks(g, G, epoch)
        yield from _rebatch(blocks, self.batch_size, self.drop_last)


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    r, w = int(rank or 0), int(world_size or 1)
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world_size, got rank={r}, world_size={w}")
    return r, w


# ---------------------------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------------------------
class BatchLoader(DataLoader):
    """A ``DataLoader`` of :class:`Batch` objects with :meth:`set_epoch` and the :attr:`vocabs` used."""

    vocabs: Vocabularies

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (call before each epoch; deterministic given seed and epoch)."""
        target = self.batch_sampler if isinstance(self.batch_sampler, ShardedBatchSampler) else self.dataset
        target.set_epoch(epoch)  # type: ignore[union-attr]


def _identity(batch: Batch) -> Batch:
    return batch


def loader(
    ds: Source,
    batch_size: int = 1024,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    vocabs: Vocabularies | str | os.PathLike | None = None,
    drop_last: bool = False,
    *,
    pin_memory: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    streaming: Optional[bool] = None,
    split: str = "train",
    config: str = CONFIGS[0],
    shuffle_buffer: int = SHUFFLE_BUFFER,
    shuffle_block: int = SHUFFLE_BLOCK,
    max_segments: int = SEGMENTS_PAD_TO,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> BatchLoader:
    """A DataLoader of padded :class:`Batch` objects over ``ds``.

    ``ds``: a ``datasets.Dataset`` (e.g. ``load_dataset(path, split="train")``) or ``pa.Table`` →
    map-style (:class:`MapDataset` + :class:`ShardedBatchSampler`), or with ``shuffle`` the in-memory rows read
    by :class:`StreamingDataset` in blocks of ``shuffle_block`` rows, shuffled within a buffer of
    ``shuffle_buffer`` rows (about the cost of an unshuffled pass; see its docstring for the randomness this
    gives — build :class:`MapDataset` + ``ShardedBatchSampler(shuffle=True)`` yourself for a uniform
    permutation, at the cost of a random Arrow gather per batch); a ``datasets.IterableDataset``
    (``streaming=True``) → :class:`StreamingDataset`; a release folder or Parquet path(s) → streamed
    (:class:`StreamingDataset`) unless ``streaming=False``, reading ``config``/``split``.

    ``vocabs``: a :class:`Vocabularies`, a path saved by :meth:`Vocabularies.save`, None / ``"hashed"`` (the
    default: hashed tables, sized by a release folder's manifest, else the documented defaults; nothing is
    read before the first batch) or ``"exact"`` (built from ``ds`` itself; for a release folder from its train
    split). For a test split, pass the train vocabularies (hashed ones of the same release are equal anyway). ``rank``/``world_size`` default to ``torch.distributed`` when initialized: every row is
    seen exactly once per epoch across ranks × workers (``drop_last`` trades that for equal step counts).
    Call ``loader.set_epoch(epoch)`` before each epoch when shuffling. ``cache_dir`` keeps padded row
    groups on disk for streamed Parquet (see :class:`StreamingDataset`). ``verify``: a release folder is
    checked against its manifest's sha256 before reading (``IntegrityError`` when corrupted; cached per
    process); False skips it.
    """
    if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
        raise TypeError(f"loader expects one split, got a {type(ds).__name__} with {list(ds)}; pass e.g. ds['train']")
    if vocabs is not None and not isinstance(vocabs, Vocabularies) and vocabs not in VOCAB_MODES:
        vocabs = Vocabularies.load(vocabs)
    rank, world_size = _resolve_rank(rank, world_size)
    kw: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "persistent_workers": persistent_workers and num_workers > 0,
        "collate_fn": _identity,
    }
    if num_workers > 0 and prefetch_factor is not None:
        kw["prefetch_factor"] = prefetch_factor
    if streaming is None:
        streaming = isinstance(ds, StreamingDataset) or _is_hf_iterable(ds) or _is_pathlike(ds) or isinstance(ds, (list, tuple))
    if isinstance(ds, StreamingDataset):
        dataset: Any = ds
        out = BatchLoader(dataset, batch_size=None, **kw)
    elif streaming:
        dataset = StreamingDataset(
            ds, vocabs, batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
            rank=rank, world_size=world_size, shuffle_buffer=shuffle_buffer, split=split, config=config,
            max_segments=max_segments, cache_dir=cache_dir, verify=verify, shuffle_block=shuffle_block,
        )
        out = BatchLoader(dataset, batch_size=None, **kw)
    else:
        if cache_dir is not None:
            raise ValueError("cache_dir applies to streamed Parquet (streaming=True), not to a map-style dataset")
        rows = ds if isinstance(ds, MapDataset) else MapDataset(ds, vocabs, split=split, config=config, max_segments=max_segments, verify=verify)
        if shuffle:  # contiguous blocks + a bounded shuffle buffer, not a random gather per batch
            dataset = StreamingDataset(
                rows, rows.vocabs, batch_size=batch_size, shuffle=True, seed=seed, drop_last=drop_last, rank=rank,
                world_size=world_size, shuffle_buffer=shuffle_buffer, shuffle_block=shuffle_block, max_segments=rows.max_segments,
            )
            out = BatchLoader(dataset, batch_size=None, **kw)
        else:
            dataset = rows
            sampler = ShardedBatchSampler(len(rows), batch_size, drop_last=drop_last, rank=rank, world_size=world_size)
            out = BatchLoader(dataset, batch_sampler=sampler, **kw)
    out.vocabs = dataset.vocabs
    return out


__all__ = [
    "MapDataset",
    "ShardedBatchSampler",
    "StreamingDataset",
    "BatchLoader",
    "loader",
]
