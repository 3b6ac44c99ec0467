"""The evaluator's array math: calibrated sCTR (paper, Algorithm 1) and friends, their 95 % confidence
intervals (delta method; bootstrap as a cross-check), NSCTR, and rank correlations. No I/O here: public
functions check shapes, private ones compute (see :mod:`genco_data.evaluate` for files and predictions).

Layout (component-major, so each component's row vector is contiguous)::

    R rows of the uniform-logged test split, K = 6 components (COMPONENTS order)
    n      int32 [K, R]   full candidate count n_ij; 0 where the ad lacks component j
    shown  int16 [K, R]   index of the shown element; -1 where the pool is empty
    choice int16 [K, R]   the policy's index into the *original* pool; -1 where the pool is empty
    y      int8  [R]      click in {0, 1}

Estimators (all are ratios of means over the R rows, so one delta-method formula serves all):

* calibrated sCTR of component j (Algorithm 1): ``a_i = n_ij y_i m_ij``, ``b_i = n_ij m_ij`` with
  ``m_ij = 1[choice_ij = shown_ij]`` (rows lacking j never match); ``sCTR_j = Σa / Σb``. Under uniform
  logging E[n m | x] = 1, so it estimates the mean true CTR, over rows having j, of "the policy's choice on
  j, uniform on the others".
* plain sCTR: the same with weight 1 (``a_i = y_i m_ij``, ``b_i = m_ij``) — biased toward small pools.
* combination-level calibrated sCTR: ``m_i = Π_j m_ij`` over the present components, weight
  ``w_i = Π_{j present} n_ij``; it estimates the policy's own mean true CTR.
* uniform CTR on the same rows: ``u = Σ c / Σ d`` with ``c_i = y_i d_i``, ``d_i = 1[row i has j]``.
* lift = sCTR / u − 1 (Table 4 when restricted to a candidate-count bucket).

Standard errors (delta method). For ``r = Ā / B̄`` the linearisation is ``p_i = (a_i − r b_i) / B̄`` and
``Var(r) ≈ Σ p_i² / (R (R − 1))``. For the lift ``L = r / u − 1`` the joint linearisation over
(a, b, c, d) is ``ψ_i = p_i / u − r q_i / u²`` with ``q_i = (c_i − u d_i) / D̄``, ``Var(L) ≈ Σ ψ_i² / (R (R − 1))``
(no independence between numerator and denominator is assumed). Because y is binary and the weights are
constant within a row, every Σ reduces to a few sufficient statistics per (component, bucket, click):
matched count, Σ n and Σ n² — see :func:`_ratio` and :func:`_lift`.

Intervals. ``r ± z·se`` under-covers when the matched rows carry few effective clicks — the
combination-level sCTR, whose weights Π n are heavy-tailed (measured: 57 % coverage at 4,000 rows with
pools up to 10, 81 % at 50,000). So the reported interval of a ratio is the score (Wilson) interval of the
same estimating equation Σ w m (y − θ) = 0 with its null variance Σ w² m θ(1 − θ), i.e. Wilson with Kish's
effective size ``W1² / W2`` (:func:`wilson_interval`; 92–98 % in the same runs). The lift's interval is
built on the log scale from that score interval plus the joint delta-method terms of u
(:func:`lift_interval`). ``value ± z·se`` remains available as the plain delta-method interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from genco_data.format.components import BUCKET_EDGES, COMPONENTS, N_COMPONENTS

K = N_COMPONENTS
N_BUCKETS = 3
#: Column of the per-cell arrays that pools every bucket (columns 0..2 are the Table-4 buckets).
ALL = N_BUCKETS
#: Row of the per-cell arrays that holds the combination-level metric (rows 0..K-1 are components).
COMB = K


def z_value(confidence: float) -> float:
    """Two-sided normal quantile, e.g. 1.95996 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def bucket_index(n: np.ndarray) -> np.ndarray:
    """Table-4 bucket of each pool size. n int [K, R] -> int8 [K, R]: 0 ``n < lo``, 1 ``lo <= n <= hi``,
    2 ``n > hi`` (``components.BUCKET_EDGES``), -1 where the component is absent (n = 0)."""
    out = np.full(n.shape, -1, np.int8)
    for j, c in enumerate(COMPONENTS):
        lo, hi = BUCKET_EDGES[c]
        nj = n[j]
        b = (nj >= lo).astype(np.int8) + (nj > hi).astype(np.int8)
        out[j] = np.where(nj > 0, b, -1)
    return out


