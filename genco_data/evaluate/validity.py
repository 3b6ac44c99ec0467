"""The validity study: on a synthetic release, how well each offline metric tracks the truth over many
diverse policies (:func:`metric_validity`) — the policy zoo built from the world's true slot scores, each
policy scored by the evaluator's metrics and by the world, then compared (:func:`genco_data.evaluate.metrics.agreement`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genco_data.evaluate import metrics as M
from genco_data.evaluate.evaluator import EvalConfig, Evaluator
from genco_data.evaluate.results import _num
from genco_data.evaluate.truth import _AUTO
from genco_data.errors import InvalidInputError
from genco_data.format.components import CANDIDATE_COLUMNS, COMPONENTS

K = len(COMPONENTS)


# ------------------------------------------------------------------------------- policies for validity
def pick(scores: list[np.ndarray], present: np.ndarray, rng: np.random.Generator, sign: float = 1.0, sigma: float = 0.0) -> np.ndarray:
    """Per component, the slot maximising ``sign · score + sigma · spread · N(0, 1)`` -> choices int64 [R, K].

    scores: K arrays [R, kmax_j] (-inf beyond the pool); present bool [R, K]; spread = RMS within-row
    deviation of the component's scores, so sigma is in units of how much the candidates differ."""
    R = present.shape[0]
    out = np.full((R, K), -1, np.int64)
    for j, S in enumerate(scores):
        if S.shape[1] == 0:
            continue
        valid = np.isfinite(S)
        T = np.where(valid, sign * S, -np.inf)
        if sigma > 0:
            T = T + sigma * _spread(S, valid) * rng.standard_normal(S.shape)
        out[:, j] = np.where(present[:, j], T.argmax(axis=1), -1)
    return out


