"""Torch adapters: padded candidate batches, vocabularies, map-style and iterable datasets, a loader.

This is the only :mod:`genco_data` module that imports torch (``import genco_data`` never does).
Everything is computed on whole Arrow columns (list offsets + flat values) with numpy; no Python
code runs per row.

Layout of a :class:`Batch` of ``B`` rows (``C = 6`` components in :data:`COMPONENTS` order,
``P = PAD_TO = 15`` slots, ``S = SEGMENTS_PAD_TO = 16`` query segments)::

    candidates      int64   [B, C, P]  vocabulary index per slot; 0 = padding, 1 = out of vocabulary
    mask            bool    [B, C, P]  True where the slot holds a candidate
    original_index  int16   [B, C, P]  slot -> index into the original pool; -1 in padding
    exposed         int64   [B, C]     slot of the shown element; -1 when the component is absent
    n_candidates    int64   [B, C]     full pool size before truncation (the evaluator's n); 0 = absent
    propensity      float32 [B, C]     logging propensity of the shown element; 0.0 when absent
    click           float32 [B]        1.0 click, 0.0 no click
    user_id, ad_id, query_id, user_age, user_gender, category   int64 [B]   vocabulary indices
    query_segments  int64   [B, S]     vocabulary indices, 0 = padding; first S segments kept
    query_segments_mask bool [B, S]
    impression_id   pyarrow.StringArray [B]   kept aside (not a tensor), to write predictions

**Truncation rule.** A pool of ``n <= 15`` candidates fills slots ``0..n-1`` in pool order and the rest
is padding. A pool of ``n > 15`` keeps 15 candidates and never drops the shown element: if the shown
index ``e`` is below 15 the slots hold the original candidates ``0..14``; otherwise they hold
``0..13`` followed by ``e`` (slot 14). Either way the kept candidates stay in original pool order,
``exposed`` is the slot of the shown element, ``original_index`` records the original index of every
slot, and ``n_candidates`` keeps the full ``n``. A policy that picks slot ``s`` therefore chose the
original candidate ``original_index[s]`` (see :meth:`Batch.original_choice`).

**Vocabulary indices.** Every id field maps through :class:`Vocabularies`: ``0`` = padding / null
(no query, unknown age, ...), ``1`` = out of vocabulary (an id not seen when the vocabulary was built),
``2..`` = known ids in increasing id order. Build the vocabularies from the train split and reuse them
for the test split.

Quick start::

    ds = datasets.load_dataset(release_or_hub_id, split="train")
    train = torch_data.loader(ds, batch_size=1024)              # vocabularies built from ds
    train.vocabs.save("vocab.npz")                              # embedding sizes: train.vocabs.size(name)
    test = torch_data.loader(release_dir, split="test", vocabs="vocab.npz", cache_dir=None)
    for batch in train:                                         # a Batch; no collate needed
        batch = batch.to("cuda", non_blocking=True)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset as TorchIterableDataset

from genco_data.format.components import (
    CANDIDATE_COLUMNS,
    COMPONENTS,
    CONFIGS,
    EXPOSED_COLUMNS,
    N_COMPONENTS,
    PAD_TO,
    PROPENSITY_COLUMNS,
    candidates_col,
    exposed_col,
    propensity_col,
)
from genco_data.errors import InvalidInputError, SchemaError

# ---------------------------------------------------------------------------------------------
# Layout constants
# ---------------------------------------------------------------------------------------------
#: Query segments kept per row (the first ones; the rest are dropped).
SEGMENTS_PAD_TO = 16
PAD_INDEX = 0  #: vocabulary index of padding and of null values
OOV_INDEX = 1  #: vocabulary index of an id absent from the vocabulary
FIRST_INDEX = 2  #: vocabulary index of the smallest known id
#: Rows padded per vectorized call (large enough to amortize Python, small enough to stay in cache).
PAD_ROWS = 16384
#: Rows per shuffling buffer of the iterable dataset.
SHUFFLE_BUFFER = 131072
#: Version of the padded-cache layout (part of every cache key).
CACHE_VERSION = 1

#: Id fields hashed in hashing-trick mode; ``user_age``, ``user_gender``, ``category`` stay exact.
HASHABLE_NAMES: tuple[str, ...] = (*COMPONENTS, "user_id", "ad_id", "query_id", "query_segments")
#: Every vocabulary a :class:`Vocabularies` holds (a component's name is its pool vocabulary).
VOCAB_NAMES: tuple[str, ...] = (*HASHABLE_NAMES, "user_age", "user_gender", "category")
_INT_FIELDS = ("user_id", "ad_id", "query_id", "user_age", "user_gender")
_NULLABLE = frozenset({"query_id", "user_age", "user_gender", "category"})
#: Columns a table must have to be padded (``day`` and ``logging_policy`` are not read).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "impression_id",
    *_INT_FIELDS,
    "category",
    "query_segments",
    *CANDIDATE_COLUMNS,
    *EXPOSED_COLUMNS,
    *PROPENSITY_COLUMNS,
    "click",
)
_VOCAB_FORMAT = "genco-vocabularies"
_VOCAB_VERSION = 1
_MIX1, _MIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)

Source = Union[pa.Table, pa.RecordBatch, str, os.PathLike, Sequence[Union[str, os.PathLike]], Any]


# ---------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """Padded tensors for ``B`` impressions (layout in the module docstring).

    Fields, ``C = 6`` components in ``COMPONENTS`` order, ``P = 15``, ``S = 16``:

    - ``impression_id`` — ``pyarrow.StringArray [B]``, not a tensor; ``.to_pylist()`` gives strings and
      ``pa.table({"impression_id": batch.impression_id, ...})`` writes predictions without a copy.
    - ``candidates`` — int64 ``[B, C, P]``: vocabulary index of each kept candidate, ``0`` in padding.
    - ``mask`` — bool ``[B, C, P]``: ``True`` on real candidates (``candidates != 0``).
    - ``original_index`` — int16 ``[B, C, P]``: index of the slot's candidate in the original pool,
      ``-1`` in padding (see the truncation rule).
    - ``exposed`` — int64 ``[B, C]``: slot of the shown element, ``-1`` where the component is absent.
    - ``n_candidates`` — int64 ``[B, C]``: the full pool size before truncation, ``0`` where absent.
    - ``propensity`` — float32 ``[B, C]``: probability the logging policy showed that element;
      ``0.0`` (never NaN) where the component is absent.
    - ``click`` — float32 ``[B]``: ``1.0`` for a click, ``0.0`` otherwise (ready for BCE losses).
    - ``user_id``, ``ad_id``, ``query_id`` — int64 ``[B]``: vocabulary indices (``query_id`` null → 0).
    - ``user_age``, ``user_gender`` — int64 ``[B]``: vocabulary indices of the codes, null → 0.
    - ``category`` — int64 ``[B]``: vocabulary index of the category string, null → 0.
    - ``query_segments`` — int64 ``[B, S]``: vocabulary indices of the first ``S`` segments, 0-padded.
    - ``query_segments_mask`` — bool ``[B, S]``: ``True`` on real segments.
    """

    impression_id: pa.Array
    candidates: torch.Tensor
    mask: torch.Tensor
    original_index: torch.Tensor
    exposed: torch.Tensor
    n_candidates: torch.Tensor
    propensity: torch.Tensor
    click: torch.Tensor
    user_id: torch.Tensor
    ad_id: torch.Tensor
    query_id: torch.Tensor
    user_age: torch.Tensor
    user_gender: torch.Tensor
    category: torch.Tensor
    query_segments: torch.Tensor
    query_segments_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.impression_id)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensor fields by name (everything but ``impression_id``)."""
        return {name: getattr(self, name) for name in TENSOR_FIELDS}

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Batch":
        return Batch(impression_id=self.impression_id, **{k: fn(v) for k, v in self.tensors().items()})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """Every tensor moved to ``device`` (``non_blocking=True`` overlaps the copy when pinned)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        """Every tensor in page-locked memory (a ``DataLoader(pin_memory=True)`` calls this)."""
        return self._map(lambda t: t.pin_memory())

    def __getitem__(self, index: slice | np.ndarray | torch.Tensor) -> "Batch":
        """Rows ``index`` (a slice gives views; an integer array gathers copies)."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError(f"Batch slices must have step 1, got {step}")
            return Batch(
                impression_id=self.impression_id.slice(start, stop - start),
                **{k: v[start:stop] for k, v in self.tensors().items()},
            )
        idx = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        return Batch(
            impression_id=self.impression_id.take(pa.array(idx.numpy())),
            **{k: v.index_select(0, idx.to(v.device)) for k, v in self.tensors().items()},
        )

    def original_choice(self, slots: torch.Tensor) -> torch.Tensor:
        """Map chosen slots ``int64 [B, C]`` to indices into the original pools (``-1`` where absent).

        This is what a predictions file stores in ``<c>_choice``. A slot that is padding while the
        component is present raises :class:`InvalidInputError`.
        """
        if tuple(slots.shape) != tuple(self.exposed.shape):
            raise ValueError(f"slots must have shape {tuple(self.exposed.shape)}, got {tuple(slots.shape)}")
        present = self.n_candidates > 0
        s = slots.to(torch.int64).clamp(0, PAD_TO - 1)
        orig = self.original_index.gather(2, s.unsqueeze(-1)).squeeze(-1).to(torch.int64)
        bad = present & ((slots < 0) | (slots >= PAD_TO) | (orig < 0))
        if bool(bad.any()):
            b, c = (int(x) for x in bad.nonzero()[0])
            raise InvalidInputError(
                f"impression_id {self.impression_id[b].as_py()!r}: slot {int(slots[b, c])} chosen for "
                f"{COMPONENTS[c]} is padding (the pool has {int(self.n_candidates[b, c])} candidates)"
            )
        return torch.where(present, orig, torch.full_like(orig, -1))