# ----------------------------------------------------------------------------------------- the test log
@dataclass(frozen=True, eq=False)
class UniformLog:
    """A uniform-logged test split as arrays, plus the policy-independent precomputations.

    Build with :meth:`build`; the fields after ``ad`` are derived.
    """

    n: np.ndarray  # int32 [K, R] pool sizes, 0 = absent
    shown: np.ndarray  # int16 [K, R] shown index, -1 = absent
    y: np.ndarray  # int8 [R] click
    ad: np.ndarray  # int64 [R] ad id (NSCTR's groups)
    present: np.ndarray  # bool [K, R]
    cell: np.ndarray  # int32 [K, R]: y · S + n (S = max n + 1) — one bincount gives counts per (click, pool size)
    moments: np.ndarray  # float64 [K, S, 3 bucket, 3]: [1, n, n²] · 1[bucket(n) = b] (absent n = 0: zeros)
    w_comb: np.ndarray  # float64 [R]: Π_{j present} n_ij
    ad_index: np.ndarray  # intp [R]: dense ad index
    ad_rows: np.ndarray  # float64 [K + 1, A]: rows per ad having component j (row K: all rows)
    present_stats: np.ndarray  # float64 [K, 3, 2]: rows having j, by bucket x click
    clicks: np.ndarray  # float64 [2]: rows without / with a click

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_ads(self) -> int:
        return int(self.ad_rows.shape[1])

    @classmethod
    def build(cls, n: np.ndarray, shown: np.ndarray, y: np.ndarray, ad: np.ndarray | None = None) -> "UniformLog":
        """Check and precompute. ``ad=None`` makes every row its own ad (NSCTR then equals plain sCTR)."""
        n = np.ascontiguousarray(n, dtype=np.int32)
        shown = np.ascontiguousarray(shown, dtype=np.int16)
        y = np.ascontiguousarray(y, dtype=np.int8)
        if n.ndim != 2 or n.shape[0] != K or shown.shape != n.shape or y.shape != (n.shape[1],):
            raise ValueError(f"expected n, shown [{K}, R] and y [R]; got {n.shape}, {shown.shape}, {y.shape}")
        R = y.shape[0]
        if R == 0:
            raise ValueError("the test log has no rows")
        if ((y != 0) & (y != 1)).any():
            raise ValueError("click must be 0 or 1")
        present = n > 0
        bad = (n < 0) | ((shown < 0) == present) | (shown >= np.maximum(n, 1))
        if bad.any():
            j, i = np.argwhere(bad)[0]
            raise ValueError(f"{COMPONENTS[j]}: row {i}: shown index {shown[j, i]} is inconsistent with a pool of {n[j, i]}")
        ad = np.arange(R, dtype=np.int64) if ad is None else np.ascontiguousarray(ad, dtype=np.int64)
        if ad.shape != (R,):
            raise ValueError(f"ad must have shape [{R}], got {ad.shape}")
        S = int(n.max()) + 1
        cell = (y[None, :].astype(np.int32) * S + n).astype(np.int32)
        sizes = np.broadcast_to(np.arange(S, dtype=np.int32), (K, S))
        onehot = np.eye(N_BUCKETS)[np.maximum(bucket_index(sizes), 0)] * (sizes > 0)[..., None]  # [K, S, 3]
        powers = np.stack([np.ones(S), np.arange(S), np.arange(S) ** 2.0], axis=1)  # [S, 3]
        moments = onehot[..., None] * powers[None, :, None, :]  # [K, S, 3, 3]
        w_comb = np.prod(np.maximum(n, 1).astype(np.float64), axis=0)
        _, ad_index = np.unique(ad, return_inverse=True)
        ad_index = ad_index.astype(np.intp).reshape(-1)
        A = int(ad_index.max()) + 1
        ad_rows = np.empty((K + 1, A))
        present_stats = np.empty((K, N_BUCKETS, 2))
        for j in range(K):
            ad_rows[j] = np.bincount(ad_index, weights=present[j], minlength=A)
            counts = np.bincount(cell[j], minlength=2 * S).reshape(2, S)
            present_stats[j] = np.einsum("ys,sb->by", counts, moments[j, :, :, 0])  # [3 bucket, 2 click]
        ad_rows[K] = np.bincount(ad_index, minlength=A)
        clicks = np.bincount(y, minlength=2).astype(np.float64)
        return cls(n, shown, y, ad, present, cell, moments, w_comb, ad_index, ad_rows, present_stats, clicks)


