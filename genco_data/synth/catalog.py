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

Pools. Per component ``j`` an ad has a pool iff its point ``v < coverage_j``, of ``k = F⁻¹(v / coverage_j)`` slots, ``F``
the law of ``1 + NegBin(mean avg_j - 1, dispersion r_j)`` truncated at :data:`MAX_POOL` (pools over ``PAD_TO = 15``
occur for ~1–2 % of the title / highlight / structure_attribute rows). In the Table-1 world (``calibration="ads"``)
``v`` is stratified over *ads* (``v_a = (π(a) + U_a) / A``, ``π`` a random permutation), so the share of ads with the
component and their mean pool length land on Table 1 up to one ad; in the earlier worlds (``"rows"``) ``v`` is uniform
*in traffic* (ads in random order tile [0, 1) with intervals as long as their traffic share), so the row-weighted
figures do. Over the ``train_days + test_days`` window each slot but the first is, with probability
``churn · CHURN_SCALE[j]``, *replaced*: its element retires on day ``t1`` and a new one is added on day ``t2``
(``t2 = t1`` for half of them, else independent; ``t ~ U{1..days-1}``), so the expected pool length is ``k`` on
every day while pools change. Which element a slot shows: :mod:`genco_data.synth.elements` (Zipf catalogs per
category — one for all categories for :data:`SHARED_ACROSS_CATEGORIES` — sized so that ids per ad hit Table 1; or
the earlier worlds' uniform catalogs / an element per slot).

Table 1 at once (the default world; targets and the independent check: :mod:`genco_data.synth.table1`). Write ``T``
for the train days, ``A`` for the ads, ``R̄ = rows / (A·T)`` (``rows_per_ad_day``), and per component ``r_j`` ids per
ad, ``ρ_j`` the share of train rows whose pool is non-empty and ``e_j`` the exposures per candidate per day
(per (id, day) pair). Each such row exposes one element, so

.. math::

    e_j = \frac{\text{rows}\,ρ_j}{\sum_d D_j(d)} = \frac{R̄\,ρ_j}{r_j}\,τ_j, \qquad
    τ_j = \frac{N_j\,T}{\sum_d D_j(d)} \ge 1

with ``N_j = r_j A`` the window's distinct ids and ``D_j(d)`` those in a pool on day ``d``: ``1/τ_j`` is the mean share
of days an id is in some shown pool (less than 1 because an id's ads are not shown every day and churned slots live
part of the window). If traffic ignored the pools (``ρ_j = coverage_j``), the paper's figures would need
``R̄ τ_j = e_j r_j / coverage_j`` = 4.8, 4.6, 4.0, 5.4, **1.4**, 4.3 for title … structure_attribute — one ``R̄`` cannot
give all six, since ``τ ≥ 1`` and attribute asks for ~3× less than the others. The choice made here: ads with an
attribute pool get ``attribute_traffic`` (0.1) times the traffic of the others, so the attribute covers 58.3 % of the
ads but only ~12 % of the rows, and the others keep ``ρ_j = coverage_j``. Measured ``τ_j`` ≈ 1.4–1.6 (attribute ≈ 2.2:
its ads are shown rarely) then fit ``R̄ = 3.1`` rows per ad and day (~100 train rows per ad); ``CHURN_SCALE`` trims
marketing, highlight and structure_attribute. Ids per ad are exact by construction (the catalog sizes are solved
for them); the exposures hold within ±20 % from 40 k to 3 M train rows (they drift up slowly with size: Zipf heads
grow with the catalogs), coverage within 0.5 points, average candidates within 3 %.
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
from genco_data.synth.elements import assign_uniform, assign_zipf, solve_catalog_size
from genco_data.synth.table1 import PAPER_IDS_PER_AD
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
#: Relative churn of each component in the Table-1 world (× ``SynthConfig.churn``; the earlier worlds churn every
#: component alike): marketing lines follow promotions, structured attributes hardly change.
CHURN_SCALE: dict[str, float] = {
    "title": 1.0,
    "image": 1.0,
    "marketing": 2.5,
    "highlight": 1.3,
    "attribute": 1.0,
    "structure_attribute": 0.3,
}
ATTRIBUTE = COMPONENTS.index("attribute")
#: Components whose Zipf catalog is shared by all categories (marketing lines — "free shipping", "limited offer" — are
#: not about the product); the others have one catalog per category (``catalog_scope="category"``).
SHARED_ACROSS_CATEGORIES = frozenset({"marketing"})


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

    def pools(j: int, comp: str, k: np.ndarray) -> None:
        s, n, b, d = _pools_over_days(rng, k, D, min(1.0, cfg.churn * (CHURN_SCALE[comp] if cfg.calibration == "ads" else 1.0)))
        if cfg.catalog == "zipf":
            generic = comp in SHARED_ACROSS_CATEGORIES
            groups, n_groups = (np.zeros_like(ad_category), 1) if generic else (catalog_of_ad, n_catalogs)
            e, size = _assign_zipf(rng, cfg, comp, groups, n_groups, ad_pop, n, b, d)
        else:
            e, size = assign_uniform(rng, catalog_of_ad, n, n_catalogs, cfg.catalog_size if cfg.catalog == "uniform" else None)
        slot_elem.append(e)
        n_elements.append(size)
        pool_start.append(s)
        pool_len.append(n)
        birth.append(b)
        death.append(d)

    if cfg.calibration == "rows":  # the earlier worlds (sparse, learnable), in their random stream order
        for j, comp in enumerate(COMPONENTS):
            # one traffic-uniform point per ad decides both: present iff v < coverage, then the length is the
            # quantile v / coverage, so the row-weighted coverage and mean length land on Table 1
            pools(j, comp, _pool_lengths(comp, _traffic_uniform(rng, ad_pop)))
    else:
        # per ad: a stratified point decides presence and length, so the share of *ads* with the component and
        # their mean pool length land on Table 1 up to one ad; then ads with an attribute get less traffic
        lengths = [_pool_lengths(comp, (rng.permutation(A) + rng.random(A)) / A) for comp in COMPONENTS]
        ad_pop = np.where(lengths[ATTRIBUTE] > 0, ad_pop * cfg.attribute_traffic, ad_pop)
        for j, comp in enumerate(COMPONENTS):
            pools(j, comp, lengths[j])
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


def _pool_lengths(comp: str, v: np.ndarray) -> np.ndarray:
    """Pool length per ad from its point ``v`` in [0, 1): 0 iff ``v >= coverage``, else the quantile ``v / coverage``."""
    cover = PAPER_COVERAGE[comp]
    k = _pool_length_ppf(PAPER_AVG_CANDIDATES[comp], POOL_DISPERSION[comp], np.minimum(v / cover, 1.0))
    k[v >= cover] = 0
    return k


def _assign_zipf(rng: np.random.Generator, cfg: SynthConfig, comp: str, group_of_ad: np.ndarray, n_groups: int,
                 ad_pop: np.ndarray, length: np.ndarray, birth: np.ndarray, death: np.ndarray) -> tuple[np.ndarray, int]:
    """Zipf catalogs sized so that the expected distinct ids seen in train is ``PAPER_IDS_PER_AD[comp]`` × the ads
    expected in train (per catalog; :mod:`genco_data.synth.elements`)."""
    T = cfg.train_days
    slot_ad = np.repeat(np.arange(len(length)), length)
    if cfg.train_rows:
        lam = cfg.train_rows / T * ad_pop / ad_pop.sum()  # expected train rows per day of each ad
        live = np.clip(np.minimum(death, T) - birth, 0, None).astype(np.float64)  # train days a slot lives
        seen = -np.expm1(-lam[slot_ad] * live)
        ads_seen = -np.expm1(-lam * T)
    else:
        seen, ads_seen = np.ones(len(slot_ad)), np.ones(len(length))
    slot_group = group_of_ad[slot_ad]
    draws = np.bincount(slot_group, weights=seen, minlength=n_groups)
    target = PAPER_IDS_PER_AD[comp] * np.bincount(group_of_ad, weights=ads_seen, minlength=n_groups)
    longest = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(longest, group_of_ad, length)
    sizes = np.array([solve_catalog_size(t, d, cfg.zipf_exponent, int(m)) if m else 0
                      for t, d, m in zip(target.tolist(), draws.tolist(), longest.tolist())], dtype=np.int64)
    return assign_zipf(rng, slot_group, slot_ad, sizes, cfg.zipf_exponent)


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


__all__ = [
    "Catalog",
    "build",
    "CATEGORY_SHARE",
    "MAX_POOL",
    "POOL_DISPERSION",
]
