r"""The logging policies: which requests arrive on a day, what each policy shows from their pools, with
which propensity, and the true logit of what was shown.

Policies. Train days: *production* — per component a softmax over a fixed, noisy, sharpened estimate of
each element's quality (``elem{j}_prod`` in the world; it ignores taste and synergy); the propensity
recorded is the softmax probability of the shown element. Test days: *uniform* — each element with
probability ``1/n``. Click ``~ Bernoulli(CTR)`` with the world's exact CTR.

Within a batch, rows are drawn one day at a time against that day's :class:`DayPools` (every ad's pools, the
production softmax and a guide table for O(1) inverse-CDF draws), built once per day. Ids, pools and
propensities are gathered with numpy / Arrow ``take``; no per-row Python. :func:`calibrate_base` sets the
world's intercept on production-logged rows. The catalog they draw from: :mod:`genco_data.synth.catalog`;
the rows written to Parquet: :mod:`genco_data.synth.simulation`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from genco_data.format.components import N_COMPONENTS
from genco_data.synth.catalog import Catalog, _guide, _search
from genco_data.synth.config import SynthConfig
from genco_data.synth.draw import _STREAM_CALIBRATION
from genco_data.synth.world import World, sigmoid

CALIBRATION_ROWS = 131_072
GUIDE_BINS = 16  # guide-table bins per pool for the production policy's inverse-CDF draw


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


__all__ = [
    "DayPools",
    "Rows",
    "day_pools",
    "draw_rows",
    "calibrate_base",
    "CALIBRATION_ROWS",
    "GUIDE_BINS",
]
