"""The tables of a reproduce: per method, mean ± std over seeds of the headline figures (Table 2), the
ablation deltas against full GenCO paired by seed (Table 3), GenCO's lift by candidate bucket (Table 4),
and their Markdown (``results.md``, with Figure 3's matrix).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from genco_data.format.components import COMPONENTS, bucket_labels
from reference_model.reproduce_config import ABLATIONS, LABELS, QUICK_SEEDS, SETTINGS, ReproduceConfig

__all__ = ["aggregate", "render_markdown", "QUICK_NOTE"]

#: What a quick reproduce is for, said in its output and at the top of its results.md.
QUICK_NOTE = (f"Quick mode (`--quick`) is a smoke run, not a ranking: {SETTINGS['quick']['epochs']} epoch(s) on the most recent "
              f"{SETTINGS['quick']['max_rows']:,} train rows and at most {QUICK_SEEDS} seeds check that every method trains, "
              "predicts and evaluates end to end; the methods are trained far too little for their differences to mean "
              "anything. Rank methods with the full run (`genco reproduce --data RELEASE --seeds 5`).")


def _ms(values: list[float | None], scale: float = 100.0) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64) * scale
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _fmt(m: dict[str, Any], signed: bool = True, digits: int = 2) -> str:
    if m["mean"] is None:
        return "–"
    spread = "n/a (1 seed)" if m.get("n") == 1 else f"{m['std']:.{digits}f}"
    return f"{m['mean']:{'+' if signed else ''}.{digits}f} ± {spread}"


def aggregate(results: list[dict[str, Any]], methods: tuple[str, ...]) -> dict[str, Any]:
    """Per method: mean ± std over seeds of the headline figures (percent)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["method"], []).append(r)
    table2, table3, table4 = {}, {}, {}
    for m in methods:
        rs = sorted(by.get(m, []), key=lambda r: r["seed"])
        if not rs:
            continue
        s = [r["summary"] for r in rs]
        row = {
            "seeds": [r["seed"] for r in rs],
            "true_ctr": _ms([x.get("true_ctr") for x in s]),
            "true_lift": _ms([x["true_ctr"] / x["uniform_true_ctr"] - 1 if "true_ctr" in x else None for x in s]),
            "headroom_captured": _ms([x.get("headroom_captured") for x in s]),
            "mean_component_lift": _ms([x.get("mean_component_lift") for x in s]),
            "combination_lift": _ms([x.get("combination_lift") for x in s]),
            "n_parameters": rs[0]["n_parameters"],
        }
        for c in COMPONENTS:
            row[f"{c}_lift"] = _ms([x.get(f"{c}_lift") for x in s])
            row[f"{c}_true_lift"] = _ms([r["component_true_lift"].get(c) for r in rs])
        table2[m] = row
    ref = {r["seed"]: r for r in by.get("genco", [])}
    for m in ABLATIONS:
        rs = [r for r in by.get(m, []) if r["seed"] in ref]
        if not rs:
            continue
        row = {}
        for c in COMPONENTS:
            row[c] = _ms([_sub(r["summary"].get(f"{c}_lift"), ref[r["seed"]]["summary"].get(f"{c}_lift")) for r in rs])
            row[f"{c}_true"] = _ms([_sub(r["component_true_lift"].get(c), ref[r["seed"]]["component_true_lift"].get(c)) for r in rs])
        row["true_ctr_lift"] = _ms([_sub(_tl(r), _tl(ref[r["seed"]])) for r in rs])
        table3[m] = row
    for r in by.get("genco", []):
        for c in COMPONENTS:
            for lab in bucket_labels(c):
                table4.setdefault(c, {}).setdefault(lab, []).append(r["buckets"][c][lab])
    table4 = {c: {lab: _ms(v) for lab, v in d.items()} for c, d in table4.items()}
    truth = {}
    if by:
        any_s = next(iter(by.values()))[0]["summary"]
        truth = {k: any_s.get(k) for k in ("uniform_true_ctr", "oracle_ctr", "mean_click")}
    return {"table2": table2, "table3": table3, "table4": table4, "truth": truth}


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _tl(r: dict[str, Any]) -> float | None:
    s = r["summary"]
    return s["true_ctr"] / s["uniform_true_ctr"] - 1 if "true_ctr" in s else None


