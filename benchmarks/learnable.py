"""How much of the oracle's headroom the clicks of a release can reveal: the ceiling every click-learning
method (GenCO included) works under, measured beside the learners of ``genco reproduce``.

    python benchmarks/learnable.py                                  # the sparse and default worlds, seed 0
    python benchmarks/learnable.py --preset default --seeds 0 1 2 --reproduce 3 --methods genco,f_ele,mlp,dco

Per world (``genco synth --preset P``, 200 k train / 50 k test rows, built into a release in a temp folder):

- ``oracle`` — the exact best combination per test request (the headroom's 100 %);
- ``quality oracle`` — per component the element of highest true quality θ (what an element-id model could
  learn with infinite data; taste and synergy need more than ids);
- ``fixed-effect logit`` — the statistician's anchor: a logistic regression of the train clicks on ad fixed
  effects + one effect per shown element (L2 1.0, L-BFGS to convergence), choosing per component the element
  of highest estimated effect; no neural network, all data at once;
- with ``--reproduce N``: ``genco reproduce`` (the reference settings) on the same release, N seeds.

All figures are headroom captured, ``(V − V_uniform) / (V_oracle − V_uniform)`` in %, with the true values V from
the world. The logging policy's own knowledge is not used by any of them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from scipy.optimize import minimize

from genco_data.format.components import COMPONENTS, N_COMPONENTS, candidates_col, exposed_col
from genco_data.synth import World, simulate
from genco_data.synth.config import PRESETS, SynthConfig


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


def fixed_effect_logit(train: pa.Table, l2: float = 1.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per component (sorted element ids, estimated effects) of logit P(click) = b + α_ad + Σ_j β_{e_j}."""
    y = train.column("click").to_numpy().astype(np.float64)
    R = len(y)
    _, ad = np.unique(train.column("ad_id").to_numpy(), return_inverse=True)
    rows, cols, keys, start = [np.arange(R)], [ad], [], int(ad.max()) + 1
    for j in range(N_COMPONENTS):
        has, ids = _shown_ids(train, j)
        uniq, idx = np.unique(ids, return_inverse=True)
        rows.append(np.flatnonzero(has))
        cols.append(idx + start)
        keys.append((uniq, start))
        start += len(uniq)
    X = sp.csr_matrix((np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))), shape=(R, start))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ w[1:] + w[0]
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.logaddexp(0.0, z).sum() - (y * z).sum() + 0.5 * l2 * (w[1:] ** 2).sum()
        return nll, np.r_[(p - y).sum(), X.T @ (p - y) + l2 * w[1:]]

    w = minimize(loss, np.r_[np.log(y.mean() / (1 - y.mean())), np.zeros(start)], jac=True, method="L-BFGS-B",
                 options={"maxiter": 1000}).x
    return [(uniq, w[1 + s : 1 + s + len(uniq)]) for uniq, s in keys]


def measure(preset: str, seed: int, rows: int, test_rows: int, work: Path, reproduce: int, methods: str) -> dict:
    cfg = SynthConfig.with_settings([], preset, train_rows=rows, test_rows=test_rows, seed=seed)
    folder = work / f"{preset}-{seed}"
    simulate(cfg, folder / "raw", progress=False)
    subprocess.run([sys.executable, "-m", "genco_data.cli", "build", str(folder / "raw"), "--out", str(folder / "rel"),
                    "--version", "1.0.0", "--quiet", "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    release = folder / "rel"
    world, train, test = World.load(release), _split(release, "train"), _split(release, "test")
    uniform, _ = world.uniform_value(test)
    _, best = world.optimum(test)
    oracle = float(best.mean())

    def captured(choices: np.ndarray) -> float:
        return 100.0 * (world.policy_value(test, choices) - uniform) / (oracle - uniform)

    quality = [(np.sort(world.arrays[f"elem{j}_id"]), world.arrays[f"elem{j}_quality"][np.argsort(world.arrays[f"elem{j}_id"])])
               for j in range(N_COMPONENTS)]
    t0 = time.perf_counter()
    fe = fixed_effect_logit(train)
    fe_seconds = time.perf_counter() - t0
    out = {
        "preset": preset, "seed": seed, "oracle_lift_pct": 100.0 * (oracle / uniform - 1.0),
        "quality_oracle": captured(np.stack([_argmax_per_pool(test, j, quality[j]) for j in range(N_COMPONENTS)], 1)),
        "fixed_effect_logit": captured(np.stack([_argmax_per_pool(test, j, fe[j]) for j in range(N_COMPONENTS)], 1)),
        "fixed_effect_seconds": fe_seconds,
    }
    if reproduce:
        subprocess.run([sys.executable, "-m", "genco_data.cli", "reproduce", "--data", str(release), "--out", str(folder / "repro"),
                        "--seeds", str(reproduce), "--methods", methods, "--quiet"], check=True, stdout=subprocess.DEVNULL)
        agg = json.loads((folder / "repro" / "results.json").read_text())["aggregate"]["table2"]
        out["reproduce"] = {m: (a["headroom_captured"]["mean"], a["headroom_captured"]["std"]) for m, a in agg.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: both sparse and default")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--test-rows", type=int, default=50_000)
    ap.add_argument("--reproduce", type=int, default=0, help="also run genco reproduce with this many seeds")
    ap.add_argument("--methods", default="uniform,dco,mlp,f_ele,genco,genco_bc")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.preset or ["sparse", "default"]:
            for seed in args.seeds:
                r = measure(preset, seed, args.rows, args.test_rows, Path(tmp), args.reproduce, args.methods)
                results.append(r)
                if not args.json:
                    line = (f"{preset:9s} seed {seed}: oracle +{r['oracle_lift_pct']:.1f} % over uniform; headroom captured: "
                            f"quality oracle {r['quality_oracle']:.1f} %, fixed-effect logit {r['fixed_effect_logit']:.1f} % "
                            f"({r['fixed_effect_seconds']:.0f} s)")
                    for m, (mean, std) in r.get("reproduce", {}).items():
                        line += f"\n    genco reproduce {m:28s} {mean:+6.1f} ± {std:.1f} %"
                    print(line, flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
