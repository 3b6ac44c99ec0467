"""How much of the oracle's headroom the clicks of a release can reveal, and whether its test split can tell a good
policy from Uniform: the ceiling every click-learning method (GenCO included) works under.

    python benchmarks/learnable.py                                   # the sparse, learnable and default worlds, 200k/50k rows
    python benchmarks/learnable.py --preset benchmark                # the leaderboard's world at its own size (2M/2M rows)
    python benchmarks/learnable.py --preset default --rows 300000 --seeds 0 1 2 --reproduce 3 --methods genco,f_ele,dco

Per world (``genco synth --preset P``; ``--rows`` / ``--test-rows`` default to the preset's size, else 200k / 50k),
built into a release in a temporary folder:

- ``oracle`` — the exact best combination per test request (the headroom's 100 %);
- ``quality oracle`` — per component the element of highest true quality θ (what an element-id model could
  learn with infinite data; taste and synergy need more than ids);
- ``fixed-effect logit`` — the statistician's anchor: a logistic regression of the train clicks on ad fixed effects
  (ridge 1) + one effect per shown element (ridge ``λ_e``), L-BFGS to convergence, choosing per component the element
  of highest estimated effect; no neural network, all data at once. ``λ_e`` (the element prior's precision,
  ``1/σ²``) is picked from :data:`L2_GRID` by the held-out log-loss of the last :data:`VALIDATION_DAYS` train days
  (fit on the days before), then the model is refit on every train day: no test row and no truth is used.
  (With ``λ_e = 1`` — a prior sd of 1 logit, 20× the element effects — the noisy estimates of rarely shown elements
  win the argmax: the winner's curse; ``--l2 1`` shows it);
- with ``--reproduce N``: ``genco reproduce`` (the reference settings) on the same release, N seeds.

Headroom captured, ``(V − V_uniform) / (V_oracle − V_uniform)`` in %, with the true values V from the world. The
logging policy's own knowledge is used by none of them.

**CI separation** (the offline metric at this test size): for the quality oracle and the fixed-effect logit, the
number of components whose 95 % interval of the calibrated-sCTR lift over the uniform log
(:class:`genco_data.evaluate.evaluator.Evaluator`, the leaderboard's metric) lies above 0.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from scipy.optimize import minimize

from genco_data.evaluate.evaluator import Evaluator
from genco_data.format.components import COMPONENTS, N_COMPONENTS, candidates_col, exposed_col
from genco_data.synth import World, simulate
from genco_data.synth.config import PRESETS, SynthConfig

#: Candidate precisions of the element effects' ridge (prior sd 0.1, 0.032, 0.01 logit).
L2_GRID = (100.0, 1000.0, 10000.0)
VALIDATION_DAYS = 3


def _split(release: Path, split: str) -> pa.Table:
    return pq.read_table(sorted((release / "data" / "impressions").glob(f"{split}-*.parquet")))


def _argmax_per_pool(test: pa.Table, j: int, value_of: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Position of the candidate with the highest value per row (-1 for an empty pool). ``value_of`` = (sorted
    element ids, their values); unknown ids read 0."""
    ids, values = value_of
    col = test.column(candidates_col(COMPONENTS[j])).combine_chunks()
    off = np.asarray(col.offsets, dtype=np.int64)
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, flat), max(len(ids) - 1, 0))
    v = np.where(ids[pos] == flat, values[pos], 0.0) if len(ids) else np.zeros(len(flat))
    n = np.diff(off)
    row = np.repeat(np.arange(len(n)), n)
    order = np.lexsort((-v, row))
    first = np.r_[True, row[order][1:] != row[order][:-1]] if len(order) else np.zeros(0, bool)
    out = np.full(len(n), -1, dtype=np.int64)
    out[row[order][first]] = order[first] - off[row[order][first]]
    return out


def _shown_ids(train: pa.Table, j: int) -> tuple[np.ndarray, np.ndarray]:
    col = train.column(candidates_col(COMPONENTS[j])).combine_chunks()
    off = np.asarray(col.offsets, dtype=np.int64)[:-1]
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
    shown = train.column(exposed_col(COMPONENTS[j])).fill_null(-1).to_numpy().astype(np.int64)
    has = shown >= 0
    return has, flat[off[has] + shown[has]]


