"""Where a policy's element scores lose the signal: their within-pool agreement with the planted element qualities,
per component and by how often the element was shown in the train split, beside the fixed-effect logit's
(issue #15 part 5: "which part of the model or protocol loses the signal").

    genco predict --model RUN --data R --out P.parquet
    python benchmarks/element_scores.py --data R --predictions P.parquet            # + the logit anchor, same run
    python benchmarks/element_scores.py --data R --predictions P.parquet --no-logit

For every test row and component with at least two scored candidates, both the scores and the planted qualities
θ_e (``world/``) are centred on the pool's mean; the figure is the Pearson correlation of the centred pairs over
all (row, candidate) pairs — 0 for scores that carry no within-pool information about θ, whatever their scale.
Only the within-pool order matters to a policy, so this is the element-level part of the headroom a score can
capture. Bins: the element's exposures (times shown) in the train split. The anchor is
``benchmarks/learnable.py``'s fixed-effect logit (ad effects + one effect per shown element, ridge validated on
the last train days), fitted on the same train split in the same run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from genco_data.format.components import COMPONENTS  # noqa: E402
from learnable import _shown_ids, _split, fixed_effect_logit  # noqa: E402

#: Train-exposure bins [lo, hi) of the per-bin figures.
EXPOSURE_BINS = (0, 1, 11, 101, 1001, np.iinfo(np.int64).max)
MIN_PAIRS = 50  # a bin with fewer (row, candidate) pairs prints no figure


def exposures(train: pa.Table, component: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted element ids, times shown) of ``component`` in the train rows."""
    return np.unique(_shown_ids(train, COMPONENTS.index(component))[1], return_counts=True)


def _pairs(test: pa.Table, scores: pa.ChunkedArray, component: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate ids, scores, pool number) of every candidate of the pools with >= 2 candidates and one score each."""
    cand = test[f"{component}_candidates"].combine_chunks()
    sc = scores.combine_chunks()
    co, so = cand.offsets.to_numpy(), sc.offsets.to_numpy()
    n = np.diff(co)
    keep = (n >= 2) & (np.diff(so) == n) & pc.is_valid(test[f"{component}_candidates"]).to_numpy(zero_copy_only=False)
    keep &= pc.is_valid(scores).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(keep)
    lens = n[rows]
    pool = np.repeat(np.arange(len(rows)), lens)
    within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)  # 0..len-1 inside each pool
    ids = cand.values.to_numpy()[np.repeat(co[rows], lens) + within]
    vals = sc.values.to_numpy(zero_copy_only=False).astype(np.float64)[np.repeat(so[rows], lens) + within]
    return ids, vals, pool


def _centred(x: np.ndarray, pool: np.ndarray) -> np.ndarray:
    return x - (np.bincount(pool, x) / np.bincount(pool))[pool]


def _lookup(keys: np.ndarray, values: np.ndarray, ids: np.ndarray, default: float = 0.0) -> np.ndarray:
    if len(keys) == 0:
        return np.full(len(ids), default)
    k = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
    return np.where(keys[k] == ids, values[k], default)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < MIN_PAIRS or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def agreement(release: Path, predictions: Path, with_logit: bool = True) -> list[dict]:
    """Per component: pools, pairs, the overall within-pool correlation with θ, the same by exposure bin, and the
    fixed-effect logit's figures (``with_logit``)."""
    world = np.load(release / "world" / "world.npz")
    train, test = _split(release, "train"), _split(release, "test")
    pred = pq.read_table(predictions)
    if not pred["impression_id"].equals(test["impression_id"]):
        raise SystemExit(f"{predictions}: impression ids are not the test split's, in its order")
    logit = fixed_effect_logit(train)[0] if with_logit else None
    out = []
    for j, c in enumerate(COMPONENTS):
        order = np.argsort(world[f"elem{j}_id"])
        theta_ids, theta = world[f"elem{j}_id"][order], world[f"elem{j}_quality"][order]
        ids, vals, pool = _pairs(test, pred[f"{c}_scores"], c)
        dq = _centred(_lookup(theta_ids, theta, ids), pool)
        ds = _centred(vals, pool)
        eid, cnt = exposures(train, c)
        expo = _lookup(eid, cnt, ids, 0).astype(np.int64)
        dl = _centred(_lookup(*logit[j], ids), pool) if logit is not None else None
        rec = {"component": c, "pools": int(pool.max() + 1) if len(pool) else 0, "pairs": len(ids),
               "corr": _corr(dq, ds), "logit": _corr(dq, dl) if dl is not None else None, "bins": []}
        for lo, hi in zip(EXPOSURE_BINS[:-1], EXPOSURE_BINS[1:]):
            s = (expo >= lo) & (expo < hi)
            rec["bins"].append({"lo": lo, "hi": hi, "pairs": int(s.sum()), "corr": _corr(dq[s], ds[s]),
                                "logit": _corr(dq[s], dl[s]) if dl is not None else None})
        out.append(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="release folder with world/ (the truth)")
    ap.add_argument("--predictions", type=Path, required=True)
    ap.add_argument("--no-logit", action="store_true", help="skip the fixed-effect-logit anchor")
    a = ap.parse_args(argv)
    recs = agreement(a.data, a.predictions, not a.no_logit)
    print(f"within-pool corr(score, planted quality): {a.predictions}" + ("" if a.no_logit else " / fixed-effect logit"))
    for r in recs:
        both = f"{r['corr']:+.3f}" + ("" if r["logit"] is None else f" / {r['logit']:+.3f}")
        bins = "  ".join(f"[{b['lo']},{'inf' if b['hi'] > 10**15 else b['hi']}) {b['corr']:+.2f}"
                         + ("" if b["logit"] is None else f"/{b['logit']:+.2f}")
                         for b in r["bins"] if b["pairs"] >= MIN_PAIRS)
        print(f"{r['component']:<20} {r['pools']:>7,} pools  {both}   by train exposures: {bins}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
