"""What a committed board can tell apart: per method the headroom captured (truth) and the **CI separation** of the
offline metric, read from the verified entries alone (no release, no predictions: every number is in the entries'
per-seed evaluations, which ``genco leaderboard check`` re-verifies).

    python benchmarks/board.py                                   # cards/leaderboard, every dataset version
    python benchmarks/board.py --entries DIR --version 2.0.0 --json

Per method and seed, on the six components:

- ``above 0``: components whose 95 % interval of the calibrated-sCTR lift over the uniform log lies above 0 (the
  definition of ``benchmarks/learnable.py``; Uniform's own lift is 0 in expectation);
- ``above Uniform``: components whose interval lies above the interval of Uniform's entry for the same seed
  (stricter: both intervals' noise counts).

For the reference GenCO (``--method``), per component: the mean estimated lift and its standard error, the true
lift (from the planted world, in the entry), and the test rows at which the interval would exclude 0 at that true
lift: ``rows · (1.96 · se / true lift)²`` (the standard error shrinks as 1/√rows).

**The paper's orderings** (:data:`PAPER_ORDERINGS`: Table 2's online hierarchy, Table 3's ablations): for each claim
"A above B", the difference of headroom captured (truth) paired by seed, its mean and 95 % t-interval over the seeds;
*reproduced* when the interval lies above 0, *refuted* when below, *unresolved* otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import t as student_t

from genco_data.evaluate.metrics import z_value
from genco_data.format.components import COMPONENTS
from genco_data.leaderboard.entries import load_entries

Z95 = z_value(0.95)
#: (A, B, where the paper says A is above B): Table 2 (online CTR: Uniform < MLP, DCO < f_ele < f_comb < GenCO) and
#: Table 3 (removing MIL, RL or context lowers CTR; w/o RL and w/o all the most).
PAPER_ORDERINGS: tuple[tuple[str, str, str], ...] = (
    ("GenCO", "f_comb only", "Table 2"), ("f_comb only", "f_ele only", "Table 2"), ("f_ele only", "MLP", "Table 2"),
    ("f_ele only", "DCO", "Table 2"), ("MLP", "Uniform", "Table 2"), ("DCO", "Uniform", "Table 2"),
    ("GenCO", "GenCO w/o MIL", "Table 3"), ("GenCO", "GenCO w/o RL", "Table 3"), ("GenCO", "GenCO w/o context", "Table 3"),
    ("GenCO", "GenCO w/o all", "Table 3"), ("GenCO w/o MIL", "GenCO w/o RL", "Table 3"), ("GenCO w/o context", "GenCO w/o RL", "Table 3"),
)


def _base_name(method: str) -> str:
    """``"GenCO (genco-data reference)"`` -> ``"GenCO"``: the name the paper's tables use."""
    return method.split(" (")[0]


def _lift(seed_result: dict, component: str) -> tuple[float, float, float, float, float | None]:
    """(estimate, ci_low, ci_high, se, true lift or None) of one component's calibrated-sCTR lift in one seed."""
    c = seed_result["components"][component]
    truth = (c.get("truth") or {}).get("lift")
    return c["lift"]["value"], c["lift"]["ci_low"], c["lift"]["ci_high"], c["lift"]["se"], truth


def summarize(entries_dir: Path, version: str | None, reference: str) -> dict:
    entries = [e for e in load_entries(entries_dir) if version is None or e.submission.dataset_version == version]
    if not entries:
        raise SystemExit(f"board: no entry{' of version ' + version if version else ''} in {entries_dir}")
    versions = sorted({e.submission.dataset_version for e in entries})
    out: dict = {}
    for v in versions:
        of_v = [e for e in entries if e.submission.dataset_version == v]
        uniform = next((e for e in of_v if _base_name(e.submission.method) == "Uniform"), None)
        u_high = {d["seed"]: {c: _lift(d, c)[2] for c in COMPONENTS} for d in uniform.per_seed} if uniform else {}
        rows = {}
        for e in of_v:
            per_seed = []
            for d in e.per_seed:
                lifts = {c: _lift(d, c) for c in COMPONENTS}
                above0 = sum(1 for c in COMPONENTS if lifts[c][1] > 0)
                above_u = sum(1 for c in COMPONENTS if d["seed"] in u_high and lifts[c][1] > u_high[d["seed"]][c])
                per_seed.append({"seed": d["seed"], "above_0": above0, "above_uniform": above_u if u_high else None})
            h = e.metrics.get("headroom_captured")
            rows[e.submission.method] = {
                "headroom_mean": None if h is None else 100 * h.mean, "headroom_std": None if h is None else 100 * (h.std or 0.0),
                "test_rows": e.per_seed[0]["test_rows"], "per_seed": per_seed,
            }
        ref = next((e for e in of_v if _base_name(e.submission.method) == reference), None)
        components = {}
        if ref is not None:
            n = ref.per_seed[0]["test_rows"]
            for c in COMPONENTS:
                lifts = [_lift(d, c) for d in ref.per_seed]
                est, se, truth = np.array([[x[0], x[3], np.nan if x[4] is None else x[4]] for x in lifts]).mean(0)
                need = float(n * (Z95 * se / truth) ** 2) if truth > 0 else None
                components[c] = {"lift": 100 * est, "se": 100 * se, "true_lift": 100 * truth, "rows_to_separate": need}
        out[v] = {"methods": rows, "reference": reference if ref is not None else None, "components": components,
                  "orderings": orderings(of_v)}
    return out