TENSOR_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Batch) if f.name != "impression_id")

# A "block" is the numpy form of a Batch: {field: ndarray} plus "impression_id": pa.Array.
_Block = dict[str, Any]


def _block_to_batch(block: _Block) -> Batch:
    return Batch(
        impression_id=block["impression_id"],
        **{k: torch.from_numpy(block[k]) for k in TENSOR_FIELDS},
    )


def _block_slice(block: _Block, start: int, stop: int) -> _Block:
    out = {k: block[k][start:stop] for k in TENSOR_FIELDS}
    out["impression_id"] = block["impression_id"].slice(start, stop - start)
    return out


def _block_take(block: _Block, perm: np.ndarray) -> _Block:
    out = {k: np.take(block[k], perm, axis=0) for k in TENSOR_FIELDS}
    out["impression_id"] = block["impression_id"].take(pa.array(perm))
    return out


def _block_concat(blocks: list[_Block]) -> _Block:
    if len(blocks) == 1:
        return blocks[0]
    out = {k: np.concatenate([b[k] for b in blocks]) for k in TENSOR_FIELDS}
    out["impression_id"] = pa.concat_arrays([b["impression_id"] for b in blocks])
    return out


def _block_len(block: _Block) -> int:
    return len(block["impression_id"])


# ---------------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------------
class Vocabularies:
    """Hashed int64 ids → contiguous indices, one vocabulary per name in :data:`VOCAB_NAMES`.

    Index ``0`` is padding (and null), ``1`` out of vocabulary, known ids get ``2, 3, ...`` in
    increasing id order, so ``size(name) = distinct ids + 2`` sizes an embedding table. The six pool
    vocabularies (named by component) and ``query_segments`` hold the distinct ids of the rows they
    were built from — as the paper sizes its hash embeddings, built from the train split.

    Hashing-trick mode (``hash_buckets=K``): the names in :data:`HASHABLE_NAMES` map an id ``v`` to
    ``2 + mix(v) % K`` with the murmur3 64-bit finalizer ``mix`` (no stored ids; ``size = K + 2``);
    ``user_age``, ``user_gender`` and ``category`` always stay exact.

    Saved with :meth:`save` as one ``.npz`` file (no pickle: ids as int64 arrays, the rest as JSON).
    """

    def __init__(
        self,
        keys: Mapping[str, np.ndarray],
        categories: Sequence[str],
        hash_buckets: Mapping[str, int] | None = None,
    ) -> None:
        self.hash_buckets: dict[str, int] = dict(hash_buckets or {})
        for name, k in self.hash_buckets.items():
            if name not in HASHABLE_NAMES:
                raise ValueError(f"hash_buckets: {name!r} cannot be hashed; expected names from {HASHABLE_NAMES}")
            if int(k) < 1:
                raise ValueError(f"hash_buckets[{name!r}] must be >= 1, got {k}")
        self.keys: dict[str, np.ndarray] = {}
        for name in VOCAB_NAMES:
            if name == "category" or name in self.hash_buckets:
                continue
            if name not in keys:
                raise ValueError(f"missing vocabulary {name!r}")
            arr = np.asarray(keys[name], dtype=np.int64)
            if arr.ndim != 1 or (arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1]))):
                raise ValueError(f"vocabulary {name!r}: ids must be a strictly increasing 1-d int64 array")
            self.keys[name] = arr
        self.categories: list[str] = sorted(set(categories))
        self._category_set = pa.array(self.categories, type=pa.string())
        self._index: dict[str, Any] = {}

    # -- sizes ---------------------------------------------------------------------------------
    def size(self, name: str) -> int:
        """Rows an embedding table of ``name`` needs (padding and OOV included)."""
        if name not in VOCAB_NAMES:
            raise KeyError(f"unknown vocabulary {name!r}; expected one of {VOCAB_NAMES}")
        if name in self.hash_buckets:
            return int(self.hash_buckets[name]) + FIRST_INDEX
        if name == "category":
            return len(self.categories) + FIRST_INDEX
        return len(self.keys[name]) + FIRST_INDEX

    def sizes(self) -> dict[str, int]:
        return {name: self.size(name) for name in VOCAB_NAMES}

    # -- lookups -------------------------------------------------------------------------------
    def lookup(self, name: str, ids: np.ndarray) -> np.ndarray:
        """Vocabulary indices (int64) of the int64 ``ids`` of vocabulary ``name``; unknown → 1."""
        ids = np.asarray(ids, dtype=np.int64)
        buckets = self.hash_buckets.get(name)
        if buckets is not None:
            x = ids.view(np.uint64)
            x = (x ^ (x >> np.uint64(33))) * _MIX1
            x = (x ^ (x >> np.uint64(33))) * _MIX2
            x ^= x >> np.uint64(33)
            return (x % np.uint64(buckets)).astype(np.int64) + FIRST_INDEX
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = _make_index(self.keys[name])
        return index(ids)

    def lookup_category(self, values: pa.Array) -> np.ndarray:
        """Vocabulary indices of a string array; null → 0, unknown → 1."""
        pos = pc.index_in(values, value_set=self._category_set)
        out = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + FIRST_INDEX
        if values.null_count:
            out[np.asarray(values.is_null())] = PAD_INDEX
        return out

    # -- build / save / load -------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        source: Source,
        *,
        hash_buckets: int | Mapping[str, int] | None = None,
        block_rows: int = 65536,
        verify: bool = True,
    ) -> "Vocabularies":
        """Distinct ids of ``source``, streamed block by block (memory bounded by the vocabularies).

        ``source``: a release folder (its ``impressions`` train split is read), Parquet file(s), a
        ``pa.Table``, a ``datasets.Dataset`` (its rows after any ``select``/``shuffle``) or a
        ``datasets.IterableDataset`` (one full pass). ``hash_buckets``: an int hashes every name of
        :data:`HASHABLE_NAMES` into that many buckets; a mapping hashes only the names it lists.
        ``verify``: a release folder is checked against its manifest's sha256 first (see :func:`parquet_files`).
        """
        if isinstance(hash_buckets, int):
            hash_buckets = {name: hash_buckets for name in HASHABLE_NAMES}
        hash_buckets = dict(hash_buckets or {})
        exact = [n for n in VOCAB_NAMES if n != "category" and n not in hash_buckets]
        acc = {n: _UniqueAccumulator() for n in exact}
        categories: set[str] = set()
        columns = [*_vocab_columns(exact), "category"]
        for block in _iter_source_tables(source, columns, block_rows, verify=verify):
            for name in exact:
                col = _as_array(_column(block, _vocab_column(name)))
                if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                    col = _list_parts(col, _vocab_column(name))[1]
                acc[name].add(col.drop_null())
            categories.update(x for x in pc.unique(_as_array(_column(block, "category"))).to_pylist() if x is not None)
        return cls({n: a.result() for n, a in acc.items()}, sorted(categories), hash_buckets)

    def _meta(self) -> dict[str, Any]:
        return {
            "format": _VOCAB_FORMAT,
            "version": _VOCAB_VERSION,
            "hash_buckets": {k: int(v) for k, v in sorted(self.hash_buckets.items())},
            "categories": self.categories,
            "sizes": self.sizes(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` file (int64 id arrays + a JSON header); loadable without pickle."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = np.frombuffer(json.dumps(self._meta(), sort_keys=True).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as fh:  # a file object: numpy must not append ".npz" to the name
            np.savez(fh, __meta__=meta, **{f"keys.{n}": k for n, k in self.keys.items()})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabularies":
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
                keys = {name[len("keys."):]: z[name] for name in z.files if name.startswith("keys.")}
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"{path}: not a vocabularies file ({exc})") from None
        if meta.get("format") != _VOCAB_FORMAT or meta.get("version") != _VOCAB_VERSION:
            raise InvalidInputError(
                f"{path}: expected format {_VOCAB_FORMAT!r} version {_VOCAB_VERSION}, "
                f"got {meta.get('format')!r} version {meta.get('version')!r}"
            )
        return cls(keys, meta["categories"], meta["hash_buckets"])

    def fingerprint(self) -> str:
        """sha256 of the content (hex), e.g. to key caches of padded data."""
        h = hashlib.sha256(json.dumps(self._meta(), sort_keys=True).encode("utf-8"))
        for name in sorted(self.keys):
            h.update(name.encode("utf-8"))
            h.update(np.ascontiguousarray(self.keys[name]).tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabularies) and self.fingerprint() == other.fingerprint()

    def __getstate__(self) -> dict[str, Any]:  # lookup indexes are rebuilt lazily in each process
        return {"keys": self.keys, "categories": self.categories, "hash_buckets": self.hash_buckets}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["keys"], state["categories"], state["hash_buckets"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Vocabularies({', '.join(f'{k}={v}' for k, v in self.sizes().items())})"


def _make_index(keys: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """ids → indices over the sorted unique ``keys``: a hash-table lookup (pandas' khash table, which
    ``datasets`` brings along; ~8-40 ns per id) when available, else ``np.searchsorted`` (same result,
    2-5x slower on large vocabularies)."""
    try:
        from pandas._libs.hashtable import Int64HashTable
    except ImportError:  # pragma: no cover - pandas is a dependency of datasets
        return lambda ids: _searchsorted_lookup(keys, ids)
    table = Int64HashTable(max(len(keys), 1))
    table.map_locations(keys)

    def lookup(ids: np.ndarray) -> np.ndarray:
        out = table.lookup(np.ascontiguousarray(ids, dtype=np.int64))
        out += FIRST_INDEX  # -1 (missing) becomes OOV_INDEX
        return out

    return lookup


def _searchsorted_lookup(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    if len(keys) == 0:
        return np.full(len(ids), OOV_INDEX, np.int64)
    pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    return np.where(keys[pos] == ids, pos + FIRST_INDEX, OOV_INDEX)


class _UniqueAccumulator:
    """Sorted distinct int64 values, merged in batches (bounded by the result size)."""

    def __init__(self) -> None:
        self._done = np.empty(0, np.int64)
        self._parts: list[np.ndarray] = []
        self._pending = 0

    def add(self, values: pa.Array) -> None:
        u = pc.unique(values).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        self._parts.append(u)
        self._pending += len(u)
        if self._pending > max(1 << 20, 2 * len(self._done)):
            self._merge()

    def _merge(self) -> None:
        self._done = np.unique(np.concatenate([self._done, *self._parts]))
        self._parts, self._pending = [], 0

    def result(self) -> np.ndarray:
        self._merge()
        return self._done


def _vocab_column(name: str) -> str:
    return candidates_col(name) if name in COMPONENTS else name


def _vocab_columns(names: Sequence[str]) -> list[str]:
    return [_vocab_column(n) for n in names]


# ---------------------------------------------------------------------------------------------
# Arrow helpers
# ---------------------------------------------------------------------------------------------
def _column(table: pa.Table | pa.RecordBatch, name: str) -> pa.Array | pa.ChunkedArray:
    try:
        return table.column(name)
    except KeyError:
        raise SchemaError(f"missing column {name!r} (expected the impressions schema)") from None


def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        return col.combine_chunks() if col.num_chunks else pa.array([], type=col.type)
    return col


def _list_parts(arr: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """(offsets int64 [B+1] starting at 0, flat int64 values) of a list column."""
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise SchemaError(f"column {name!r}: expected list<int64>, got {arr.type}")
    offs = arr.offsets.to_numpy().astype(np.int64, copy=False)
    base = int(offs[0])
    values = arr.values.slice(base, int(offs[-1]) - base)
    if base:
        offs = offs - base
    if not pa.types.is_integer(values.type):
        raise SchemaError(f"column {name!r}: expected list<int64>, got {arr.type}")
    if values.null_count:
        raise InvalidInputError(f"column {name!r}: null id inside a list")
    if values.type != pa.int64():
        values = values.cast(pa.int64())
    return offs, values


def _check_schema(schema: pa.Schema) -> None:
    if schema in _GOOD_SCHEMAS:
        return
    _check_schema_now(schema)
    if len(_GOOD_SCHEMAS) < 64:
        _GOOD_SCHEMAS.append(schema)


_GOOD_SCHEMAS: list[pa.Schema] = []


def _check_schema_now(schema: pa.Schema) -> None:
    missing = [c for c in REQUIRED_COLUMNS if schema.get_field_index(c) < 0]
    if missing:
        raise SchemaError(f"missing column(s) {missing} (expected the impressions schema: genco_data.format.arrow.impressions_schema())")
    for name in ("query_segments", *CANDIDATE_COLUMNS):
        t = schema.field(name).type
        if not ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)):
            raise SchemaError(f"column {name!r}: expected list<int64>, got {t}")
    for name in (*_INT_FIELDS, *EXPOSED_COLUMNS, "click"):
        t = schema.field(name).type
        if not (pa.types.is_integer(t) or pa.types.is_boolean(t)):
            raise SchemaError(f"column {name!r}: expected an integer type, got {t}")
    for name in PROPENSITY_COLUMNS:
        t = schema.field(name).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            raise SchemaError(f"column {name!r}: expected float32, got {t}")
    for name in ("impression_id", "category"):
        t = schema.field(name).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
            raise SchemaError(f"column {name!r}: expected string, got {t}")


_ARANGE = np.arange(1 << 20, dtype=np.int64)
# Row k of these tables is the mask / original_index pattern of a pool with k kept candidates; a
# row gather (np.take on axis 0) is ~5x faster than building [B, C, P] by broadcasting.
_MASK_BY_KEPT = np.arange(PAD_TO + 1)[:, None] > np.arange(PAD_TO)
_ORIG_BY_KEPT = np.where(_MASK_BY_KEPT, np.arange(PAD_TO), -1).astype(np.int16)


def _zeros(n: int, dtype: Any) -> np.ndarray:
    # np.zeros of a large array maps fresh pages (a page fault per 4 KiB); empty + fill reuses the heap
    out = np.empty(n, dtype)
    out.fill(0)
    return out


def _arange(n: int) -> np.ndarray:
    global _ARANGE
    if n > len(_ARANGE):
        _ARANGE = np.arange(max(n, 2 * len(_ARANGE)), dtype=np.int64)
    return _ARANGE[:n]


def _truncate(offs: np.ndarray, n: np.ndarray, values: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of the lists cut to their first ``keep`` items."""
    pos = _arange(len(values)) - np.repeat(offs[:-1], n)
    new_offs = np.zeros(len(offs), np.int64)
    np.cumsum(np.minimum(n, keep), out=new_offs[1:])
    return new_offs, values[pos < keep]


def _valid(arr: pa.Array) -> np.ndarray | None:
    """Validity of a primitive array as bool numpy (None when it has no nulls), straight from the bitmap."""
    if not arr.null_count:
        return None
    bits = np.frombuffer(arr.buffers()[0], np.uint8)
    return np.unpackbits(bits, bitorder="little", count=arr.offset + len(arr))[arr.offset :].view(bool)


def _values(arr: pa.Array, fill: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(values as ``dtype`` with nulls set to ``fill``, validity or None) of a primitive array.

    Reads the value buffer directly (no compute-kernel call: this runs ~20 times per batch)."""
    valid = _valid(arr)
    if pa.types.is_boolean(arr.type):
        raw = arr.to_numpy(zero_copy_only=False) if valid is None else arr.fill_null(False).to_numpy(zero_copy_only=False)
    else:
        raw = np.frombuffer(arr.buffers()[1], arr.type.to_pandas_dtype())[arr.offset : arr.offset + len(arr)]
    out = raw.astype(dtype)  # a copy: the buffer may be shared and read-only
    if valid is not None:
        out[~valid] = fill
    return out, valid


def _ints(arr: pa.Array, fill: int) -> np.ndarray:
    return _values(arr, fill, np.int64)[0]


# ---------------------------------------------------------------------------------------------
# Padding (the core): public validates, private computes
# ---------------------------------------------------------------------------------------------
def pad_table(
    table: pa.Table | pa.RecordBatch,
    vocabs: Vocabularies,
    *,
    max_segments: int = SEGMENTS_PAD_TO,
) -> Batch:
    """Pad an Arrow table of impressions (the ``impressions`` schema) into a :class:`Batch`.

    Vectorized over whole columns (list offsets + flat values); extra columns are ignored. Rows that
    break an invariant (exposed out of range, exposed null with a non-empty pool or set on an empty one,
    a missing or NaN propensity, a null click/id) raise :class:`InvalidInputError` naming the row and the
    column; a missing or mistyped column raises :class:`SchemaError`.
    """
    if not isinstance(table, (pa.Table, pa.RecordBatch)):
        raise TypeError(f"pad_table expects a pyarrow Table or RecordBatch, got {type(table).__name__}")
    if not isinstance(vocabs, Vocabularies):
        raise TypeError(f"vocabs must be a Vocabularies, got {type(vocabs).__name__}")
    _check_schema(table.schema)
    return _block_to_batch(_pad_block(table, vocabs, max_segments))


def _describe_row(table: pa.Table | pa.RecordBatch, i: int, where: Callable[[int], str] | None) -> str:
    iid = _as_array(table.column("impression_id"))[i].as_py()
    return f"{where(i) if where else f'row {i}'} (impression_id {iid!r})"


def _pad_block(
    table: pa.Table | pa.RecordBatch,
    vocabs: Vocabularies,
    max_segments: int = SEGMENTS_PAD_TO,
    where: Callable[[int], str] | None = None,
) -> _Block:
    """Private compute of :func:`pad_table` on a schema-checked table → numpy block.

    For every component: ``n`` = pool sizes from the offsets; the first 15 ids of every pool are
    looked up once on the flat values and scattered into ``[B, C, P]`` at ``b*C*P + c*P + slot``;
    rows whose shown index is >= 15 then get slot 14 overwritten with the shown element.
    """
    B = table.num_rows
    C, P = N_COMPONENTS, PAD_TO
    n = np.empty((B, C), np.int64)
    e = np.empty((B, C), np.int64)
    prop = np.empty((B, C), np.float32)
    flat_parts: list[np.ndarray] = []
    adj_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    fixes: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []
    slot_base = _arange(B) * (C * P)
    gbase = 0
    for ci, comp in enumerate(COMPONENTS):
        name = candidates_col(comp)
        offs, values = _list_parts(_as_array(table.column(name)), name)
        nc = offs[1:] - offs[:-1]
        n[:, ci] = nc
        ex = _as_array(table.column(exposed_col(comp)))
        ec, ev = _values(ex, -1, np.int64)
        present = nc > 0
        if ev is not None:
            bad = np.where(present, (ec < 0) | (ec >= nc), ev)
        else:
            bad = ~present | (ec < 0) | (ec >= nc)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raw = ex[i].as_py()
            raise InvalidInputError(
                f"{_describe_row(table, i, where)}: column {exposed_col(comp)!r} is {raw!r} for a pool of "
                f"{int(nc[i])} candidates (expected 0 <= exposed < n, null iff the pool is empty)"
            )
        e[:, ci] = ec
        pr = _as_array(table.column(propensity_col(comp)))
        pv, _ = _values(pr, np.nan, np.float32)
        bad = present & ~((pv > 0) & (pv <= 1))  # also catches nulls (NaN here)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"{_describe_row(table, i, where)}: column {propensity_col(comp)!r} is {pr[i].as_py()!r} "
                f"(expected a probability in (0, 1] where the pool is non-empty)"
            )
        prop[:, ci] = np.where(present, pv, np.float32(0.0))
        vals_np = values.to_numpy()
        if len(nc) and int(nc.max()) > P:
            keep_offs, keep_vals = _truncate(offs, nc, vals_np, P)
            far = np.flatnonzero(ec >= P)
            if len(far):
                fixes.append((far, ci, vocabs.lookup(comp, vals_np[offs[far] + ec[far]]), ec[far]))
        else:
            keep_offs, keep_vals = offs, vals_np
        flat_parts.append(vocabs.lookup(comp, keep_vals))
        adj_parts.append(slot_base + (ci * P - gbase) - keep_offs[:-1])
        count_parts.append(keep_offs[1:] - keep_offs[:-1])
        gbase += len(keep_vals)
    # one scatter for all six components: flat value i of row b goes to b*C*P + c*P + (i - start)
    dest = np.repeat(np.concatenate(adj_parts), np.concatenate(count_parts))
    dest += _arange(gbase)
    cand = _zeros(B * C * P, np.int64)
    cand[dest] = np.concatenate(flat_parts)
    cand = cand.reshape(B, C, P)
    k = np.minimum(n, P)
    mask = np.take(_MASK_BY_KEPT, k, axis=0)
    orig = np.take(_ORIG_BY_KEPT, k, axis=0)
    exposed = e
    if fixes:
        exposed = e.copy()
        for rows, ci, ids, shown in fixes:
            cand[rows, ci, P - 1] = ids
            orig[rows, ci, P - 1] = shown
            exposed[rows, ci] = P - 1
    block: _Block = {
        "candidates": cand,
        "mask": mask,
        "original_index": orig,
        "exposed": exposed,
        "n_candidates": n,
        "propensity": prop,
    }
    block.update(_pad_context(table, vocabs, max_segments, where))
    return block


def _pad_context(
    table: pa.Table | pa.RecordBatch, vocabs: Vocabularies, max_segments: int, where: Callable[[int], str] | None
) -> _Block:
    B = table.num_rows
    out: _Block = {}
    for name in ("impression_id", "user_id", "ad_id", "click"):
        arr = _as_array(table.column(name))
        if arr.null_count:
            i = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
            raise InvalidInputError(f"{where(i) if where else f'row {i}'}: column {name!r} is null")
    click = _as_array(table.column("click"))
    cv = click.to_numpy(zero_copy_only=False)
    bad = (cv != 0) & (cv != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"{_describe_row(table, i, where)}: column 'click' is {click[i].as_py()!r} (expected 0 or 1)")
    out["click"] = cv.astype(np.float32)
    for name in _INT_FIELDS:
        ids, valid = _values(_as_array(table.column(name)), 0, np.int64)
        idx = vocabs.lookup(name, ids)
        if valid is not None:
            idx[~valid] = PAD_INDEX
        out[name] = idx
    out["category"] = vocabs.lookup_category(_as_array(table.column("category")))
    offs, values = _list_parts(_as_array(table.column("query_segments")), "query_segments")
    ns = offs[1:] - offs[:-1]
    S = max_segments
    vals_np = values.to_numpy()
    if len(ns) and int(ns.max()) > S:
        offs, vals_np = _truncate(offs, ns, vals_np, S)
        ns = offs[1:] - offs[:-1]
    seg = _zeros(B * S, np.int64)
    dest = np.repeat(_arange(B) * S - offs[:-1], ns)
    dest += _arange(len(vals_np))
    seg[dest] = vocabs.lookup("query_segments", vals_np)
    out["query_segments"] = seg.reshape(B, S)
    out["query_segments_mask"] = ns[:, None] > np.arange(S)
    out["impression_id"] = _as_array(table.column("impression_id"))
    return out


# ---------------------------------------------------------------------------------------------
# Sources: what a user may pass
# ---------------------------------------------------------------------------------------------
def _is_hf_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets.") and type(obj).__name__ == "Dataset"


def _is_hf_iterable(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets.") and type(obj).__name__ == "IterableDataset"


def _is_pathlike(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def parquet_files(
    source: str | os.PathLike | Sequence[str | os.PathLike], split: str = "train", config: str = CONFIGS[0], *, verify: bool = True
) -> list[Path]:
    """Parquet shards of a release folder's ``config``/``split`` (via its manifest), of a directory of
    ``*.parquet`` files, of one file, or of a list of files — in order.

    ``verify``: a release folder is first checked against its manifest (listing, sizes, sha256 of every
    file; :func:`genco_data.release.verify_checksums`, cached per process so repeated opens only ``stat``)
    and refused with ``IntegrityError`` when corrupted; ``verify=False`` skips that for speed."""
    if _is_pathlike(source):
        p = Path(source)
        if p.is_dir():
            from genco_data.release import MANIFEST_NAME, Release

            if (p / MANIFEST_NAME).is_file():
                files = Release.open(p, verify=verify).data_files(config, split)
            else:
                files = sorted(p.glob("*.parquet"))
            if not files:
                raise InvalidInputError(f"{p}: no Parquet files for config {config!r}, split {split!r}")
            return files
        if not p.is_file():
            raise InvalidInputError(f"{p}: no such file or directory")
        return [p]
    files = [Path(f) for f in source]
    if not files:
        raise InvalidInputError("no Parquet files given")
    return files


def _iter_source_tables(source: Source, columns: list[str], block_rows: int, verify: bool = True) -> Iterator[pa.Table]:
    """Arrow blocks of any supported source, only ``columns``."""
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        table = pa.Table.from_batches([source]) if isinstance(source, pa.RecordBatch) else source
        _check_columns(table.schema, columns)
        for off in range(0, table.num_rows, block_rows):
            yield table.slice(off, block_rows).select(columns)
    elif isinstance(source, MapDataset):
        for off in range(0, len(source), block_rows):
            yield source.rows(np.arange(off, min(len(source), off + block_rows))).select(columns)
    elif _is_hf_dataset(source):
        _check_columns(source.data.schema, columns)
        yield from source.select_columns(columns).with_format("arrow").iter(batch_size=block_rows)
    elif _is_hf_iterable(source):
        yield from source.select_columns(columns).with_format("arrow").iter(batch_size=block_rows)
    elif _is_pathlike(source) or isinstance(source, (list, tuple)):
        for f in parquet_files(source, verify=verify):
            pf = pq.ParquetFile(f, memory_map=True)
            _check_columns(pf.schema_arrow, columns)
            for rb in pf.iter_batches(batch_size=block_rows, columns=columns, use_threads=False):
                yield pa.Table.from_batches([rb])
    else:
        raise TypeError(
            "expected a release folder, Parquet path(s), a pyarrow Table, a datasets.Dataset or "
            f"datasets.IterableDataset, got {type(source).__name__}"
        )


def _check_columns(schema: pa.Schema, columns: Sequence[str]) -> None:
    missing = [c for c in columns if schema.get_field_index(c) < 0]
    if missing:
        raise SchemaError(f"missing column(s) {missing} (expected the impressions schema)")


# ---------------------------------------------------------------------------------------------
# Map-style dataset
# ---------------------------------------------------------------------------------------------
class MapDataset(TorchDataset):
    """Random access to padded rows of a ``pa.Table``, a ``datasets.Dataset`` or a release folder.

    ``__getitems__(indices)`` pads a whole batch at once (``DataLoader`` calls it when present), so a
    loader never builds rows one by one; ``ds[i]`` is a one-row :class:`Batch`. A release folder is read
    with pyarrow (memory-mapped Parquet, decoded once into RAM — use :class:`StreamingDataset` to stream
    data larger than memory). An HF ``Dataset`` is read through its Arrow table, honouring its indices
    mapping (after ``select``/``shuffle``/``train_test_split``). ``vocabs=None`` builds the vocabularies
    from the same rows (from the *train* split for a release folder). ``verify``: a release folder is
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
            if vocabs is None and _is_pathlike(source) and split != "train":
                vocabs = Vocabularies.build(parquet_files(source, "train", config, verify=verify))
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
        self.vocabs = vocabs if vocabs is not None else Vocabularies.build(self)

    def __len__(self) -> int:
        return len(self._indices) if self._indices is not None else self.table.num_rows

    def _grouped(self, rows: np.ndarray) -> tuple[pa.Table, np.ndarray | None]:
        """(Arrow rows ``rows`` grouped by chunk, order such that ``grouped[i] = rows[order[i]]``, or None
        when ``grouped`` is already in the requested order)."""
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and bool(np.all(np.diff(rows) == 1)):
            return self.table.slice(int(rows[0]), len(rows)), None  # contiguous: zero copy
        if len(self._chunks) <= 1:
            return self.table.take(pa.array(rows)), None
        chunk = np.searchsorted(self._starts, rows, side="right") - 1
        order = np.argsort(chunk, kind="stable")
        bounds = np.searchsorted(chunk[order], np.arange(len(self._chunks) + 1))
        parts = [
            self._chunks[c].take(pa.array(rows[order[bounds[c] : bounds[c + 1]]] - self._starts[c]))
            for c in range(len(self._chunks))
            if bounds[c + 1] > bounds[c]
        ]
        return pa.Table.from_batches(parts, schema=self.table.schema), order

    def rows(self, keys: np.ndarray) -> pa.Table:
        """Arrow rows at dataset positions ``keys`` (int64, non-negative), indices mapping applied."""
        table, order = self._grouped(self._indices[keys] if self._indices is not None else keys)
        if order is None:
            return table
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))

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


@dataclass(frozen=True)
class _Unit:
    file: int
    row_group: int
    rows: int


class StreamingDataset(TorchIterableDataset):
    """Padded :class:`Batch` objects streamed from Parquet shards or an HF ``datasets.IterableDataset``.

    Yields whole batches (use ``DataLoader(ds, batch_size=None)``, which :func:`loader` does).

    **Sharding.** With ``R`` DDP ranks (``rank``/``world_size``, default from ``torch.distributed`` when
    initialized) × ``W`` DataLoader workers there are ``G = R*W`` readers; reader ``g = rank*W + worker``.
    For Parquet, each epoch orders the row groups of all shards (a permutation from ``(seed, epoch)``
    when ``shuffle``) and gives reader ``g`` the contiguous rows ``[g*N//G, (g+1)*N//G)`` of that order,
    reading only the row groups they touch — every row exactly once per epoch, readers within one row of
    each other. For an HF ``IterableDataset`` the split is ``datasets.distributed.split_dataset_by_node``
    (whole shards when ``G`` divides ``n_shards``, else every ``G``-th row) and ``set_epoch`` is
    forwarded. ``drop_last`` trims every Parquet reader to ``N//G`` rows and drops short batches, so all
    ranks step equally (use it for DDP); without it every row is seen exactly once.

    **Shuffling.** ``shuffle`` permutes row groups (Parquet) and then rows within a buffer of
    ``shuffle_buffer`` consecutive rows of a reader; deterministic given ``(seed, epoch)`` and the
    ``(R, W)`` layout. Call :meth:`set_epoch` before each epoch (it reaches persistent workers too).
    Without ``shuffle`` rows come in file order — the paper's chronological training order.

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
        vocabs: Vocabularies | None = None,
        *,
        batch_size: int = 1024,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        split: str = "train",
        config: str = CONFIGS[0],
        max_segments: int = SEGMENTS_PAD_TO,
        pad_rows: int = PAD_ROWS,
        cache_dir: str | os.PathLike | None = None,
        verify: bool = True,
    ) -> None:
        _check_positive(batch_size=batch_size, shuffle_buffer=shuffle_buffer, pad_rows=pad_rows)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._vocab_fp: str | None = None
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), bool(shuffle), int(seed), bool(drop_last)
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.shuffle_buffer, self.max_segments, self.pad_rows = int(shuffle_buffer), int(max_segments), int(pad_rows)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._hf = None
        self.files: list[Path] = []
        self.units: list[_Unit] = []
        if _is_hf_iterable(source):
            if source.features is not None:
                _check_columns(pa.schema(source.features.arrow_schema), REQUIRED_COLUMNS)
            self._hf = source
            if self.cache_dir is not None:
                raise ValueError("cache_dir needs Parquet files (a release folder or paths), not an HF stream")
        elif _is_pathlike(source) or isinstance(source, (list, tuple)):
            self.files = parquet_files(source, split, config, verify=verify)
            for fi, f in enumerate(self.files):
                pf = pq.ParquetFile(f)
                _check_schema(pf.schema_arrow)
                self.units += [_Unit(fi, g, pf.metadata.row_group(g).num_rows) for g in range(pf.num_row_groups)]
            if vocabs is None and _is_pathlike(source) and split != "train":
                vocabs = Vocabularies.build(parquet_files(source, "train", config, verify=verify))
        else:
            raise TypeError(
                "StreamingDataset expects a release folder, Parquet path(s) or a datasets.IterableDataset, "
                f"got {type(source).__name__} (use MapDataset for a Table or datasets.Dataset)"
            )
        self.vocabs = vocabs if vocabs is not None else Vocabularies.build(self._hf if self._hf is not None else self.files)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def num_rows(self) -> int | None:
        """Rows per epoch over all readers (None for an HF stream)."""
        return sum(u.rows for u in self.units) if self._hf is None else None

    def reader_plan(self, g: int, G: int, epoch: int) -> list[tuple[int, int, int, int]]:
        """``(file, row_group, start, stop)`` slices reader ``g`` of ``G`` reads in ``epoch``, in order."""
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
            if self.shuffle
            else np.arange(len(self.units))
        )
        N = sum(u.rows for u in self.units)
        if self.drop_last:
            lo, hi = g * (N // G), (g + 1) * (N // G)
        else:
            lo, hi = g * N // G, (g + 1) * N // G
        plan, pos = [], 0
        for ui in order:
            u = self.units[int(ui)]
            a, b = max(lo, pos), min(hi, pos + u.rows)
            if a < b:
                plan.append((u.file, u.row_group, a - pos, b - pos))
            pos += u.rows
            if pos >= hi:
                break
        return plan

    def _unit_tables(
        self, fi: int, rg: int, a: int, b: int, handles: dict[int, pq.ParquetFile]
    ) -> Iterator[tuple[pa.Table, Callable[[int], str]]]:
        pf = handles.get(fi)
        if pf is None:
            pf = handles[fi] = pq.ParquetFile(self.files[fi], memory_map=True)
        t = pf.read_row_group(rg, columns=list(REQUIRED_COLUMNS), use_threads=False)
        first = sum(pf.metadata.row_group(i).num_rows for i in range(rg))
        for s in range(a, b, self.pad_rows):
            e = min(b, s + self.pad_rows)
            yield t.slice(s, e - s), (lambda i, f=self.files[fi], base=first + s: f"{f.name} row {base + i}")

    def _parquet_blocks(self, g: int, G: int, epoch: int) -> Iterator[_Block]:
        handles: dict[int, pq.ParquetFile] = {}
        for fi, rg, a, b in self.reader_plan(g, G, epoch):
            if self.cache_dir is None:
                for t, where in self._unit_tables(fi, rg, a, b, handles):
                    yield _pad_block(t, self.vocabs, self.max_segments, where)
                continue
            unit = self.cache_dir / self._cache_key(fi, rg)
            if not unit.is_dir():
                self._write_cache(fi, rg, unit, handles)
            arrays = {k: np.load(unit / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in TENSOR_FIELDS}
            with pa.memory_map(str(unit / "impression_id.arrow")) as src:
                ids = _as_array(pa.ipc.open_file(src).read_all().column(0))
            for s in range(a, b, self.pad_rows):
                e = min(b, s + self.pad_rows)
                # shuffling gathers rows out of these views anyway; otherwise copy out of the page cache
                block = {k: (v[s:e] if self.shuffle else np.array(v[s:e])) for k, v in arrays.items()}
                block["impression_id"] = ids.slice(s, e - s)
                yield block

    def _cache_key(self, fi: int, rg: int) -> str:
        if self._vocab_fp is None:
            self._vocab_fp = self.vocabs.fingerprint()
        f = self.files[fi].resolve()
        st = f.stat()
        ident = f"{CACHE_VERSION}|{f}|{st.st_size}|{st.st_mtime_ns}|{rg}|{self.max_segments}|{self._vocab_fp}"
        return f"{f.stem}-rg{rg:05d}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"

    def _write_cache(self, fi: int, rg: int, unit: Path, handles: dict[int, pq.ParquetFile]) -> None:
        """Pad a whole row group into ``unit/`` (one .npy per tensor field + impression_id.arrow);
        written under a temporary name and renamed, so concurrent readers never see a partial unit."""
        rows = next(u.rows for u in self.units if u.file == fi and u.row_group == rg)
        tmp = unit.with_name(f"{unit.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
        tmp.mkdir(parents=True)
        try:
            out: dict[str, np.ndarray] = {}
            ids = []
            for t, where in self._unit_tables(fi, rg, 0, rows, handles):
                block = _pad_block(t, self.vocabs, self.max_segments, where)
                if not out:
                    out = {
                        k: np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=v.dtype, shape=(rows, *v.shape[1:]))
                        for k, v in block.items() if k != "impression_id"
                    }
                    pos = 0
                n = _block_len(block)
                for k, arr in out.items():
                    arr[pos : pos + n] = block[k]
                ids.append(block["impression_id"])
                pos += n
            for arr in out.values():
                arr.flush()
            del out
            table = pa.table({"impression_id": pa.concat_arrays(ids)})
            with pa.OSFile(str(tmp / "impression_id.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
            os.rename(tmp, unit)
        except OSError:
            if not unit.is_dir():  # a real failure, not a concurrent reader that renamed first
                raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _hf_tables(self, g: int, G: int, epoch: int) -> Iterator[tuple[pa.Table, Callable[[int], str]]]:
        from datasets.distributed import split_dataset_by_node

        ds = split_dataset_by_node(self._hf, rank=g, world_size=G) if G > 1 else self._hf
        ds.set_epoch(epoch)
        seen = 0
        for t in ds.select_columns(list(REQUIRED_COLUMNS)).with_format("arrow").iter(batch_size=self.pad_rows):
            _check_schema(t.schema)
            yield t, (lambda i, base=seen: f"stream row {base + i} of reader {g}")
            seen += t.num_rows

    def _blocks(self, g: int, G: int, epoch: int) -> Iterator[_Block]:
        if self._hf is None:
            yield from self._parquet_blocks(g, G, epoch)
            return
        for t, where in self._hf_tables(g, G, epoch):
            if t.num_rows:
                yield _pad_block(t, self.vocabs, self.max_segments, where)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        g, G = _worker_slot(self.rank, self.world_size)
        blocks = self._blocks(g, G, epoch)
        if self.shuffle:
            blocks = _shuffled(blocks, self.shuffle_buffer, self.batch_size, np.random.default_rng([self.seed, epoch, g, G]))
        yield from _rebatch(blocks, self.batch_size, self.drop_last)


def _shuffled(blocks: Iterator[_Block], buffer_rows: int, batch_size: int, rng: np.random.Generator) -> Iterator[_Block]:
    """Fill a buffer of ``buffer_rows`` rows, permute it, and hand it out ``batch_size`` rows at a time
    (each piece gathered straight from the buffer: one copy, into small reusable allocations)."""
    pending: list[_Block] = []
    rows = 0

    def drain() -> Iterator[_Block]:
        buf = _block_concat(pending)
        perm = rng.permutation(_block_len(buf))
        for s in range(0, len(perm), batch_size):
            yield _block_take(buf, perm[s : s + batch_size])

    for b in blocks:
        pending.append(b)
        rows += _block_len(b)
        if rows >= buffer_rows:
            yield from drain()
            pending, rows = [], 0
    if pending:
        yield from drain()


def _rebatch(blocks: Iterator[_Block], batch_size: int, drop_last: bool) -> Iterator[Batch]:
    """Batches of exactly ``batch_size`` rows (views when they fit in one block) + a short last one."""
    carry: _Block | None = None
    for b in blocks:
        if carry is not None:
            need = batch_size - _block_len(carry)
            if _block_len(b) < need:
                carry = _block_concat([carry, b])
                continue
            yield _block_to_batch(_block_concat([carry, _block_slice(b, 0, need)]))
            b = _block_slice(b, need, _block_len(b))
            carry = None
        n = _block_len(b)
        full = n - n % batch_size
        for s in range(0, full, batch_size):
            yield _block_to_batch(_block_slice(b, s, s + batch_size))
        if full < n:
            carry = _block_slice(b, full, n)
    if carry is not None and not drop_last:
        yield _block_to_batch(carry)


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
    max_segments: int = SEGMENTS_PAD_TO,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> BatchLoader:
    """A DataLoader of padded :class:`Batch` objects over ``ds``.

    ``ds``: a ``datasets.Dataset`` (e.g. ``load_dataset(path, split="train")``) or ``pa.Table`` →
    map-style (:class:`MapDataset` + :class:`ShardedBatchSampler`); a ``datasets.IterableDataset``
    (``streaming=True``) → :class:`StreamingDataset`; a release folder or Parquet path(s) → streamed
    (:class:`StreamingDataset`) unless ``streaming=False``, reading ``config``/``split``.

    ``vocabs``: a :class:`Vocabularies`, a path saved by :meth:`Vocabularies.save`, or None to build them
    from ``ds`` itself (for a release folder: from its train split). For a test split, pass the train
    vocabularies. ``rank``/``world_size`` default to ``torch.distributed`` when initialized: every row is
    seen exactly once per epoch across ranks × workers (``drop_last`` trades that for equal step counts).
    Call ``loader.set_epoch(epoch)`` before each epoch when shuffling. ``cache_dir`` keeps padded row
    groups on disk for streamed Parquet (see :class:`StreamingDataset`). ``verify``: a release folder is
    checked against its manifest's sha256 before reading (``IntegrityError`` when corrupted; cached per
    process); False skips it.
    """
    if type(ds).__name__ in ("DatasetDict", "IterableDatasetDict"):
        raise TypeError(f"loader expects one split, got a {type(ds).__name__} with {list(ds)}; pass e.g. ds['train']")
    if vocabs is not None and not isinstance(vocabs, Vocabularies):
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
            max_segments=max_segments, cache_dir=cache_dir, verify=verify,
        )
        out = BatchLoader(dataset, batch_size=None, **kw)
    else:
        if cache_dir is not None:
            raise ValueError("cache_dir applies to streamed Parquet (streaming=True), not to a map-style dataset")
        dataset = ds if isinstance(ds, MapDataset) else MapDataset(ds, vocabs, split=split, config=config, max_segments=max_segments, verify=verify)
        sampler = ShardedBatchSampler(
            len(dataset), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size
        )
        out = BatchLoader(dataset, batch_sampler=sampler, **kw)
    out.vocabs = dataset.vocabs
    return out


__all__ = [
    "SEGMENTS_PAD_TO",
    "PAD_INDEX",
    "OOV_INDEX",
    "FIRST_INDEX",
    "VOCAB_NAMES",
    "HASHABLE_NAMES",
    "REQUIRED_COLUMNS",
    "TENSOR_FIELDS",
    "Batch",
    "Vocabularies",
    "pad_table",
    "parquet_files",
    "MapDataset",
    "ShardedBatchSampler",
    "StreamingDataset",
    "BatchLoader",
    "loader",
]
