r"""The observable structure of a simulation (not ground truth), drawn from the seed: which ads and users
the traffic brings, users' logged demographics, queries and their segments, and every ad's pools over the
days (:class:`Catalog`). :func:`build` draws it and the world's latent parameters
(:func:`~genco_data.synth.draw.sample_world`) from one stream. Also the guide tables (:func:`_guide`,
:func:`_search`) that make every inverse-CDF draw O(1).

Traffic. Ads and users draw a traffic share ``~ LogNormal(0, popularity_sigma²)``; each impression picks
an ad and a user by share; with probability ``query_rate`` it carries a query of the ad's category
(uniform among them), else ``query_id`` is null and ``query_segments`` empty. Queries have 0–4 hashed
segments (10 % have none). Logged ``user_age`` / ``user_gender`` are null for 3 % / 5 % of users (the world
still knows them).

Pools (Table 1). Each ad gets, per component ``j``, a point ``v`` uniform *in traffic* (ads in random order
tile [0, 1) with intervals as long as their traffic share): it has a pool iff ``v < coverage_j``, of
``k = F⁻¹(v / coverage_j)`` slots, ``F`` the law of ``1 + NegBin(mean avg_j - 1, dispersion r_j)`` truncated at
:data:`MAX_POOL`. Row-weighted coverage and mean pool length (what ``genco stats`` measures over train rows)
therefore land on the paper's figures up to one ad's share, not wandering with the most popular ads.
Pools over ``PAD_TO = 15`` occur for ~1–2 % of the title / highlight / structure_attribute rows.
Which element a slot shows: its own (``catalog_size`` None, the ``sparse`` preset), or a draw without replacement
from a catalog shared by the ads of its category (``catalog_scope="category"``) or by all ads (``"global"``, the default),
of ``max(catalog_size, longest slot list)`` elements (:func:`_assign_catalog`).
Over the ``train_days + test_days`` window each slot but the first is, with probability ``churn``,
*replaced*: its element retires on day ``t1`` and a new one is added on day ``t2`` (``t2 = t1`` for half of
them, else independent; ``t ~ U{1..days-1}``), so the expected pool length is ``k`` on every day while pools
change (elements added mid-window are appended at the pool's end; gaps and overlaps move its length).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from genco_data.format.components import COMPONENTS, PAPER_AVG_CANDIDATES, PAPER_COVERAGE
from genco_data.synth.config import SynthConfig
from genco_data.synth.draw import (
    AGE_BUCKETS,
    GENDERS,
    NAMESPACES,
    _STREAM_WORLD,
    hashed_ids,
    id_salt,
    sample_world,
)
from genco_data.synth.world import CATEGORIES, World

CATEGORY_SHARE: tuple[float, ...] = (0.12, 0.08, 0.06, 0.22, 0.10, 0.16, 0.14, 0.12)
MAX_POOL = 48
#: NegBin dispersion of the pool length per component (larger = closer to Poisson).
POOL_DISPERSION: dict[str, float] = {
    "title": 8.0,
    "image": 4.0,
    "marketing": 3.0,
    "highlight": 16.0,
    "attribute": 3.0,
    "structure_attribute": 24.0,
}
AGE_SHARE = (0.05, 0.20, 0.30, 0.20, 0.12, 0.08, 0.05)
AGE_NULL_RATE = 0.03
GENDER_NULL_RATE = 0.05
SEGMENT_COUNT_SHARE = (0.10, 0.30, 0.30, 0.20, 0.10)  # P(0..4 segments)
_ASSIGN_CHUNK = 16_384  # ads per block when drawing catalog elements for pool slots


@dataclass
class Catalog:
    """Observable structure of a simulation (not ground truth): traffic, pools over days, queries."""

    ad_cum: np.ndarray  # float64 [A] cumulative traffic share
    ad_guide: np.ndarray  # int32 [4A] guide table of ad_cum (see _search)
    user_cum: np.ndarray  # float64 [U]
    user_guide: np.ndarray  # int32 [2U]
    age_logged: np.ndarray  # bool [U]
    gender_logged: np.ndarray  # bool [U]
    query_start: np.ndarray  # int64 [C+1]: queries of category c are query_start[c]:query_start[c+1]
    segments: pa.Array  # list<int64> [Q + 1]: segment ids of each query; the last entry is empty (no query)
    category_names: pa.Array  # string [C]
    pool_start: list[np.ndarray]  # per component, int64 [A]: first element index of the ad's pool
    pool_len: list[np.ndarray]  # per component, int64 [A]: elements ever in the ad's pool
    birth: list[np.ndarray]  # per component, int16 [slots_j]: first day the slot's element is alive
    death: list[np.ndarray]  # per component, int16 [slots_j]: first day retired
    slot_elem: list[np.ndarray]  # per component, int64 [slots_j]: the catalog element a slot shows


# ---------------------------------------------------------------------------------------------- world
def build(cfg: SynthConfig) -> tuple[World, Catalog]:
    """Draw the catalog and the world's latent parameters (``base`` = 0, not yet calibrated)."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_STREAM_WORLD,)))
    A, U, Q, D = cfg.num_ads, cfg.num_users, cfg.num_queries, cfg.total_days
    C = len(CATEGORIES)
    ad_category = rng.choice(C, size=A, p=CATEGORY_SHARE)
    ad_pop = rng.lognormal(0.0, cfg.popularity_sigma, A)
    pool_start, pool_len, birth, death, slot_elem, n_elements = [], [], [], [], [], []
    # which ads share a catalog: those of a category, or all of them
    catalog_of_ad, n_catalogs = (ad_category, C) if cfg.catalog_scope == "category" else (np.zeros_like(ad_category), 1)
    for comp in COMPONENTS:
        # one traffic-uniform point per ad decides both: present iff v < coverage, then the length is the
        # quantile v / coverage, so the row-weighted coverage and mean length land on Table 1
        cover = PAPER_COVERAGE[comp]
        v = _traffic_uniform(rng, ad_pop)
        has = v < cover
        k = _pool_length_ppf(PAPER_AVG_CANDIDATES[comp], POOL_DISPERSION[comp], np.minimum(v / cover, 1.0))
        k[~has] = 0
        s, n, b, d = _pools_over_days(rng, k, D, cfg.churn)
        e, size = _assign_catalog(rng, catalog_of_ad, n, n_catalogs, cfg.catalog_size)
        slot_elem.append(e)
        n_elements.append(size)
        pool_start.append(s)
        pool_len.append(n)
        birth.append(b)
        death.append(d)
    user_pop = rng.lognormal(0.0, cfg.popularity_sigma, U)
    user_age = rng.choice(AGE_BUCKETS, size=U, p=AGE_SHARE)
    user_gender = rng.integers(0, GENDERS, U)
    age_logged = rng.random(U) >= AGE_NULL_RATE
    gender_logged = rng.random(U) >= GENDER_NULL_RATE
    per_cat = rng.multinomial(Q, CATEGORY_SHARE)  # queries sorted by category
    query_start = np.concatenate([[0], np.cumsum(per_cat)]).astype(np.int64)
    n_seg = rng.choice(len(SEGMENT_COUNT_SHARE), size=Q, p=SEGMENT_COUNT_SHARE)
    seg_offsets = np.concatenate([[0], np.cumsum(n_seg)]).astype(np.int64)
    vocab = max(8, Q // (2 * C))  # segment vocabulary per category
    q_cat = np.repeat(np.arange(C), per_cat)
    seg_index = np.repeat(q_cat, n_seg) * vocab + rng.integers(0, vocab, int(seg_offsets[-1]))
    world = sample_world(
        cfg,
        rng,
        ad_category=ad_category,
        user_age=user_age,
        user_gender=user_gender,
        n_queries=Q,
        n_elements=n_elements,
    )
    ad_cum = np.cumsum(ad_pop) / ad_pop.sum()
    user_cum = np.cumsum(user_pop) / user_pop.sum()
    catalog = Catalog(
        ad_cum=ad_cum,
        ad_guide=_guide(ad_cum, 4 * A, 1.0),
        user_cum=user_cum,
        user_guide=_guide(user_cum, 2 * U, 1.0),
        age_logged=age_logged,
        gender_logged=gender_logged,
        query_start=query_start,
        segments=pa.ListArray.from_arrays(
            pa.array(np.concatenate([seg_offsets, seg_offsets[-1:]]).astype(np.int32)),
            pa.array(hashed_ids(NAMESPACES["segment"], seg_index, id_salt(cfg.seed)), type=pa.int64()),
        ),
        category_names=pa.array(list(CATEGORIES), type=pa.string()),
        pool_start=pool_start,
        pool_len=pool_len,
        birth=birth,
        death=death,
        slot_elem=slot_elem,
    )
    return world, catalog


def _guide(cum: np.ndarray, bins: int, hi: float) -> np.ndarray:
    """Guide table of a sorted ``cum`` over [0, hi): ``guide[b]`` = number of entries ``<= b·hi/bins`` (= the
    first index with ``cum > b·hi/bins``), by counting, O(len(cum) + bins). Rounding may misplace an entry
    that sits on a bin edge; :func:`_search` starts one bin early, which absorbs it."""
    k = np.ceil(cum * (bins / hi)).astype(np.int64)  # smallest bin whose edge is >= the entry
    counts = np.bincount(np.clip(k, 0, bins), minlength=bins + 1)[:bins]
    return np.cumsum(counts).astype(np.int32)


def _search(cum: np.ndarray, guide: np.ndarray, hi: float, target: np.ndarray) -> np.ndarray:
    """``np.searchsorted(cum, target, side="right")`` clipped to ``len(cum) - 1``, in O(1) expected per
    target: start from the guide table's bin (one bin early, against rounding), then step forward."""
    bins = len(guide)
    last = len(cum) - 1
    b = np.clip((target * (bins / hi)).astype(np.int64) - 1, 0, bins - 1)
    pos = np.minimum(guide[b], last).astype(np.int64)
    idx = np.flatnonzero(cum[pos] <= target)
    while len(idx):
        p = np.minimum(pos[idx] + 1, last)
        pos[idx] = p
        idx = idx[(cum[p] <= target[idx]) & (p < last)]
    return pos


def _traffic_uniform(rng: np.random.Generator, share: np.ndarray) -> np.ndarray:
    """A point ``v_a`` in [0, 1) per ad such that the *traffic-weighted* distribution of ``v`` is uniform up
    to one ad's share: ads in random order tile [0, 1) with intervals of length ``share``; ``v`` is a
    uniform point of the ad's interval. Thresholding ``v`` therefore hits a row-level target exactly."""
    order = rng.permutation(len(share))
    w = share[order] / share.sum()
    before = np.cumsum(w) - w
    v = np.empty(len(share))
    v[order] = np.minimum(before + rng.random(len(share)) * w, np.nextafter(1.0, 0.0))
    return v


def _pool_length_ppf(mean: float, dispersion: float, u: np.ndarray) -> np.ndarray:
    """Quantile of ``1 + NegBin(mean - 1, dispersion)`` truncated to [1, MAX_POOL] at ``u``."""
    mu = mean - 1.0
    p = dispersion / (dispersion + mu)
    pmf = np.empty(MAX_POOL)
    pmf[0] = p**dispersion
    for k in range(MAX_POOL - 1):
        pmf[k + 1] = pmf[k] * (k + dispersion) / (k + 1) * (1.0 - p)
    cdf = np.cumsum(pmf / pmf.sum())
    return 1 + np.minimum(np.searchsorted(cdf, u, side="right"), MAX_POOL - 1).astype(np.int64)


def _pools_over_days(rng: np.random.Generator, k: np.ndarray, days: int, churn: float):
    """Elements of every ad's pool with their [birth, death) days; elements of an ad are contiguous,
    ordered by (birth, slot). Returns (start [A], length [A], birth int16 [E], death int16 [E])."""
    A = len(k)
    n_slots = int(k.sum())
    slot_ad = np.repeat(np.arange(A), k)
    slot = np.arange(n_slots) - np.repeat(np.cumsum(k) - k, k)
    # stable: one element all along; replaced: the old element retires on day t1 and a new one is added
    # on day t2 (t2 = t1 for half of them, independent otherwise: a gap or an overlap), so that the
    # expected number alive is 1 on every day
    churned = rng.random(n_slots) < churn
    churned[(slot == 0) | (days < 2)] = False
    t1 = rng.integers(1, max(days, 2), n_slots)
    t2 = np.where(rng.random(n_slots) < 0.5, t1, rng.integers(1, max(days, 2), n_slots))
    m = int(churned.sum())
    ad = np.concatenate([slot_ad, slot_ad[churned]])
    b = np.concatenate([np.zeros(n_slots, dtype=np.int64), t2[churned]])
    d = np.concatenate([np.where(churned, t1, days), np.full(m, days)])
    slot = np.concatenate([slot, slot[churned]])
    order = np.lexsort((slot, b, ad))
    length = np.bincount(ad, minlength=A).astype(np.int64)
    start = np.cumsum(length) - length
    return start, length, b[order].astype(np.int16), d[order].astype(np.int16)


def _assign_catalog(rng: np.random.Generator, ad_category: np.ndarray, length: np.ndarray, n_categories: int, size: int | None) -> tuple[np.ndarray, int]:
    """The catalog element each pool slot shows: (slot_elem int64 [Σ length], catalog size).

    ``size`` None: every slot has an element of its own (the catalog is the slots). Otherwise category
    ``c`` owns ``K_c = max(size, longest slot list of its ads)`` elements (consecutive indices, categories in
    order) and each ad's slots are a uniform draw *without replacement* from its category's elements, so
    an element recurs across the ads of its category but never twice in one pool."""
    total = int(length.sum())
    if size is None:
        return np.arange(total, dtype=np.int64), total
    longest = np.zeros(n_categories, dtype=np.int64)
    np.maximum.at(longest, ad_category, length)
    k = np.maximum(longest, size)
    first = np.cumsum(k) - k
    out = np.empty(total, dtype=np.int64)
    k_ad = k.take(ad_category)
    width = int(k.max())
    at = 0
    for lo in range(0, len(length), _ASSIGN_CHUNK):  # bounded memory: chunk × width keys
        hi = min(len(length), lo + _ASSIGN_CHUNK)
        keys = rng.random((hi - lo, width))
        keys[np.arange(width)[None, :] >= k_ad[lo:hi, None]] = 2.0  # beyond the category's catalog
        perm = np.argsort(keys, axis=1, kind="stable")
        take = np.arange(width)[None, :] < length[lo:hi, None]
        picked = (perm + first.take(ad_category[lo:hi])[:, None])[take]
        out[at : at + len(picked)] = picked
        at += len(picked)
    return out, int(k.sum())


__all__ = [
    "Catalog",
    "build",
    "CATEGORY_SHARE",
    "MAX_POOL",
    "POOL_DISPERSION",
]