def _spread(S: np.ndarray, valid: np.ndarray) -> float:
    cnt = valid.sum(axis=1)
    mean = np.where(valid, S, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    dev = np.where(valid, S - mean[:, None], 0.0)
    rows = cnt > 1
    if not rows.any():
        return 1e-3
    s = float(np.sqrt((dev[rows] ** 2).sum() / cnt[rows].sum()))
    return s if s > 0 else 1e-3


def policy_zoo(n: np.ndarray, scores: list[np.ndarray], oracle: np.ndarray, quality: list[np.ndarray],
               rng: np.random.Generator, count: int) -> list[tuple[str, str, np.ndarray]]:
    """``count`` diverse policies -> [(name, family, choices int64 [R, K])]: the oracle and its opposite,
    fixed slots, context-free quality-greedy / anti-greedy, uniform-random, noisy oracles at several noise
    levels, noisy anti-oracles, oracle/anti mixtures with random, and the oracle (or anti) on one component
    with random elsewhere; then more noisy oracles with log-uniform noise until ``count``.

    n int [R, K] pool sizes; scores / quality: K arrays [R, kmax_j] (-inf beyond the pool) of each slot's
    true CTR (others at the oracle) and of its element's mean score over all requests."""
    present = n > 0

    def rand() -> np.ndarray:
        return np.where(present, (rng.random(n.shape) * n).astype(np.int64), -1)

    def mix(a: np.ndarray, b: np.ndarray, p: float) -> np.ndarray:
        return np.where((rng.random(n.shape[0]) < p)[:, None], a, b)

    def on(j: int, a: np.ndarray) -> np.ndarray:
        out = rand()
        out[:, j] = a[:, j]
        return out

    anti = pick(scores, present, rng, sign=-1.0)
    second = pick([np.where(np.arange(S.shape[1])[None, :] == S.argmax(1)[:, None], -1e9, S) if S.shape[1] else S for S in scores], present, rng)
    zoo = [
        ("oracle", "oracle", oracle), ("anti-oracle", "anti", anti), ("second-best", "oracle", second),
        ("first slot", "fixed", np.where(present, 0, -1)), ("last slot", "fixed", np.where(present, n - 1, -1)),
        ("quality-greedy", "greedy", pick(quality, present, rng)), ("quality-anti-greedy", "greedy", pick(quality, present, rng, -1.0)),
    ]
    zoo += [(f"random #{s}", "random", rand()) for s in range(5)]
    zoo += [(f"noisy-oracle sigma={s} #{r}", "noisy-oracle", pick(scores, present, rng, 1.0, s)) for s in (0.25, 0.5, 1.0, 2.0, 4.0) for r in range(2)]
    zoo += [(f"noisy-anti sigma={s}", "noisy-anti", pick(scores, present, rng, -1.0, s)) for s in (0.5, 1.0, 2.0)]
    zoo += [(f"oracle w.p. {p}, else random", "mixture", mix(oracle, rand(), p)) for p in (0.1, 0.25, 0.5, 0.75, 0.9)]
    zoo += [(f"anti w.p. {p}, else random", "mixture", mix(anti, rand(), p)) for p in (0.25, 0.5, 0.75)]
    zoo += [(f"oracle on {c}, random elsewhere", "one-component", on(j, oracle)) for j, c in enumerate(COMPONENTS)]
    zoo += [(f"anti on {c}, random elsewhere", "one-component", on(j, anti)) for j, c in enumerate(COMPONENTS)]
    while len(zoo) < count:
        s = float(10 ** rng.uniform(-1, 1))
        if len(zoo) % 2:
            zoo.append((f"noisy-oracle sigma={s:.3g}", "noisy-oracle", pick(scores, present, rng, 1.0, s)))
        else:
            p = float(rng.uniform())
            zoo.append((f"noisy-oracle sigma={s:.3g} w.p. {p:.2f}, else random", "mixture", mix(pick(scores, present, rng, 1.0, s), rand(), p)))
    return zoo[:count]


# ----------------------------------------------------------------------------------- metric validity
def _padded(req: pa.Table, j: int, n: np.ndarray) -> np.ndarray:
    """Element ids of component j as int64 [R, kmax] (-1 beyond the pool)."""
    flat = pc.list_flatten(req.column(CANDIDATE_COLUMNS[j])).to_numpy()
    out = np.full((len(n), max(int(n.max()), 0)), -1, np.int64)
    rows = np.repeat(np.arange(len(n)), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    out[rows, np.arange(len(flat)) - starts[rows]] = flat
    return out


def _slot_scores(world: Any, req: pa.Table, base: np.ndarray, n: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per component j, the true CTR of every slot with the other components at ``base`` (the oracle)
    -> scores K x [R, kmax_j] (-inf beyond the pool), and each slot's context-free quality (its element's
    mean score over every request that offers it)."""
    scores, quality = [], []
    for j in range(K):
        kmax = int(n[j].max())
        S = np.full((len(base), kmax), -np.inf)
        for k in range(kmax):
            rows = n[j] > k
            ch = base.copy()
            ch[rows, j] = k
            S[rows, k] = np.asarray(world.true_ctr(req, ch), dtype=np.float64)[rows]
        E = _padded(req, j, n[j])
        valid = E >= 0
        Q = np.full_like(S, -np.inf)
        if valid.any():
            uniq, inv = np.unique(E[valid], return_inverse=True)
            mean = np.bincount(inv, weights=S[valid], minlength=len(uniq)) / np.bincount(inv, minlength=len(uniq))
            Q[valid] = mean[inv]
        scores.append(S)
        quality.append(Q)
    return scores, quality


def metric_validity(release_path: str | Path, n_policies: int = 60, seed: int = 0, progress: bool = False, *,
                    world: Any = _AUTO, config: EvalConfig | None = None, verify: bool = True) -> dict[str, Any]:
    """On a synthetic release, how well each offline metric tracks the truth over ``n_policies`` diverse
    policies (:func:`policy_zoo`).

    Levels: ``combination`` (calibrated / plain sCTR and NSCTR on every component at once vs the policy's
    exact true CTR) and each component (its per-component metrics vs ``world.component_value`` on the rows
    having it). Per metric: Pearson, Kendall tau-b, bias, RMSE and CI coverage (``metrics.agreement``).
    """
    if n_policies < 3:
        raise InvalidInputError(f"n_policies must be >= 3, got {n_policies}")
    ev = Evaluator(release_path, config=config, world=world, verify=verify)
    W, cfg = ev.world, ev.config
    if W is None:
        raise InvalidInputError(f"{release_path}: metric validity needs a synthetic release with its ground truth (world/)")
    log, req, z = ev.log, ev.requests, M.z_value(cfg.confidence)
    opt = np.ascontiguousarray(np.asarray(W.optimum(req)[0]), dtype=np.int64)
    scores, quality = _slot_scores(W, req, opt, log.n)
    rng = np.random.default_rng(seed)
    zoo = policy_zoo(log.n.T, scores, opt, quality, rng, n_policies)
    levels = ["combination", *COMPONENTS] if cfg.validity_components else ["combination"]
    names = ("calibrated_sctr", "plain_sctr", "nsctr")
    cols: dict[str, dict[str, list]] = {lv: {k: [] for k in ("truth", *names)} for lv in levels}
    policies = []
    it = zoo
    if progress:
        from tqdm import tqdm

        it = tqdm(zoo, desc="policies", unit="policy")
    for name, family, ch in it:
        matches = M.match(log, np.ascontiguousarray(ch.T, dtype=np.int16))
        est = M.estimates(M.sufficient_stats(log, matches), z)
        ns, ns_se = M.nsctr(log, matches)
        rec = {"name": name, "family": family}
        for lv in levels:
            row = M.COMB if lv == "combination" else COMPONENTS.index(lv)
            if lv == "combination":
                truth = float(W.policy_value(req, ch))
            else:
                mask = log.present[row]
                sub, sub_ch = (req, ch) if mask.all() else (req.filter(pa.array(mask)), ch[mask])
                truth = float(W.component_value(sub, sub_ch, row, n_samples=cfg.validity_samples, seed=seed)[0]) if mask.any() else float("nan")
            a = M.ALL
            vals = {"calibrated_sctr": (est["calibrated"][row, a], est["calibrated_lo"][row, a], est["calibrated_hi"][row, a]),
                    "plain_sctr": (est["plain"][row, a], est["plain_lo"][row, a], est["plain_hi"][row, a]),
                    "nsctr": (ns[row], ns[row] - z * ns_se[row], ns[row] + z * ns_se[row])}
            cols[lv]["truth"].append(truth)
            for m, v in vals.items():
                cols[lv][m].append(tuple(float(x) for x in v))
            rec[lv] = {"truth": _num(truth), **{m: _num(v[0]) for m, v in vals.items()}}
        policies.append(rec)
    summary = {lv: {m: M.agreement(*np.array(c[m]).T, np.array(c["truth"])) for m in names} for lv, c in cols.items()}
    truth = np.array(cols["combination"]["truth"])
    return {
        "release": str(ev.release.root), "dataset_version": ev.release.manifest.dataset_version, "manifest_sha256": ev.manifest_sha256,
        "test_rows": log.rows, "n_policies": len(zoo), "seed": seed, "confidence": cfg.confidence,
        "truth_range": [float(truth.min()), float(truth.max())], "oracle": _num(truth[0]),
        "levels": {lv: {m: {k: _num(v) for k, v in d.items()} for m, d in s.items()} for lv, s in summary.items()},
        "policies": policies,
    }


__all__ = ["metric_validity", "pick", "policy_zoo"]
