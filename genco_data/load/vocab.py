"""Vocabularies: hashed int64 ids -> contiguous embedding indices, exact or by the hashing trick (torch-free).

**Vocabulary indices.** Every id field maps through :class:`Vocabularies`: ``0`` = padding / null
(no query, unknown age, ...), ``1`` = out of vocabulary (an id not seen when the vocabulary was built),
``2..`` = known ids in increasing id order. Build the vocabularies from the train split and reuse them
for the test split.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genco_data.errors import InvalidInputError
from genco_data.format.components import COMPONENTS, candidates_col
from genco_data.load.padding import FIRST_INDEX, OOV_INDEX, PAD_INDEX, _as_array, _column, _list_parts
from genco_data.load.sources import Source, _iter_source_tables

#: Id fields hashed in hashing-trick mode; ``user_age``, ``user_gender``, ``category`` stay exact.
HASHABLE_NAMES: tuple[str, ...] = (*COMPONENTS, "user_id", "ad_id", "query_id", "query_segments")
#: Every vocabulary a :class:`Vocabularies` holds (a component's name is its pool vocabulary).
VOCAB_NAMES: tuple[str, ...] = (*HASHABLE_NAMES, "user_age", "user_gender", "category")
_VOCAB_FORMAT = "genco-vocabularies"
_VOCAB_VERSION = 1
_MIX1, _MIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


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
        ``verify``: a release folder is checked against its manifest's sha256 first (see :func:`~genco_data.load.sources.parquet_files`).
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


__all__ = ["HASHABLE_NAMES", "VOCAB_NAMES", "Vocabularies"]