def render_markdown(agg: dict[str, Any], cfg: ReproduceConfig, seconds: float, fig3: dict[str, Any] | None) -> str:
    st = cfg.settings()
    t = agg["truth"]
    lines = [
        "# GenCO reference results" + (" — quick mode (smoke run, not a ranking)" if cfg.quick else ""),
        "",
        *([f"> **{QUICK_NOTE}**", ""] if cfg.quick else []),
        f"Release `{cfg.data}`; {cfg.n_seeds} seed(s) per method; {'quick' if cfg.quick else 'full'} settings: "
        f"{st['optimizer']} lr {st['lr']:g}, {st['epochs']} epoch(s), batch 1024, chronological order"
        + (f", most recent {st['max_rows']:,} train rows" if st["max_rows"] else "") + f"; wall time {seconds / 60:.1f} min.",
        *([f"GenCO variants with config overrides (`--genco-set`): "
           f"{', '.join(f'{k}={v}' for k, v in sorted(st['genco_options'].items()))} — not the paper's defaults."]
          if st.get("genco_options") else []),
        "All figures are % (mean ± std over seeds). *True* figures come from the simulator's planted ground truth",
        "(the evaluator reads `world/`; training never does). *Lift* = calibrated sCTR / uniform test-log CTR − 1.",
    ]
    if t.get("oracle_ctr"):
        lines.append(f"Uniform policy true CTR {100 * t['uniform_true_ctr']:.3f} %, oracle (best combination per row) "
                     f"{100 * t['oracle_ctr']:.3f} % (+{100 * (t['oracle_ctr'] / t['uniform_true_ctr'] - 1):.1f} %).")
    lines += ["", "## Table 2 — methods against Uniform", "",
              "| Method | true CTR | true lift | headroom captured | mean component lift | combination lift | "
              + " | ".join(COMPONENTS) + " | #params |",
              "|---|" + "---:|" * (6 + len(COMPONENTS))]
    for m, row in agg["table2"].items():
        cells = [LABELS[m], _fmt(row["true_ctr"], False, 3), _fmt(row["true_lift"]), _fmt(row["headroom_captured"], True, 1),
                 _fmt(row["mean_component_lift"]), _fmt(row["combination_lift"])]
        cells += [_fmt(row[f"{c}_lift"]) for c in COMPONENTS] + [f"{row['n_parameters']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per-component *true* lift (the policy's choice on that component, uniform on the others; what the",
              "per-component calibrated sCTR estimates):", "",
              "| Method | " + " | ".join(COMPONENTS) + " |", "|---|" + "---:|" * len(COMPONENTS)]
    for m, row in agg["table2"].items():
        lines.append("| " + " | ".join([LABELS[m]] + [_fmt(row[f"{c}_true_lift"]) for c in COMPONENTS]) + " |")
    if agg["table3"]:
        lines += ["", "## Table 3 — ablations: lift minus full GenCO's (percentage points, paired by seed)", "",
                  "| Ablation | " + " | ".join(COMPONENTS) + " | true CTR lift |", "|---|" + "---:|" * (len(COMPONENTS) + 1)]
        for m, row in agg["table3"].items():
            lines.append("| " + " | ".join([LABELS[m]] + [_fmt(row[c]) for c in COMPONENTS] + [_fmt(row["true_ctr_lift"])]) + " |")
        lines += ["", "Same deltas on the per-component *true* lifts:", "",
                  "| Ablation | " + " | ".join(COMPONENTS) + " |", "|---|" + "---:|" * len(COMPONENTS)]
        for m, row in agg["table3"].items():
            lines.append("| " + " | ".join([LABELS[m]] + [_fmt(row[f"{c}_true"]) for c in COMPONENTS]) + " |")
    if agg["table4"]:
        lines += ["", "## Table 4 — GenCO's calibrated-sCTR lift by candidate bucket", "",
                  "| # candidates | " + " | ".join(COMPONENTS) + " |", "|---|" + "---:|" * len(COMPONENTS)]
        for k, name in enumerate(("<3 (<4)", "3-5 (4-8)", ">5 (>8)")):
            cells = [_fmt(agg["table4"][c][bucket_labels(c)[k]]) for c in COMPONENTS]
            lines.append("| " + " | ".join([name] + cells) + " |")
    if fig3:
        lines += ["", "## Figure 3 — GenCO's MIL weights by category", "",
                  "Mean of w_ij over test rows of the category where component j is present, renormalised per category"
                  f" (seeds {fig3['seeds']}); `figure3.png`.", "",
                  "| category | rows | " + " | ".join(COMPONENTS) + " |", "|---|---:|" + "---:|" * len(COMPONENTS)]
        for cat, rows, w in zip(fig3["categories"], fig3["rows"], fig3["weights"]):
            lines.append("| " + " | ".join([cat, f"{rows:,}"] + [f"{x:.3f}" for x in w]) + " |")
    lines += ["", "The combination-level calibrated sCTR matches few test rows (Π n weights) and is very noisy at this",
              "size; per-component lifts and the true CTR are the reliable figures.", ""]
    return "\n".join(lines)
