r"""Logging: which requests arrive, which pools they carry on which day, what the logging policies show,
and :func:`simulate`, which streams it all into raw Parquet parts next to the ground truth.

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
Which element a slot shows: its own (``catalog_size`` None, the default), or a draw without replacement
from a catalog shared by the ads of its category (``catalog_scope="category"``) or by all ads (``"global"``),
of ``max(catalog_size, longest slot list)`` elements (:func:`_assign_catalog`).
Over the ``train_days + test_days`` window each slot but the first is, with probability ``churn``,
*replaced*: its element retires on day ``t1`` and a new one is added on day ``t2`` (``t2 = t1`` for half of
them, else independent; ``t ~ U{1..days-1}``), so the expected pool length is ``k`` on every day while pools
change (elements added mid-window are appended at the pool's end; gaps and overlaps move its length).

Policies. Train days: *production* — per component a softmax over a fixed, noisy, sharpened estimate of
each element's quality (``elem{j}_prod`` in the world; it ignores taste and synergy); the propensity
recorded is the softmax probability of the shown element. Test days: *uniform* — each element with
probability ``1/n``. Click ``~ Bernoulli(CTR)`` with the world's exact CTR.

Streaming. Rows are produced in batches of ``batch_rows`` (one Parquet part each; train rows in
chronological order, then test rows), each from its own ``SeedSequence(seed, spawn_key=(2, batch))``
stream, so the bytes depend only on the config and memory stays bounded by the batch. Within a batch,
rows are drawn one day at a time against that day's :class:`DayPools` (every ad's pools, the production
softmax and a guide table for O(1) inverse-CDF draws), built once per day. Ids, pools and propensities are
gathered with numpy / Arrow ``take``; no per-row Python.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import (
    COMPONENTS,
    N_COMPONENTS,
    PAD_TO,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    PRODUCTION,
    UNIFORM,
    candidates_col,
    exposed_col,
    propensity_col,
)
from genco_data.errors import InvalidInputError
from genco_data.release import WORLD_DIR
from genco_data.synth.config import SynthConfig
from genco_data.synth.world import (
    AGE_BUCKETS,
    CATEGORIES,
    CATEGORY_SHARE,
    GENDERS,
    NAMESPACES,
    WORLD_JSON,
    WORLD_NPZ,
    World,
    hashed_ids,
    id_salt,
    sigmoid,
)

RAW_DIR = "raw"
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
CALIBRATION_ROWS = 131_072
_ASSIGN_CHUNK = 16_384  # ads per block when drawing catalog elements for pool slots
GUIDE_BINS = 16  # guide-table bins per pool for the production policy's inverse-CDF draw
_STREAM_WORLD, _STREAM_CALIBRATION, _STREAM_ROWS = 0, 1, 2
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


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
    world = World.sample(
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


# ---------------------------------------------------------------------------------------------- pools
@dataclass
class DayPools:
    """Every ad's pools on one ``day``, flat, indexed by ad.

    Per component: ``lists`` (pa.ListArray of element ids, one list per ad, for ``take``), ``start`` / ``n``
    (int64 [A]) into the flat pool arrays: ``x`` (the element's columns θ, s_1, s_2, each float64 [F + 1];
    the last entry is zero, read for an empty pool), ``prob`` (production softmax probability) and
    ``cum = ad + cumulative prob within the pool`` (increasing, so one guided search draws every row's
    element; ``guide`` is its guide table).
    """

    day: int
    lists: list[pa.Array]
    start: list[np.ndarray]
    n: list[np.ndarray]
    x: list[tuple[np.ndarray, ...]]
    prob: list[np.ndarray]
    cum: list[np.ndarray]
    guide: list[np.ndarray]


def day_pools(world: World, cat: Catalog, day: int) -> DayPools:
    out = DayPools(day, [], [], [], [], [], [], [])
    packed, _ = world._padded_arrays()
    for j in range(N_COMPONENTS):
        alive = (cat.birth[j] <= day) & (cat.death[j] > day)  # [slots]
        elems = cat.slot_elem[j].take(np.flatnonzero(alive))  # catalog elements, in slot order
        cs = np.concatenate([[0], np.cumsum(alive)])
        start = cs[cat.pool_start[j]]
        n = cs[cat.pool_start[j] + cat.pool_len[j]] - start
        offsets = np.concatenate([start, [len(elems)]]).astype(np.int32)
        out.lists.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(world.arrays[f"elem{j}_id"].take(elems))))
        # production: softmax over the estimate within every pool
        nz = np.flatnonzero(n)
        prob, cum = np.ones(len(elems)), np.zeros(len(elems))
        if len(nz):
            st, nn = start[nz], n[nz]
            score = world.arrays[f"elem{j}_prod"].take(elems)
            w = np.exp(score - np.repeat(np.maximum.reduceat(score, st), nn))
            prob = w / np.repeat(np.add.reduceat(w, st), nn)
            c = np.cumsum(prob)
            cum = np.repeat(nz, nn) + c - np.repeat(c[st] - prob[st], nn)
        out.start.append(start)
        out.n.append(n)
        out.x.append(tuple(col.take(np.append(elems, -1)) for col in packed[j]))
        out.prob.append(prob)
        out.cum.append(cum)
        out.guide.append(_guide(cum, GUIDE_BINS * len(n), float(len(n))))
    return out


# ---------------------------------------------------------------------------------------------- rows
@dataclass
class Rows:
    """Requests of one day and what the logging policy showed."""

    day: int
    ad: np.ndarray  # int64 [R]
    user: np.ndarray  # int64 [R]
    query: np.ndarray  # int64 [R], -1 = none
    n: np.ndarray  # int64 [R, 6] pool lengths
    shown: np.ndarray  # int64 [R, 6] position in the pool, -1 = empty
    propensity: np.ndarray  # float64 [R, 6]; meaningless where the pool is empty
    logit: np.ndarray  # float64 [R], without the intercept


def draw_rows(world: World, cat: Catalog, cfg: SynthConfig, pools: DayPools, rng: np.random.Generator, R: int, uniform: bool) -> Rows:
    """``R`` requests on ``pools.day``, the logging policy's choices (uniform or production) and true logits."""
    ad = _search(cat.ad_cum, cat.ad_guide, 1.0, rng.random(R))
    user = _search(cat.user_cum, cat.user_guide, 1.0, rng.random(R))
    c = world.arrays["ad_category"].take(ad).astype(np.int64)
    lo, hi = cat.query_start.take(c), cat.query_start.take(c + 1)
    query = lo + (rng.random(R) * (hi - lo)).astype(np.int64)
    no_query = (rng.random(R) >= cfg.query_rate) | (hi == lo)
    query = query - no_query * (query + 1)  # -1 = no query
    n = np.empty((R, N_COMPONENTS), dtype=np.int64)
    shown = np.empty((R, N_COMPONENTS), dtype=np.int64)
    propensity = np.empty((R, N_COMPONENTS))
    u = rng.random((N_COMPONENTS, R))
    x = []
    for j in range(N_COMPONENTS):
        nj = pools.n[j].take(ad)
        start = pools.start[j].take(ad)
        empty = nj == 0
        F = len(pools.cum[j])
        if uniform:
            pos = (u[j] * nj).astype(np.int64)
            propensity[:, j] = 1.0 / (nj + empty)
        elif F:
            end = start + nj - 1
            # target ad + u: the pool's cumulative probabilities run from ad to ad + 1 (up to rounding)
            flat = _search(pools.cum[j], pools.guide[j], float(len(pools.n[j])), ad + u[j])
            flat = np.minimum(np.maximum(flat, start), end)
            pos = flat - start
            propensity[:, j] = pools.prob[j].take(flat, mode="clip")
        else:
            pos = np.zeros(R, dtype=np.int64)
        n[:, j] = nj
        shown[:, j] = pos - empty * (pos + 1)
        flat = start + pos
        at = flat + empty * (F - flat)  # entry F = zeros for an empty pool
        x.append(tuple(col.take(at) for col in pools.x[j]))
    ctx, category, taste = world._context(ad, user, query)
    logit = ctx + world._creative_from(category, taste, x)
    return Rows(pools.day, ad, user, query, n, shown, propensity, logit)