# ------------------------------------------------------------------------------------- policy matches
@dataclass(frozen=True, eq=False)
class Matches:
    """Rows where the policy's choice equals the shown element: per component, and on every component."""

    idx: tuple[np.ndarray, ...]  # K arrays of row indices (int64), rows lacking j excluded
    comb: np.ndarray  # row indices where all present components match

    def count(self) -> np.ndarray:
        return np.array([len(i) for i in self.idx] + [len(self.comb)])


def match(log: UniformLog, choices: np.ndarray) -> Matches:
    """choices int [K, R] (-1 where absent) -> the matched rows. Absent cells compare equal (-1 = -1), so
    ``all`` over components is the combination match; the per-component match masks them out."""
    if choices.shape != log.shown.shape:
        raise ValueError(f"choices must have shape {log.shown.shape}, got {choices.shape}")
    eq = choices == log.shown  # bool [K, R]
    idx = tuple(np.flatnonzero(eq[j] & log.present[j]) for j in range(K))
    return Matches(idx, np.flatnonzero(eq.all(axis=0)))


# --------------------------------------------------------------------------------- sufficient statistics
@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of every estimator (weights m_i = 1, or bootstrap multiplicities)."""

    rows: float  # Σ m_i
    comp: np.ndarray  # [K, 3 bucket, 2 click, 3]: matched rows' Σ m, Σ m n, Σ m n²
    present: np.ndarray  # [K, 3 bucket, 2 click]: Σ m over rows having the component
    comb: np.ndarray  # [2 click, 3]: fully matched rows' Σ m, Σ m w, Σ m w²  (w = Π n)
    total: np.ndarray  # [2 click]: Σ m over all rows


def sufficient_stats(log: UniformLog, matches: Matches, weights: np.ndarray | None = None) -> Stats:
    """Sums over the matched rows only (a_i = b_i = 0 elsewhere), so the cost is ~ Σ_j R / n_j."""
    S = log.moments.shape[1]
    comp = np.empty((K, N_BUCKETS, 2, 3))
    for j in range(K):
        idx = matches.idx[j]
        counts = np.bincount(log.cell[j, idx], weights=None if weights is None else weights[idx], minlength=2 * S).reshape(2, S)
        comp[j] = np.einsum("ys,sbm->bym", counts, log.moments[j])  # Σ m·[1, n, n²] per bucket x click
    if weights is None:
        present = log.present_stats
        total = log.clicks
        rows = float(log.rows)
    else:
        present = np.empty((K, N_BUCKETS, 2))
        for j in range(K):
            counts = np.bincount(log.cell[j], weights=weights, minlength=2 * S).reshape(2, S)
            present[j] = np.einsum("ys,sb->by", counts, log.moments[j, :, :, 0])
        total = np.bincount(log.y, weights=weights, minlength=2)
        rows = float(weights.sum())
    idx = matches.comb
    yk = log.y[idx]
    w = log.w_comb[idx]
    m = None if weights is None else weights[idx]
    mw = w if m is None else m * w
    comb = np.stack(
        [np.bincount(yk, weights=m, minlength=2), np.bincount(yk, weights=mw, minlength=2), np.bincount(yk, weights=mw * w, minlength=2)],
        axis=1,
    )
    return Stats(rows, comp, present, comb, total)


def _cells(stats: Stats) -> tuple[np.ndarray, np.ndarray]:
    """Matched moments [K+1, 4, 2, 3] and present counts [K+1, 4, 2]; column ALL sums the buckets, row COMB
    holds the combination (its bucket columns are NaN)."""
    mom = np.full((K + 1, N_BUCKETS + 1, 2, 3), np.nan)
    mom[:K, :N_BUCKETS] = stats.comp
    mom[:K, ALL] = stats.comp.sum(axis=1)
    mom[COMB, ALL] = stats.comb
    pres = np.full((K + 1, N_BUCKETS + 1, 2), np.nan)
    pres[:K, :N_BUCKETS] = stats.present
    pres[:K, ALL] = stats.present.sum(axis=1)
    pres[COMB, ALL] = stats.total
    return mom, pres


def _ratio(W1, Wy, W2, W2y, rows: float):
    """r = Wy / W1 with W1 = Σ b, Wy = Σ a (a = w y m, b = w m); W2 = Σ w² m, W2y = Σ w² y m.

    Σ (a_i − r b_i)² = Σ w² m (y − r)² = W2y (1 − 2r) + r² W2 (y binary), hence
    ``Var(r) = R/(R−1) · [W2y (1 − 2r) + r² W2] / W1²``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = Wy / W1
        ss = W2y * (1 - 2 * r) + r * r * W2
        var = ss / (W1 * W1) * (rows / (rows - 1) if rows > 1 else np.nan)
    return r, np.sqrt(np.maximum(var, 0.0))