def orderings(entries: list) -> list[dict]:
    """The paper's claims "A above B" on these entries: paired headroom differences (points) with 95 % t-intervals."""
    by = {_base_name(e.submission.method): e for e in entries}
    out = []
    for a, b, where in PAPER_ORDERINGS:
        if a not in by or b not in by or any("headroom_captured" not in by[m].metrics for m in (a, b)):
            continue
        ha, hb = (dict(zip(by[m].seeds, by[m].metrics["headroom_captured"].per_seed)) for m in (a, b))
        seeds = sorted(set(ha) & set(hb))
        d = 100 * np.array([ha[k] - hb[k] for k in seeds])
        if d.size < 2:
            continue
        half = float(student_t.ppf(0.975, d.size - 1)) * d.std(ddof=1) / np.sqrt(d.size)
        lo, hi = float(d.mean() - half), float(d.mean() + half)
        out.append({"above": a, "below": b, "paper": where, "diff": float(d.mean()), "ci_low": lo, "ci_high": hi,
                    "seeds": len(seeds), "verdict": "reproduced" if lo > 0 else "refuted" if hi < 0 else "unresolved"})
    return out


def _text(summary: dict) -> str:
    lines = []
    for v, s in summary.items():
        first = next(iter(s["methods"].values()))
        lines.append(f"dataset version {v}: {first['test_rows']:,} test rows")
        order = sorted(s["methods"].items(), key=lambda kv: -(kv[1]["headroom_mean"] if kv[1]["headroom_mean"] is not None else -1e9))
        for m, r in order:
            above0 = " ".join(str(p["above_0"]) for p in r["per_seed"])
            above_u = " ".join("-" if p["above_uniform"] is None else str(p["above_uniform"]) for p in r["per_seed"])
            hr = "–" if r["headroom_mean"] is None else f"{r['headroom_mean']:+6.1f} ± {r['headroom_std']:4.1f} %"
            lines.append(f"  {m[:60]:60s} headroom {hr}   per seed, of 6 components: above 0 [{above0}], above Uniform [{above_u}]")
        if s["components"]:
            lines.append(f"  {s['reference']}, mean over seeds (lift %, se %, true lift %, test rows for the 95 % interval to exclude 0):")
            for c, r in s["components"].items():
                need = "never (true lift <= 0)" if r["rows_to_separate"] is None else f"{r['rows_to_separate']:,.0f}"
                lines.append(f"    {c:20s} {r['lift']:+6.2f}  se {r['se']:.2f}  true {r['true_lift']:+6.2f}  rows {need}")
        if s["orderings"]:
            lines.append("  the paper's orderings (headroom of A minus B, points, paired by seed, 95 % t-interval):")
            for o in s["orderings"]:
                lines.append(f"    {o['paper']}: {o['above']:18s} > {o['below']:18s} {o['diff']:+6.1f} [{o['ci_low']:+6.1f}, {o['ci_high']:+6.1f}]  {o['verdict']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=Path, default=Path(__file__).resolve().parent.parent / "cards" / "leaderboard")
    ap.add_argument("--version", default=None, help="one dataset version (default: every version on the board)")
    ap.add_argument("--method", default="GenCO", help="the method whose components are detailed (its name before ' (')")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    s = summarize(a.entries, a.version, a.method)
    print(json.dumps(s, indent=2) if a.json else _text(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