def calibrate_base(world: World, cat: Catalog, cfg: SynthConfig) -> float:
    """Intercept ``b`` with mean σ(b + logit) = target_ctr over production-logged rows of up to 8 train days."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_STREAM_CALIBRATION,)))
    days = np.unique(np.linspace(0, max(cfg.train_days - 1, 0), min(8, cfg.train_days)).round().astype(np.int64))
    per_day = CALIBRATION_ROWS // len(days)
    x = np.concatenate([draw_rows(world, cat, cfg, day_pools(world, cat, int(d)), rng, per_day, uniform=False).logit for d in days])
    lo, hi = -30.0, 30.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if sigmoid(mid + x).mean() < cfg.target_ctr:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------------- arrow
def _strings(values: np.ndarray) -> pa.Array:
    """Fixed-width byte rows [R, width] (uint8) → pa.string array, without per-row Python."""
    R, width = values.shape
    offsets = np.arange(0, (R + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(R, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(values)))


#: The two hex digits of each byte value, as one uint16 (so one 1-D gather formats a byte).
_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)


def _hex_ids(ids: np.ndarray) -> pa.Array:
    """16 lowercase hex digits per non-negative int64 id (big-endian byte order)."""
    octets = ids.astype(">u8").view(np.uint8)
    return _strings(_HEX_PAIRS.take(octets).view(np.uint8).reshape(len(ids), 16))


def rows_table(world: World, cat: Catalog, pools: DayPools, rows: Rows, first_day: int, click: np.ndarray, row0: int, policy: str, salt: int) -> pa.Table:
    """The impressions-schema table of ``rows`` (global row numbers ``row0 …``)."""
    R = len(rows.ad)
    a = world.arrays
    schema = impressions_schema()
    ad = pa.array(rows.ad)
    has_q = rows.query >= 0
    policy_bytes = np.frombuffer(policy.encode(), dtype=np.uint8)
    cols: dict[str, pa.Array] = {
        "impression_id": _hex_ids(hashed_ids(NAMESPACES["impression"], np.arange(row0, row0 + R), salt)),
        "day": pa.array(np.full(R, first_day + rows.day, dtype=np.int32), type=pa.date32()),
        "logging_policy": _strings(np.broadcast_to(policy_bytes, (R, len(policy_bytes)))),
        "user_id": pa.array(a["user_id"][rows.user]),
        "user_age": pa.array(a["user_age"][rows.user], mask=~cat.age_logged[rows.user]),
        "user_gender": pa.array(a["user_gender"][rows.user], mask=~cat.gender_logged[rows.user]),
        "ad_id": pa.array(a["ad_id"][rows.ad]),
        "category": cat.category_names.take(pa.array(a["ad_category"][rows.ad])),
        "query_id": pa.array(a["query_id"][rows.query], mask=~has_q),  # index -1 is masked anyway
        # cat.segments[q] = the segments of query q; its last entry is the empty list (index -1 = no query)
        "query_segments": cat.segments.take(pa.array(np.where(has_q, rows.query, len(cat.segments) - 1))),
        "click": pa.array(click.astype(np.int8)),
    }
    for j, comp in enumerate(COMPONENTS):
        empty = rows.shown[:, j] < 0
        cols[candidates_col(comp)] = pools.lists[j].take(ad)
        cols[exposed_col(comp)] = pa.array(rows.shown[:, j].astype(np.int16), mask=empty)
        cols[propensity_col(comp)] = pa.array(rows.propensity[:, j].astype(np.float32), mask=empty)
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


# ---------------------------------------------------------------------------------------------- simulate
def simulate(cfg: SynthConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Write ``out/raw/part-NNNNN.parquet`` (train rows chronological, then test rows) and ``out/world/``.

    Part ``b`` holds rows ``[b·batch_rows, (b+1)·batch_rows)`` of its split (train parts first); row ``i`` of
    a split of ``N`` rows over ``D`` days is on day ``i·D // N``. A previous simulation in ``out`` is replaced
    (only its own files: ``raw/part-*.parquet`` and ``world/``'s two files); ``world/world.json`` is
    written last, so a folder without it is an interrupted run. Returns a summary: ``train_rows``,
    ``test_rows``, ``test_start_day`` (ISO), ``seed``, ``out``, realized CTRs, the intercept ``base`` and
    the Table-1 statistics of the train rows (coverage, average candidates, share of pools over 15).
    """
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"simulate: expected a SynthConfig, got {type(cfg).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out}: exists and is not a folder")
    world, cat = build(cfg)
    world = world._with_base(calibrate_base(world, cat, cfg))
    _clear_previous(out)
    raw = out / RAW_DIR
    raw.mkdir(parents=True, exist_ok=True)
    salt = id_salt(cfg.seed)
    first_day = cfg.start_day.toordinal() - _EPOCH_ORDINAL
    plan = [(PRODUCTION, s) for s in range(0, cfg.train_rows, cfg.batch_rows)]
    plan += [(UNIFORM, s) for s in range(0, cfg.test_rows, cfg.batch_rows)]
    clicks = {PRODUCTION: 0, UNIFORM: 0}
    present, candidates, over_pad = (np.zeros(N_COMPONENTS, dtype=np.int64) for _ in range(3))
    cache: dict[int, DayPools] = {}
    bar = _progress(cfg.total_rows, progress)
    # Parquet encoding releases the GIL: part b is written by one background thread while part b + 1 is
    # generated (at most one part waits, so memory stays ~2 batches).
    writer = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = None
    try:
        for b, (policy, s) in enumerate(plan):
            rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_STREAM_ROWS, b)))
            total, days, offset = (cfg.train_rows, cfg.train_days, 0) if policy == PRODUCTION else (cfg.test_rows, cfg.test_days, cfg.train_days)
            e = min(total, s + cfg.batch_rows)
            tables = []
            for d, lo, hi in _day_slices(s, e, total, days):  # the batch's rows, one day at a time
                day = offset + d
                if day not in cache:
                    cache = {day: day_pools(world, cat, day)}  # days only move forward
                rows = draw_rows(world, cat, cfg, cache[day], rng, hi - lo, uniform=policy == UNIFORM)
                click = rng.random(hi - lo) < sigmoid(world.base + rows.logit)
                row0 = lo if policy == PRODUCTION else cfg.train_rows + lo
                tables.append(rows_table(world, cat, cache[day], rows, first_day, click, row0, policy, salt))
                clicks[policy] += int(click.sum())
                if policy == PRODUCTION:
                    present += (rows.n > 0).sum(0)
                    candidates += rows.n.sum(0)
                    over_pad += (rows.n > PAD_TO).sum(0)
            if pending is not None:
                pending.result()
            pending = writer.submit(_write_part, pa.concat_tables(tables), raw / f"part-{b:05d}.parquet", bar, e - s)
        if pending is not None:
            pending.result()
    finally:
        writer.shutdown(wait=True)
        bar.close()
    stats = {
        "train_ctr": clicks[PRODUCTION] / max(cfg.train_rows, 1),
        "test_ctr": clicks[UNIFORM] / max(cfg.test_rows, 1),
        "coverage": {c: float(present[j] / max(cfg.train_rows, 1)) for j, c in enumerate(COMPONENTS)},
        "avg_candidates": {c: float(candidates[j] / max(present[j], 1)) for j, c in enumerate(COMPONENTS)},
        "share_over_pad": {c: float(over_pad[j] / max(present[j], 1)) for j, c in enumerate(COMPONENTS)},
    }
    world.params["stats"] = stats
    world.save(out / WORLD_DIR)
    return {
        "train_rows": cfg.train_rows,
        "test_rows": cfg.test_rows,
        "test_start_day": cfg.test_start_day.isoformat(),
        "start_day": cfg.start_day.isoformat(),
        "seed": cfg.seed,
        "out": str(out),
        "raw_files": len(plan),
        "base": world.base,
        **stats,
    }