def _lift(W1, Wy, W2, W2y, N, Sy, rows: float):
    """L = r / u − 1 with r as in :func:`_ratio` and u = Sy / N (uniform CTR on the same rows).

    ``Σψ² · (R−1)/R = [W2y(1−2r) + r²W2] / (W1² u²) − 2r [Wy(1−r−u) + r u W1] / (W1 N u³)
    + r² [Sy(1−2u) + u² N] / (N² u⁴)`` (the matched rows are a subset of the rows having j, where
    (a − r b)(c − u d) = w m (y − r)(y − u) = w m [y (1 − r − u) + r u]).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = Wy / W1
        u = Sy / N
        spp = (W2y * (1 - 2 * r) + r * r * W2) / (W1 * W1)
        spq = (Wy * (1 - r - u) + r * u * W1) / (W1 * N)
        sqq = (Sy * (1 - 2 * u) + u * u * N) / (N * N)
        var = (spp / u**2 - 2 * r * spq / u**3 + r * r * sqq / u**4) * (rows / (rows - 1) if rows > 1 else np.nan)
        lift = r / u - 1
    return lift, np.sqrt(np.maximum(var, 0.0))


def wilson_interval(W1, Wy, W2, rows: float, z: float):
    """Score interval of r = Wy / W1: the θ with ``(Wy − θ W1)² ≤ z² · R/(R−1) · W2 · θ (1 − θ)``.

    That is Wilson's interval ``(p + z²/2n ± z sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)`` with Kish's
    effective size ``n = W1² / W2 · (R−1)/R``. For binary y the null variance Σ w² m θ(1−θ) is the full
    variance of Σ w m (y − θ) as long as the weights are not correlated with the rows' CTRs."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = W1 * W1 / W2 * ((rows - 1) / rows if rows > 1 else np.nan)
        p = Wy / W1
        zz = z * z / n
        centre = (p + zz / 2) / (1 + zz)
        half = z / (1 + zz) * np.sqrt(np.maximum(p * (1 - p) / n + zz / (4 * n), 0.0))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def lift_interval(r, r_lo, r_hi, r_se, u, lift, lift_se, z: float):
    """Interval of L = r / u − 1 on the log scale: ``log ρ ± h`` (ρ = L + 1) with
    ``h_lo² = (log r − log r_lo)² + z² [Var(log ρ) − Var(log r)]`` (and h_hi with r_hi), where the bracket —
    u's variance minus twice its covariance with r — comes from the joint delta method
    (Var(log ρ) = (se_L / ρ)², Var(log r) = (se_r / r)²). Reduces to the log-scale joint delta interval when
    the score interval is symmetric; keeps its skew when effective clicks are few. r = 0: [r_lo/u, r_hi/u] − 1."""
    with np.errstate(invalid="ignore", divide="ignore"):
        extra = z * z * ((lift_se / (lift + 1)) ** 2 - (r_se / r) ** 2)
        lr = np.log(r)
        lo = np.exp(lr - np.sqrt(np.maximum((lr - np.log(r_lo)) ** 2 + extra, 0.0))) / u - 1
        hi = np.exp(lr + np.sqrt(np.maximum((np.log(r_hi) - lr) ** 2 + extra, 0.0))) / u - 1
        zero = r <= 0
        undefined = ~np.isfinite(lift)
        lo = np.where(undefined, np.nan, np.where(zero, r_lo / u - 1, lo))
        hi = np.where(undefined, np.nan, np.where(zero, r_hi / u - 1, hi))
    return lo, hi


