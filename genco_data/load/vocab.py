"""Vocabularies: int64 ids -> embedding-table rows, hashed (the default, as the paper) or exact (torch-free).

**Rows.** Every id field maps through :class:`Vocabularies`: row ``0`` = padding / null (no query, unknown
age, ...), ``1`` = out of vocabulary, ``2..`` = the table proper. Each name holds one of:

- *hashed* (the default for the id tables of :data:`HASHABLE_NAMES`): ``2 + bucket(id)`` over ``K`` buckets with
  the fixed salted splitmix64 hash of :mod:`genco_data.load.hashing` — no pass over the data, O(1) memory, the
  same in every process. :meth:`Vocabularies.for_release` sizes ``K`` by the manifest's distinct-id counts
  (the paper: "the sparse hash size for each component is determined by the number of its distinct ids present
  in the training data"); row 1 (OOV) is then never produced;
- *direct* (``user_age``, ``user_gender`` in hashed vocabularies): code ``c`` in ``[0, 128)`` -> ``2 + c``, other
  codes -> 1;
- *exact* (:meth:`Vocabularies.build`, one streamed pass over the rows): the distinct ids in increasing order ->
  ``2, 3, ...``; ids not seen -> 1. Build them from the train split and reuse them for the test split;
- ``category`` strings: exact (sorted list) or hashed (blake2b of the string, then the same hash).
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
from genco_data.format.components import COMPONENTS, CONFIGS, candidates_col
from genco_data.load.hashing import (
    DEFAULT_CATEGORY_BUCKETS,
    DIRECT_CODES,
    HASH_NAME,
    hash_buckets,
    manifest_hash_sizes,
    string_key,
    table_salt,
)
from genco_data.load.padding import FIRST_INDEX, OOV_INDEX, PAD_INDEX, _as_array, _column, _list_parts
from genco_data.load.sources import Source, _iter_source_tables

#: Id fields that may be hashed; ``user_age``, ``user_gender`` (codes) and ``category`` (strings) have their own kinds.
HASHABLE_NAMES: tuple[str, ...] = (*COMPONENTS, "user_id", "ad_id", "query_id", "query_segments")
#: Every vocabulary a :class:`Vocabularies` holds (a component's name is its pool vocabulary).
VOCAB_NAMES: tuple[str, ...] = (*HASHABLE_NAMES, "user_age", "user_gender", "category")
DIRECT_NAMES: tuple[str, ...] = ("user_age", "user_gender")
_VOCAB_FORMAT = "genco-vocabularies"
_VOCAB_VERSION = 2
_LEGACY_HASH = "fmix64"  # version-1 files: murmur3's 64-bit finalizer, no salt, then `mod K`
_MIX1, _MIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_CATEGORY_CACHE = 1 << 16  # category strings whose bucket is remembered


class Vocabularies:
    """int64 ids → table rows, one vocabulary per name in :data:`VOCAB_NAMES` (module docstring).

    ``size(name)`` sizes an embedding table (padding and OOV rows included): ``K + 2`` hashed, ``128 + 2``
    direct, ``distinct ids + 2`` exact. Make them with :meth:`hashed` / :meth:`for_release` (no pass over the
    data) or :meth:`build` (exact, one pass); :meth:`describe` says which (``genco train`` writes it into
    ``config.json``). Saved with :meth:`save` as one ``.npz`` file (no pickle: ids as int64 arrays, the rest JSON).
    """

    def __init__(
        self,
        keys: Mapping[str, np.ndarray],
        categories: Sequence[str],
        hash_buckets: Mapping[str, int] | None = None,
        *,
        direct: Mapping[str, int] | None = None,
        category_buckets: int | None = None,
        size_sources: Mapping[str, str] | None = None,
        hash_name: str = HASH_NAME,
    ) -> None:
        if hash_name not in (HASH_NAME, _LEGACY_HASH):
            raise ValueError(f"unknown hash {hash_name!r}; expected {HASH_NAME!r}")
        self.hash_name = hash_name
        self.hash_buckets: dict[str, int] = dict(hash_buckets or {})
        for name, k in self.hash_buckets.items():
            if name not in HASHABLE_NAMES:
                raise ValueError(f"hash_buckets: {name!r} cannot be hashed; expected names from {HASHABLE_NAMES}")
            if int(k) < 1:
                raise ValueError(f"hash_buckets[{name!r}] must be >= 1, got {k}")
        self.direct: dict[str, int] = {k: int(v) for k, v in (direct or {}).items()}
        for name, r in self.direct.items():
            if name not in DIRECT_NAMES or not 1 <= r <= DIRECT_CODES:
                raise ValueError(f"direct: expected {DIRECT_NAMES} with 1..{DIRECT_CODES} codes, got {name!r}: {r}")
        if category_buckets is not None and int(category_buckets) < 1:
            raise ValueError(f"category_buckets must be >= 1, got {category_buckets}")
        self.category_buckets = None if category_buckets is None else int(category_buckets)
        self.size_sources: dict[str, str] = dict(size_sources or {})
        self.keys: dict[str, np.ndarray] = {}
        for name in VOCAB_NAMES:
            if name == "category" or name in self.hash_buckets or name in self.direct:
                continue
            if name not in keys:
                raise ValueError(f"missing vocabulary {name!r}")
            arr = np.asarray(keys[name], dtype=np.int64)
            if arr.ndim != 1 or (arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1]))):
                raise ValueError(f"vocabulary {name!r}: ids must be a strictly increasing 1-d int64 array")
            self.keys[name] = arr
        self.categories: list[str] = [] if self.category_buckets is not None else sorted(set(categories))
        self._category_set = pa.array(self.categories, type=pa.string())
        self._salts = {name: table_salt(name) for name in (*self.hash_buckets, "category")}
        self._category_rows: dict[str, int] = {}
        self._index: dict[str, Any] = {}

    # -- constructors without a pass over the data ---------------------------------------------
    @classmethod
    def hashed(
        cls,
        sizes: Mapping[str, int] | int | None = None,
        *,
        categories: Sequence[str] | None = None,
        category_buckets: int = DEFAULT_CATEGORY_BUCKETS,
        size_sources: Mapping[str, str] | None = None,
    ) -> "Vocabularies":
        """Hashed vocabularies: every :data:`HASHABLE_NAMES` table hashed into ``sizes[name]`` buckets (an int:
        the same for all; missing names: :data:`~genco_data.load.hashing.DEFAULT_HASH_SIZE`), ages and genders
        direct, categories hashed into ``category_buckets`` unless a ``categories`` list is given (then exact)."""
        from genco_data.load.hashing import DEFAULT_HASH_SIZE

        if isinstance(sizes, int):
            sizes = {name: sizes for name in HASHABLE_NAMES}
        sizes = dict(sizes or {})
        unknown = sorted(set(sizes) - set(HASHABLE_NAMES))
        if unknown:
            raise ValueError(f"sizes: {unknown} cannot be hashed; expected names from {HASHABLE_NAMES}")
        buckets = {name: int(sizes.get(name, DEFAULT_HASH_SIZE)) for name in HASHABLE_NAMES}
        sources = {name: "given" if name in sizes else "default" for name in HASHABLE_NAMES}
        sources.update(size_sources or {})
        return cls({}, categories or [], buckets, direct={n: DIRECT_CODES for n in DIRECT_NAMES},
                   category_buckets=None if categories is not None else category_buckets, size_sources=sources)

    @classmethod
    def for_release(
        cls, release: Any, *, factor: float = 1.0, categories: Sequence[str] | None = None, category_buckets: int = DEFAULT_CATEGORY_BUCKETS
    ) -> "Vocabularies":
        """Hashed vocabularies sized by a release's manifest: ``ceil(factor × distinct ids)`` buckets per table
        where its ``stats`` count them, the documented default elsewhere (``size_sources`` says which).
        ``release``: a folder, a :class:`genco_data.release.Release`, or a manifest ``stats`` dict."""
        if isinstance(release, Mapping):
            stats = release
        else:
            from genco_data.release import Release

            rel = release if isinstance(release, Release) else Release.open(release)
            stats = rel.manifest.stats
        sizes, sources = manifest_hash_sizes(stats, factor)
        return cls.hashed(sizes, categories=categories, category_buckets=category_buckets, size_sources=sources)

    # -- sizes ---------------------------------------------------------------------------------
    def kind(self, name: str) -> str:
        """``"hashed"``, ``"direct"`` or ``"exact"``."""
        if name not in VOCAB_NAMES:
            raise KeyError(f"unknown vocabulary {name!r}; expected one of {VOCAB_NAMES}")
        if name in self.hash_buckets or (name == "category" and self.category_buckets is not None):
            return "hashed"
        return "direct" if name in self.direct else "exact"

    @property
    def mode(self) -> str:
        """``"hashed"`` (every id table hashed), ``"exact"`` (none) or ``"mixed"``."""
        n = sum(name in self.hash_buckets for name in HASHABLE_NAMES)
        return "hashed" if n == len(HASHABLE_NAMES) else ("exact" if n == 0 else "mixed")

    def size(self, name: str) -> int:
        """Rows an embedding table of ``name`` needs (padding and OOV included)."""
        kind = self.kind(name)
        if name == "category":
            return (self.category_buckets if kind == "hashed" else len(self.categories)) + FIRST_INDEX
        if kind == "hashed":
            return int(self.hash_buckets[name]) + FIRST_INDEX
        if kind == "direct":
            return self.direct[name] + FIRST_INDEX
        return len(self.keys[name]) + FIRST_INDEX

    def sizes(self) -> dict[str, int]:
        return {name: self.size(name) for name in VOCAB_NAMES}

    def describe(self) -> dict[str, Any]:
        """What a run records: mode, hash, and per table its kind, rows, and where a hashed size came from."""
        return {
            "mode": self.mode,
            "hash": self.hash_name if (self.hash_buckets or self.category_buckets) else None,
            "tables": {name: {"kind": self.kind(name), "rows": self.size(name),
                              **({"size_from": self.size_sources[name]} if name in self.size_sources else {})} for name in VOCAB_NAMES},
        }

    # -- lookups -------------------------------------------------------------------------------
    def lookup(self, name: str, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Table rows (int64) of the int64 ``ids`` of vocabulary ``name`` (unknown exact ids → 1); written into
        ``out`` (an int64 array of the same size) when given, which is returned."""
        ids = np.asarray(ids, dtype=np.int64)
        buckets = self.hash_buckets.get(name)
        if buckets is not None and self.hash_name != _LEGACY_HASH:
            return hash_buckets(ids, self._salts[name], buckets, out=out)
        if buckets is not None:
            res = _legacy_hash(ids, buckets)
        elif name in self.direct:
            res = np.where((ids >= 0) & (ids < self.direct[name]), ids + FIRST_INDEX, OOV_INDEX)
        else:
            index = self._index.get(name)
            if index is None:
                index = self._index[name] = _make_index(self.keys[name])
            res = index(ids)
        if out is None:
            return res
        out[...] = res.reshape(out.shape)
        return out

    def kernel_tables(self) -> dict[str, tuple[int, ...]]:
        """What the compiled padding kernels need (:mod:`genco_data.load.kernels`): ``{name: ("hash", salt, K)}``
        for every table hashed with the current hash, ``{name: ("direct", codes)}`` for direct ones; other
        tables (exact, legacy hash) are absent and go through :meth:`lookup`."""
        out: dict[str, tuple[int, ...]] = {}
        if self.hash_name == HASH_NAME:
            out.update({n: ("hash", self._salts[n], int(k)) for n, k in self.hash_buckets.items()})
        out.update({n: ("direct", r) for n, r in self.direct.items()})
        return out

    def lookup_category(self, values: pa.Array) -> np.ndarray:
        """Table rows of a string (or dictionary-encoded string) array; null → 0, unknown (exact) → 1.

        A dictionary array (what the cold loader reads from Parquet, ``read_dictionary``) costs one lookup per
        distinct word and one gather; a plain string array is dictionary-encoded first when hashed."""
        if self.category_buckets is None and not pa.types.is_dictionary(values.type):
            pos = pc.index_in(values, value_set=self._category_set)
            out = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + FIRST_INDEX
        else:  # each distinct string of the batch once
            enc = values.dictionary_encode() if not pa.types.is_dictionary(values.type) else values
            rows = self._category_rows_of(enc.dictionary)
            ind = enc.indices.fill_null(0) if enc.indices.null_count else enc.indices
            out = rows.take(ind.to_numpy(zero_copy_only=False), mode="clip")
        if values.null_count:
            out[np.asarray(values.is_null())] = PAD_INDEX
        return out

    def _category_rows_of(self, words: pa.Array) -> np.ndarray:
        """Table rows of the distinct ``words`` (int64, never empty: [PAD_INDEX] for none)."""
        if not len(words):
            return np.array([PAD_INDEX], np.int64)
        if self.category_buckets is None:
            pos = pc.index_in(words, value_set=self._category_set)
            rows = pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + FIRST_INDEX
            if words.null_count:
                rows[np.asarray(words.is_null())] = PAD_INDEX
            return rows
        return np.array([self._category_row(w) for w in words.to_pylist()], np.int64)

    def _category_row(self, word: str | None) -> int:
        if word is None:
            return PAD_INDEX
        row = self._category_rows.get(word)
        if row is None:
            row = int(hash_buckets(np.array([string_key(word)]), self._salts["category"], self.category_buckets)[0])
            if len(self._category_rows) < _CATEGORY_CACHE:
                self._category_rows[word] = row
        return row

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
        """Exact vocabularies: the distinct ids of ``source``, streamed block by block (memory bounded by the
        vocabularies).

        ``source``: a release folder (its ``impressions`` train split is read), Parquet file(s), a
        ``pa.Table``, a ``datasets.Dataset`` (its rows after any ``select``/``shuffle``) or a
        ``datasets.IterableDataset`` (one full pass). ``hash_buckets``: an int hashes every name of
        :data:`HASHABLE_NAMES` into that many buckets; a mapping hashes only the names it lists (the others,
        and ages, genders and categories, stay exact). ``verify``: a release folder is checked against its
        manifest's sha256 first (see :func:`~genco_data.load.sources.parquet_files`).
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
        meta = {"format": _VOCAB_FORMAT, "version": _VOCAB_VERSION, "hash": self.hash_name, "direct": self.direct,
                "category_buckets": self.category_buckets, "size_sources": self.size_sources, **self._v1_meta()}
        meta["version"] = _VOCAB_VERSION
        return meta

    def _v1_meta(self) -> dict[str, Any]:
        return {
            "format": _VOCAB_FORMAT,
            "version": 1,
            "hash_buckets": {k: int(v) for k, v in sorted(self.hash_buckets.items())},
            "categories": self.categories,
            "sizes": self.sizes(),
        }

    def _fingerprint_meta(self) -> dict[str, Any]:
        """Vocabularies a version-1 file could hold keep their version-1 fingerprint (runs trained before
        still load); the others hash everything that decides a lookup."""
        legacy = not self.direct and self.category_buckets is None and (not self.hash_buckets or self.hash_name == _LEGACY_HASH)
        if legacy:
            return self._v1_meta()
        meta = self._meta()
        meta.pop("size_sources")  # provenance, not part of the mapping
        return meta

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
        version = meta.get("version")
        if meta.get("format") != _VOCAB_FORMAT or version not in (1, _VOCAB_VERSION):
            raise InvalidInputError(
                f"{path}: expected format {_VOCAB_FORMAT!r} version {_VOCAB_VERSION}, "
                f"got {meta.get('format')!r} version {meta.get('version')!r}"
            )
        return cls(keys, meta["categories"], meta["hash_buckets"], direct=meta.get("direct"),
                   category_buckets=meta.get("category_buckets"), size_sources=meta.get("size_sources"),
                   hash_name=meta.get("hash", _LEGACY_HASH) if version == _VOCAB_VERSION else _LEGACY_HASH)

    def fingerprint(self) -> str:
        """sha256 of the content (hex), e.g. to key caches of padded data."""
        h = hashlib.sha256(json.dumps(self._fingerprint_meta(), sort_keys=True).encode("utf-8"))
        for name in sorted(self.keys):
            h.update(name.encode("utf-8"))
            h.update(np.ascontiguousarray(self.keys[name]).tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabularies) and self.fingerprint() == other.fingerprint()

    def __getstate__(self) -> dict[str, Any]:  # lookup indexes are rebuilt lazily in each process
        return {"keys": self.keys, "categories": self.categories, "hash_buckets": self.hash_buckets, "direct": self.direct,
                "category_buckets": self.category_buckets, "size_sources": self.size_sources, "hash_name": self.hash_name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["keys"], state["categories"], state["hash_buckets"], direct=state.get("direct"),  # type: ignore[misc]
                      category_buckets=state.get("category_buckets"), size_sources=state.get("size_sources"),
                      hash_name=state.get("hash_name", HASH_NAME))

    def __repr__(self) -> str:
        return f"Vocabularies({self.mode}: {', '.join(f'{k}={v}' for k, v in self.sizes().items())})"


def _legacy_hash(ids: np.ndarray, buckets: int) -> np.ndarray:
    """Version-1 files' hash: murmur3's fmix64, then ``mod K``."""
    x = ids.view(np.uint64)
    x = (x ^ (x >> np.uint64(33))) * _MIX1
    x = (x ^ (x >> np.uint64(33))) * _MIX2
    x ^= x >> np.uint64(33)
    return (x % np.uint64(buckets)).astype(np.int64) + FIRST_INDEX


def category_values(files: Sequence[str | os.PathLike]) -> list[str]:
    """The distinct ``category`` strings of Parquet files, reading that one (dictionary-encoded) column only."""
    import pyarrow.parquet as pq

    found: set[str] = set()
    for f in files:
        pf = pq.ParquetFile(f, read_dictionary=["category"])
        for g in range(pf.num_row_groups):
            col = _as_array(pf.read_row_group(g, columns=["category"]).column(0))
            found.update(x for x in (col.dictionary if pa.types.is_dictionary(col.type) else pc.unique(col)).to_pylist() if x is not None)
    return sorted(found)


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


#: The strings ``vocabs=`` takes besides a Vocabularies or a saved file: how to make them.
VOCAB_MODES = ("hashed", "exact")


def resolve_vocabs(
    vocabs: "Vocabularies | str | os.PathLike | None", source: Source, rows: Any, *, split: str = "train",
    config: str = CONFIGS[0], verify: bool = True,
) -> Vocabularies:
    """The vocabularies a dataset over ``source`` uses.

    ``None`` or ``"hashed"`` (the default, no pass over the data): hashed vocabularies sized by the release's
    manifest when ``source`` is a release folder (:meth:`Vocabularies.for_release`), else the documented default
    sizes (:meth:`Vocabularies.hashed`). ``"exact"``: one pass over ``rows`` (for a release folder: over its
    *train* split, whatever ``split`` is read). A :class:`Vocabularies` is used as given; another string or path
    is a file written by :meth:`Vocabularies.save`."""
    if isinstance(vocabs, Vocabularies):
        return vocabs
    release = isinstance(source, (str, os.PathLike)) and Path(source).is_dir() and (Path(source) / "manifest.json").is_file()
    if vocabs is None or vocabs == "hashed":
        return Vocabularies.for_release(source) if release else Vocabularies.hashed()
    if vocabs == "exact":
        if release:
            from genco_data.load.sources import parquet_files

            return Vocabularies.build(parquet_files(source, "train", config, verify=verify))
        return Vocabularies.build(rows)
    return Vocabularies.load(vocabs)


__all__ = ["HASHABLE_NAMES", "VOCAB_NAMES", "DIRECT_NAMES", "Vocabularies", "VOCAB_MODES", "resolve_vocabs", "category_values"]