class _Design:
    """The sparse design of ``logit P(click) = b + α_ad + Σ_j β_{e_j}`` over ``train``: one column per ad, then one
    per (component, shown element)."""

    def __init__(self, train: pa.Table):
        self.ads, ad = np.unique(train.column("ad_id").to_numpy(), return_inverse=True)
        R = train.num_rows
        rows, cols, self.keys, start = [np.arange(R)], [ad], [], len(self.ads)
        for j in range(N_COMPONENTS):
            has, ids = _shown_ids(train, j)
            uniq, idx = np.unique(ids, return_inverse=True)
            rows.append(np.flatnonzero(has))
            cols.append(idx + start)
            self.keys.append((uniq, start))
            start += len(uniq)
        self.width = start
        self.X = sp.csr_matrix((np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))), shape=(R, start))
        self.y = train.column("click").to_numpy().astype(np.float64)

    def columns_of(self, train: pa.Table) -> sp.csr_matrix:
        """The same columns for other rows (ads / elements this design lacks get no column)."""
        R = train.num_rows
        ad_ids = train.column("ad_id").to_numpy()
        pos = np.minimum(np.searchsorted(self.ads, ad_ids), len(self.ads) - 1)
        known = self.ads[pos] == ad_ids
        rows, cols = [np.flatnonzero(known)], [pos[known]]
        for j, (uniq, start) in enumerate(self.keys):
            has, ids = _shown_ids(train, j)
            p = np.minimum(np.searchsorted(uniq, ids), max(len(uniq) - 1, 0))
            ok = uniq[p] == ids if len(uniq) else np.zeros(len(ids), bool)
            rows.append(np.flatnonzero(has)[ok])
            cols.append(p[ok] + start)
        r, c = np.concatenate(rows), np.concatenate(cols)
        return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(R, self.width))

    def fit(self, l2_ad: float, l2_elem: float) -> np.ndarray:
        X, y = self.X, self.y
        pen = np.full(self.width, l2_elem)
        pen[: len(self.ads)] = l2_ad

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = X @ w[1:] + w[0]
            p = 1.0 / (1.0 + np.exp(-z))
            nll = np.logaddexp(0.0, z).sum() - (y * z).sum() + 0.5 * (pen * w[1:] ** 2).sum()
            return nll, np.r_[(p - y).sum(), X.T @ (p - y) + pen * w[1:]]

        w0 = np.r_[np.log(y.mean() / (1 - y.mean())), np.zeros(self.width)]
        return minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 1000}).x

    def effects(self, w: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(uniq, w[1 + s : 1 + s + len(uniq)]) for uniq, s in self.keys]


def split_last_days(train: pa.Table, days: int) -> tuple[pa.Table, pa.Table]:
    """(rows before the last ``days`` distinct train days, rows on them); every row is early when there are no more
    than ``days`` days."""
    day = train.column("day").cast(pa.int32()).to_numpy()
    distinct = np.unique(day)
    cut = distinct[-days] if len(distinct) > days else day.max() + 1
    return train.filter(pa.array(day < cut)), train.filter(pa.array(day >= cut))


@dataclass(frozen=True)
class Headroom:
    """The planted truth's uniform and oracle values on ``test``; :meth:`captured` is the % of the headroom between
    them that a policy's choices [R, 6] capture."""

    world: World
    test: pa.Table
    uniform: float
    oracle: float

    @classmethod
    def of(cls, world: World, test: pa.Table) -> "Headroom":
        uniform, _ = world.uniform_value(test, n_samples=16)
        _, best = world.optimum(test)
        return cls(world, test, uniform, float(best.mean()))

    def captured(self, choices: np.ndarray) -> float:
        return 100.0 * (self.world.policy_value(self.test, choices) - self.uniform) / (self.oracle - self.uniform)


def fixed_effect_logit(train: pa.Table, l2: float | None = None) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Per component (sorted element ids, estimated effects), and the element ridge ``λ_e`` used (``l2``, or the
    :data:`L2_GRID` value with the best held-out log-loss on the last :data:`VALIDATION_DAYS` train days)."""
    if l2 is None:
        early, late = split_last_days(train, VALIDATION_DAYS)
        design = _Design(early)
        Xv, yv = design.columns_of(late), late.column("click").to_numpy().astype(np.float64)
        scores = {}
        for lam in L2_GRID:
            w = design.fit(1.0, lam)
            z = Xv @ w[1:] + w[0]
            scores[lam] = float((np.logaddexp(0.0, z) - yv * z).mean())
        l2 = min(scores, key=scores.get)
    full = _Design(train)
    return full.effects(full.fit(1.0, l2)), l2


def ci_separation(release: Path, policies: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per policy: the calibrated-sCTR lift and its 95 % interval per component, and how many intervals lie above 0."""
    ev = Evaluator(release, world=None)
    out = {}
    for name, choices in policies.items():
        r = ev.evaluate({"choices": choices})
        comps = {c.name: (c.lift.value, c.lift.ci_low, c.lift.ci_high) for c in r.components}
        out[name] = {"lift": comps, "separated": sum(1 for v in comps.values() if v[1] > 0)}
    return out