def effective_size(W1, W2):
    """Kish's effective sample size of a weighted mean, ``n_eff = (Σ w)² / Σ w²`` over the matched rows
    (``W1 = Σ w m``, ``W2 = Σ w² m``): the number of equally weighted rows that would give the same variance.
    Weight 1 (plain sCTR) gives the matched count; the calibrated sCTR's weights n (Π n for the combination)
    give fewer, often far fewer. 0 where nothing matched."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(W2) > 0, np.asarray(W1, dtype=np.float64) ** 2 / W2, 0.0)


#: Names of the per-cell estimates :func:`estimates` returns (each [K+1, 4], plus ``_se``, ``_lo``, ``_hi``).
ESTIMATES = ("calibrated", "plain", "uniform", "lift")


def estimates(stats: Stats, z: float = 1.959963984540054) -> dict[str, np.ndarray]:
    """Point estimates per cell [K+1 (components, combination), 4 (buckets, all)]: ``calibrated``,
    ``plain``, ``uniform`` (mean click on the same rows), ``lift`` (calibrated / uniform − 1); each with
    ``<name>_se`` (delta method), ``<name>_lo`` / ``<name>_hi`` (score interval; log-scale hybrid for the
    lift) and ``<name>_neff`` (:func:`effective_size`; the lift's is the smaller of its numerator's and
    denominator's); plus ``matched`` and ``rows`` (counts)."""
    mom, pres = _cells(stats)
    cnt, s1, s2 = mom[..., 0], mom[..., 1], mom[..., 2]  # [K+1, 4, 2 click]
    W1, Wy, W2, W2y = s1.sum(-1), s1[..., 1], s2.sum(-1), s2[..., 1]
    N, Sy = pres.sum(-1), pres[..., 1]
    M, My = cnt.sum(-1), cnt[..., 1]
    R = stats.rows
    out: dict[str, np.ndarray] = {}
    for name, (a1, ay, a2, a2y) in {"calibrated": (W1, Wy, W2, W2y), "plain": (M, My, M, My), "uniform": (N, Sy, N, Sy)}.items():
        out[name], out[f"{name}_se"] = _ratio(a1, ay, a2, a2y, R)
        out[f"{name}_lo"], out[f"{name}_hi"] = wilson_interval(a1, ay, a2, R, z)
        out[f"{name}_neff"] = effective_size(a1, a2)
    out["lift"], out["lift_se"] = _lift(W1, Wy, W2, W2y, N, Sy, R)
    out["lift_neff"] = np.fmin(out["calibrated_neff"], out["uniform_neff"])  # the scarcer of its two ratios
    out["lift_lo"], out["lift_hi"] = lift_interval(out["calibrated"], out["calibrated_lo"], out["calibrated_hi"], out["calibrated_se"],
                                                   out["uniform"], out["lift"], out["lift_se"], z)
    out["matched"], out["rows"] = M, N
    return out


# ---------------------------------------------------------------------------------------------- NSCTR
def nsctr(log: UniformLog, matches: Matches, ad_weights: np.ndarray | None = None, with_neff: bool = False):
    """NSCTR (JD, "Parallel Ranking of Ads and Creatives in Real-Time Advertising Systems", AAAI 2024,
    Algorithm 1) per component and for the combination -> (value [K+1], se [K+1]), and with ``with_neff``
    also n_eff [K+1]: Kish's size of the equivalent row weighting (each matched row of ad m weighs
    ``I_m / S_m``), ``(Σ_m I_m)² / Σ_m I_m² / S_m``.

    For ad m: ``I_m`` = its test rows (having the component), ``S_m`` = its matched rows, ``C_m`` = clicks
    on them. ``NSCTR = Σ_m I_m · C_m / S_m / Σ_m I_m`` — each ad's replay CTR weighted by its impressions.
    The paper leaves ``S_m = 0`` (0/0) undefined; here those ads are left out of both sums. The standard
    error treats ads as the sampling units (cluster delta method for a ratio of ad totals):
    ``z_m = I_m (C_m/S_m − NSCTR)``, ``Var = A/(A−1) Σ z_m² / (Σ I_m)²`` over the A ads kept.
    ``ad_weights`` (bootstrap) multiplies each ad's I_m.
    """
    A = log.n_ads
    val = np.full(K + 1, np.nan)
    se = np.full(K + 1, np.nan)
    neff = np.zeros(K + 1)
    for j in range(K + 1):
        idx = matches.idx[j] if j < K else matches.comb
        both = np.bincount(2 * log.ad_index[idx] + log.y[idx], minlength=2 * A).reshape(A, 2)  # [ad, click]
        S = both[:, 0] + both[:, 1]
        sel = np.flatnonzero(S)
        if len(sel) == 0:
            continue
        r_m = both[sel, 1] / S[sel]
        I = log.ad_rows[j, sel] if ad_weights is None else log.ad_rows[j, sel] * ad_weights[sel]
        tot = I.sum()
        if tot <= 0:
            continue
        v = float((I * r_m).sum() / tot)  # plain sums: BLAS threads cost more than they save here
        val[j] = v
        neff[j] = tot * tot / float((I * I / S[sel]).sum())
        a = len(sel)
        if a > 1:
            z = I * (r_m - v)
            se[j] = np.sqrt(a / (a - 1) * (z * z).sum()) / tot
    return (val, se, neff) if with_neff else (val, se)


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap(log: UniformLog, matches: Matches, resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Nonparametric bootstrap of every point estimate -> arrays [B, K+1, 4] per name in :data:`ESTIMATES`
    and ``nsctr`` [B, K+1].

    Rows are resampled with replacement (multiplicities ``m = bincount(integers(0, R, R))``) and the
    sufficient statistics recomputed with those weights; NSCTR resamples ads instead (its units).
    Cost O(B · R) vector work; no per-row Python.
    """
    R, A = log.rows, log.n_ads
    out = {name: np.empty((resamples, K + 1, N_BUCKETS + 1)) for name in ESTIMATES}
    out["nsctr"] = np.empty((resamples, K + 1))
    for b in range(resamples):
        m = np.bincount(rng.integers(0, R, R), minlength=R).astype(np.float64)
        est = estimates(sufficient_stats(log, matches, weights=m))
        for name in ESTIMATES:
            out[name][b] = est[name]
        ad_w = np.bincount(rng.integers(0, A, A), minlength=A).astype(np.float64)
        out["nsctr"][b] = nsctr(log, matches, ad_weights=ad_w)[0]
    return out


def bootstrap_summary(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """samples [B, ...] -> (se, lo, hi): standard deviation and the percentile interval, NaN-aware."""
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"), _quiet_nan():
        se = np.nanstd(samples, axis=0, ddof=1)
        lo, hi = np.nanquantile(samples, [alpha, 1 - alpha], axis=0)
    return se, lo, hi


class _quiet_nan:
    """Silence numpy's 'all-NaN slice' / 'degrees of freedom' RuntimeWarnings (cells with no matches)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


# ------------------------------------------------------------------------------------- correlations
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r = cov(x, y) / (sd x · sd y); NaN when either is constant or pairs are < 2."""
    x, y = _pairs(x, y)
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b = Σ_{i<j} sgn(x_i−x_j) sgn(y_i−y_j) / sqrt((n0 − n1)(n0 − n2)), with n0 − n1 the pairs
    untied in x and n0 − n2 those untied in y. O(P²) memory over P points (P = policies, a few hundred)."""
    x, y = _pairs(x, y)
    iu = np.triu_indices(len(x), k=1)
    sx = np.sign(x[:, None] - x[None, :])[iu]
    sy = np.sign(y[:, None] - y[None, :])[iu]
    den = np.sqrt(float(np.count_nonzero(sx)) * float(np.count_nonzero(sy)))
    return float((sx * sy).sum() / den) if den > 0 else float("nan")


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected two vectors of one length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def agreement(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How an offline metric tracks the truth over P policies (vectors [P]): Pearson r, Kendall tau-b,
    bias = mean(value − truth), RMSE, and the share of policies whose interval [lo, hi] covers the truth."""
    values, lo, hi, truth = (np.asarray(a, dtype=np.float64) for a in (values, lo, hi, truth))
    ok = np.isfinite(values) & np.isfinite(truth)
    d = values[ok] - truth[ok]
    cov = (lo[ok] <= truth[ok]) & (truth[ok] <= hi[ok])
    return {
        "pearson": pearson(values, truth),
        "kendall": kendall_tau_b(values, truth),
        "bias": float(d.mean()) if len(d) else float("nan"),
        "rmse": float(np.sqrt((d * d).mean())) if len(d) else float("nan"),
        "ci_coverage": float(cov.mean()) if len(d) else float("nan"),
        "policies": int(ok.sum()),
    }


__all__ = [
    "ALL",
    "agreement",
    "lift_interval",
    "wilson_interval",
    "COMB",
    "ESTIMATES",
    "N_BUCKETS",
    "Matches",
    "Stats",
    "UniformLog",
    "bootstrap",
    "bootstrap_summary",
    "bucket_index",
    "effective_size",
    "estimates",
    "kendall_tau_b",
    "match",
    "nsctr",
    "pearson",
    "sufficient_stats",
    "z_value",
]
