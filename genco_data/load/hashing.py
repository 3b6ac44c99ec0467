"""The fixed id hash of the hashed vocabularies, and the table sizes a release's manifest gives (torch-free).

**The hash.** An int64 id ``v`` of table ``name`` goes to row ``FIRST_INDEX + bucket(v)`` of a table of
``K + FIRST_INDEX`` rows (rows 0 and 1 stay padding/null and out-of-vocabulary)::

    salt(name)  = first 8 bytes (little-endian) of sha256(b"genco-data/hash/v1/" + name)
    x           = splitmix64(uint64(v) XOR salt(name))          # Steele, Lea & Flood 2014 finalizer
    bucket(v)   = ((x >> 32) * K) >> 32                          # Lemire's multiply-shift range, K < 2**32
                = x mod K                                        # for K >= 2**32

    splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
                   z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31       (all mod 2**64)

It is pure integer arithmetic on the id (no process seed, no state), so it is the same in every process, on
every machine and across restarts; it needs no pass over the data and O(1) memory. The per-table salt makes the
tables' collisions independent of one another. Category strings are hashed the same way, with ``v`` = the first
8 bytes of blake2b(utf-8 string).

**Collisions.** With ``n`` distinct ids thrown into ``K`` buckets, an id shares its bucket with at least one
other id with probability ``1 - (1 - 1/K)**(n - 1)``, and ``K (1 - (1 - 1/K)**n)`` buckets are used
(:func:`expected_collisions`). At the paper's sizing ``K = n`` that is ``1 - e**-1 ≈ 63.2 %`` of the ids
sharing a row and ``n (1 - e**-1)`` rows used, whatever ``n``.

**Sizes.** The paper: "the sparse hash size for each component is determined by the number of its distinct ids
present in the training data". :func:`manifest_hash_sizes` reads those counts from a release manifest's
``stats`` (exact or sketch estimates), times ``factor``, and falls back to :data:`DEFAULT_HASH_SIZE` for a count
the manifest lacks, saying which ones it did.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from genco_data.format.components import COMPONENTS
from genco_data.load.padding import FIRST_INDEX

#: Name of the hash, written into saved vocabularies (part of their fingerprint).
HASH_NAME = "splitmix64-salted-v1"
#: Buckets of a hashed table whose distinct-id count is unknown (no manifest, or a manifest without it):
#: 2**18 rows of dim 4 = 4 MB of float32 per table.
DEFAULT_HASH_SIZE = 1 << 18
#: Buckets of the hashed category table (product categories: hundreds, not millions).
DEFAULT_CATEGORY_BUCKETS = 1 << 12
#: Codes of ``user_age`` / ``user_gender`` mapped directly (code + FIRST_INDEX) by hashed vocabularies: the
#: non-negative int8 range; other codes go to OOV.
DIRECT_CODES = 128
#: The id tables the manifest can size: the six components and these context ids.
SIZED_NAMES: tuple[str, ...] = (*COMPONENTS, "user_id", "ad_id", "query_id", "query_segments")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
#: ids hashed per numpy pass (8 B each: 512 KB, the working set stays in L2; larger and smaller chunks measured slower).
_CHUNK = 1 << 16


def table_salt(name: str) -> int:
    """The 64-bit salt of table ``name`` (see the module docstring)."""
    return int.from_bytes(hashlib.sha256(b"genco-data/hash/v1/" + name.encode("utf-8")).digest()[:8], "little")


def hash_buckets(ids: np.ndarray, salt: int, buckets: int, out: np.ndarray | None = None) -> np.ndarray:
    """``bucket(v) + FIRST_INDEX`` (int64) of every id (module docstring), vectorized, in L2-sized chunks.

    ``ids``: int64 array of any shape; ``out``: an optional int64 array of the same size to write into."""
    flat = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1).view(np.uint64)
    res = np.empty(flat.shape, np.int64) if out is None else out.reshape(-1)
    if not len(flat):
        return res.reshape(np.shape(ids))
    s, k = np.uint64(salt), np.uint64(buckets)
    small = buckets < (1 << 32)
    x = np.empty(min(len(flat), _CHUNK), np.uint64)
    t = np.empty_like(x)
    for a in range(0, len(flat), _CHUNK):
        b = min(len(flat), a + _CHUNK)
        xv, tv = x[: b - a], t[: b - a]
        np.bitwise_xor(flat[a:b], s, out=xv)
        xv += _GOLDEN
        np.right_shift(xv, _S30, out=tv)
        xv ^= tv
        xv *= _M1
        np.right_shift(xv, _S27, out=tv)
        xv ^= tv
        xv *= _M2
        np.right_shift(xv, _S31, out=tv)
        xv ^= tv
        if small:
            xv >>= _S32
            xv *= k
            xv >>= _S32
        else:
            xv %= k
        np.add(xv.view(np.int64), FIRST_INDEX, out=res[a:b])
    return res.reshape(np.shape(ids))


def string_key(value: str) -> int:
    """The int64 id a category string is hashed as: the first 8 bytes of blake2b(utf-8), little-endian, signed."""
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def expected_collisions(n: int, buckets: int) -> dict[str, float]:
    """Collision arithmetic of ``n`` distinct ids hashed uniformly into ``buckets`` buckets.

    ``shared_id_share`` = P(an id shares its bucket) = ``1 - (1 - 1/K)**(n-1)``; ``buckets_used`` =
    ``K (1 - (1 - 1/K)**n)``; ``lost_id_share`` = ``1 - buckets_used / n`` (ids beyond one per used bucket).
    Computed with log1p/expm1, exact to double precision for any n and K."""
    if n <= 0 or buckets <= 0:
        return {"ids": n, "buckets": buckets, "shared_id_share": 0.0, "buckets_used": 0.0, "lost_id_share": 0.0}
    log_keep = math.log1p(-1.0 / buckets) if buckets > 1 else -math.inf
    shared = -math.expm1((n - 1) * log_keep) if n > 1 else 0.0
    used = buckets * -math.expm1(n * log_keep) if buckets > 1 else 1.0
    return {"ids": n, "buckets": buckets, "shared_id_share": shared, "buckets_used": used, "lost_id_share": 1.0 - used / n}


def measured_collisions(ids: np.ndarray, salt: int, buckets: int) -> dict[str, float]:
    """The same figures measured: ``ids`` are distinct int64 ids, hashed with :func:`hash_buckets`."""
    ids = np.unique(np.asarray(ids, np.int64))
    if not len(ids):
        return {"ids": 0, "buckets": buckets, "shared_id_share": 0.0, "buckets_used": 0.0, "lost_id_share": 0.0}
    b = hash_buckets(ids, salt, buckets)
    _, inverse, counts = np.unique(b, return_inverse=True, return_counts=True)
    return {"ids": int(len(ids)), "buckets": buckets, "shared_id_share": float(np.mean(counts[inverse] > 1)),
            "buckets_used": float(len(counts)), "lost_id_share": 1.0 - len(counts) / len(ids)}


# ---------------------------------------------------------------------------------------------
# Table sizes from a manifest's statistics
# ---------------------------------------------------------------------------------------------
_STAT_ALIASES = {"user_id": ("distinct_users",), "ad_id": ("distinct_ads",), "query_id": ("distinct_queries",),
                 "query_segments": ("distinct_query_segments", "distinct_segments")}


def _count(value: Any) -> int | None:
    """A distinct count from a stats value: a number, or a dict holding one (an estimate with its bounds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return int(math.ceil(value))
    if isinstance(value, Mapping):
        for key in ("estimate", "value", "distinct", "distinct_ids", "count", "exact"):
            got = _count(value.get(key))
            if got is not None:
                return got
    return None


def distinct_counts(stats: Mapping[str, Any] | None) -> dict[str, int]:
    """Distinct-id counts of the :data:`SIZED_NAMES` found in a manifest's ``stats`` (train split).

    Read defensively, in this order, for table ``name``: ``stats["components"][name]["distinct_ids"]`` (a
    component), ``stats["distinct_ids"][name]``, ``stats["columns"][name]["distinct_ids"]``, then the flat aliases
    ``distinct_users``, ``distinct_ads``, ``distinct_queries``, ``distinct_query_segments``. A value may be a number
    or a dict with an ``estimate`` (sketch) or ``value``. Names without a count are left out."""
    stats = stats if isinstance(stats, Mapping) else {}
    if isinstance(stats.get("train"), Mapping) and "components" not in stats:
        stats = stats["train"]
    out: dict[str, int] = {}
    for name in SIZED_NAMES:
        candidates = [
            ((stats.get("components") or {}).get(name) or {}).get("distinct_ids") if name in COMPONENTS else None,
            (stats.get("distinct_ids") or {}).get(name) if isinstance(stats.get("distinct_ids"), Mapping) else None,
            ((stats.get("columns") or {}).get(name) or {}).get("distinct_ids") if isinstance(stats.get("columns"), Mapping) else None,
            *(stats.get(alias) for alias in _STAT_ALIASES.get(name, ())),
        ]
        for value in candidates:
            got = _count(value)
            if got is not None:
                out[name] = got
                break
    return out


def manifest_hash_sizes(stats: Mapping[str, Any] | None, factor: float = 1.0) -> tuple[dict[str, int], dict[str, str]]:
    """(buckets per :data:`SIZED_NAMES` table, where each size came from: ``"manifest"`` or ``"default"``).

    ``buckets = max(1, ceil(factor * distinct ids))`` where the manifest counts the table, else
    :data:`DEFAULT_HASH_SIZE` (``factor`` does not scale the default)."""
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"hash size factor must be a positive number, got {factor!r}")
    counts = distinct_counts(stats)
    sizes, sources = {}, {}
    for name in SIZED_NAMES:
        if name in counts:
            sizes[name], sources[name] = max(1, int(math.ceil(factor * counts[name]))), "manifest"
        else:
            sizes[name], sources[name] = DEFAULT_HASH_SIZE, "default"
    return sizes, sources


__all__ = [
    "HASH_NAME",
    "DEFAULT_HASH_SIZE",
    "DEFAULT_CATEGORY_BUCKETS",
    "DIRECT_CODES",
    "SIZED_NAMES",
    "table_salt",
    "hash_buckets",
    "string_key",
    "expected_collisions",
    "measured_collisions",
    "distinct_counts",
    "manifest_hash_sizes",
]