def _day_slices(start: int, stop: int, total: int, days: int) -> list[tuple[int, int, int]]:
    """``(day, lo, hi)``: the rows ``[lo, hi)`` of ``[start, stop)`` on each day, row ``i`` of ``total`` being
    on day ``i·days // total`` (so day ``d`` holds rows ``ceil(d·total/days) … ceil((d+1)·total/days) - 1``)."""
    out = []
    for d in range(start * days // total, (stop - 1) * days // total + 1):
        lo, hi = max(start, -(-d * total // days)), min(stop, -(-(d + 1) * total // days))
        if hi > lo:
            out.append((d, lo, hi))
    return out


def _write_part(table: pa.Table, path: Path, bar: Any, rows: int) -> None:
    pq.write_table(table, path, compression="zstd")
    bar.update(rows)


def _clear_previous(out: Path) -> None:
    world_dir = out / WORLD_DIR
    for name in (WORLD_JSON, WORLD_JSON + ".tmp", WORLD_NPZ, WORLD_NPZ + ".tmp"):  # world.json first
        (world_dir / name).unlink(missing_ok=True)
    raw = out / RAW_DIR
    if raw.is_dir():
        for p in sorted(raw.glob("part-*.parquet")):
            p.unlink()


def _progress(total: int, on: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, desc="genco synth", disable=not on)


__all__ = [
    "Catalog",
    "DayPools",
    "Rows",
    "build",
    "day_pools",
    "draw_rows",
    "calibrate_base",
    "rows_table",
    "simulate",
    "RAW_DIR",
    "WORLD_DIR",
    "MAX_POOL",
]