def measure(preset: str, seed: int, rows: int | None, test_rows: int | None, work: Path, reproduce: int, methods: str,
            settings: list[str], l2: float | None) -> dict:
    sizes = {k: v for k, v in (("train_rows", rows), ("test_rows", test_rows)) if v is not None}
    cfg = SynthConfig.with_settings(settings, preset, seed=seed, **sizes)
    folder = work / f"{preset}-{seed}"
    t0 = time.perf_counter()
    simulate(cfg, folder / "raw", progress=False)
    subprocess.run([sys.executable, "-m", "genco_data.cli", "build", str(folder / "raw"), "--out", str(folder / "rel"),
                    "--version", "1.0.0", "--quiet", "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    release = folder / "rel"
    world, train, test = World.load(release), _split(release, "train"), _split(release, "test")
    headroom = Headroom.of(world, test)
    captured = headroom.captured
    build_seconds = time.perf_counter() - t0

    order = [np.argsort(world.arrays[f"elem{j}_id"]) for j in range(N_COMPONENTS)]
    quality = [(world.arrays[f"elem{j}_id"][o], world.arrays[f"elem{j}_quality"][o]) for j, o in zip(range(N_COMPONENTS), order)]
    t0 = time.perf_counter()
    fe, l2_used = fixed_effect_logit(train, l2)
    fe_seconds = time.perf_counter() - t0
    choices = {
        "quality_oracle": np.stack([_argmax_per_pool(test, j, quality[j]) for j in range(N_COMPONENTS)], 1),
        "fixed_effect_logit": np.stack([_argmax_per_pool(test, j, fe[j]) for j in range(N_COMPONENTS)], 1),
    }
    out = {
        "preset": preset, "seed": seed, "train_rows": cfg.train_rows, "test_rows": cfg.test_rows, "ads": cfg.num_ads,
        "oracle_lift_pct": 100.0 * (headroom.oracle / headroom.uniform - 1.0),
        "quality_oracle": captured(choices["quality_oracle"]),
        "fixed_effect_logit": captured(choices["fixed_effect_logit"]),
        "fixed_effect_l2": l2_used, "fixed_effect_seconds": fe_seconds, "build_seconds": build_seconds,
        "ci": ci_separation(release, choices),
    }
    if reproduce:
        subprocess.run([sys.executable, "-m", "genco_data.cli", "reproduce", "--data", str(release), "--out", str(folder / "repro"),
                        "--seeds", str(reproduce), "--methods", methods, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        agg = json.loads((folder / "repro" / "results.json").read_text())["aggregate"]["table2"]
        out["reproduce"] = {m: (a["headroom_captured"]["mean"], a["headroom_captured"]["std"]) for m, a in agg.items()}
    return out


def _text(r: dict) -> str:
    lines = [f"{r['preset']:9s} seed {r['seed']}: {r['train_rows']:,} train / {r['test_rows']:,} test rows, {r['ads']:,} ads; "
             f"oracle +{r['oracle_lift_pct']:.1f} % over uniform; headroom captured: quality oracle {r['quality_oracle']:.1f} %, "
             f"fixed-effect logit {r['fixed_effect_logit']:.1f} % (λ_e {r['fixed_effect_l2']:g}, {r['fixed_effect_seconds']:.0f} s)"]
    for name, ci in r["ci"].items():
        cells = ", ".join(f"{c} {100 * v:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" for c, (v, lo, hi) in ci["lift"].items())
        lines.append(f"    CI separation, {name}: {ci['separated']}/6 components above uniform — {cells}")
    for m, (mean, std) in r.get("reproduce", {}).items():
        lines.append(f"    genco reproduce {m:28s} {mean:+6.1f} ± {std:.1f} %")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: sparse, learnable and default")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--rows", type=int, default=None, help="train rows (default: the preset's)")
    ap.add_argument("--test-rows", type=int, default=None, help="test rows (default: the preset's)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="SynthConfig overrides")
    ap.add_argument("--l2", type=float, default=None, help="fixed element ridge λ_e instead of the validated one")
    ap.add_argument("--reproduce", type=int, default=0, help="also run genco reproduce with this many seeds")
    ap.add_argument("--methods", default="uniform,dco,mlp,f_ele,genco,genco_bc")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.preset or ["sparse", "learnable", "default"]:
            for seed in args.seeds:
                r = measure(preset, seed, args.rows, args.test_rows, Path(tmp), args.reproduce, args.methods, args.set, args.l2)
                results.append(r)
                if not args.json:
                    print(_text(r), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
