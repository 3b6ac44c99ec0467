"""The evaluator's text: the table of one evaluation (``EvaluationResult.format_table`` calls
:func:`_format_result`) and :func:`format_validity` (the validity study's report as a table).

It reads the result objects of :mod:`genco_data.evaluate.results` without importing that module (results
imports this one for ``format_table``; the other way round would be an import circle), so they are typed
``Any`` here: ``e`` is an ``Estimate``, ``r`` an ``EvaluationResult``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping


def _pct(x: float | None, signed: bool = False, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x * 100:{'+' if signed else ''}.{digits}f}%"


def _ci(e: Any, signed: bool = False, boot: bool = False) -> str:
    lo, hi = (e.boot_low, e.boot_high) if boot else (e.ci_low, e.ci_high)
    if lo is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "[n/a]"
    return f"[{_pct(lo, signed)}, {_pct(hi, signed)}]"


def _format_result(r: Any) -> str:
    level = f"{r.confidence * 100:g}%"
    lines = [
        f"release {r.dataset_version} (format {r.format_version}, manifest sha256 {r.manifest_sha256[:12]}) - {r.release}",
        f"predictions {r.predictions}; test split {r.test_rows:,} uniform-logged rows, mean click {_pct(r.mean_click)}",
        f"{level} intervals: score (Wilson, Kish effective size) for ratios, log-score + joint delta for lifts, cluster delta for NSCTR"
        + (f"; bootstrap cross-check: {r.bootstrap} resamples, seed {r.seed}" if r.bootstrap else ""),
        "",
        f"{'':<20}{'rows':>10}{'matched':>9}  {'calibrated sCTR [' + level + ' CI]':<34}{'plain sCTR':>11}{'NSCTR':>9}"
        f"  {'lift vs uniform [' + level + ' CI]':<34}{'truth':>9}{'true lift':>10}",
    ]
    for c in (*r.components, r.combination):
        t = c.truth
        lines.append(
            f"{c.name:<20}{c.rows:>10,}{c.matched:>9,}  {_pct(c.calibrated.value) + ' ' + _ci(c.calibrated):<34}{_pct(c.plain.value):>11}"
            f"{_pct(c.nsctr.value):>9}  {_pct(c.lift.value, True) + ' ' + _ci(c.lift, True):<34}"
            f"{_pct(t.value if t else None):>9}{_pct(t.lift if t else None, True):>10}"
        )
    if r.bootstrap:
        lines += ["", f"bootstrap (percentile) vs reported {level} intervals",
                  f"{'':<20}{'calibrated sCTR: reported':<34}{'bootstrap':<34}{'lift: reported':<34}bootstrap"]
        for c in (*r.components, r.combination):
            lines.append(f"{c.name:<20}{_ci(c.calibrated):<34}{_ci(c.calibrated, boot=True):<34}{_ci(c.lift, True):<34}{_ci(c.lift, True, True)}")
    lines += ["", "lift vs uniform by candidate count (Table 4: [<3, 3-5, >5] title/image/marketing, [<4, 4-8, >8] others), +- half CI width"]
    lines.append(f"{'bucket':<10}" + "".join(f"{c.name:>22}" for c in r.components))
    for k, lab in enumerate(("low", "mid", "high")):
        cells = []
        for c in r.components:
            b = c.buckets[k]
            half = (b.lift.ci_high - b.lift.ci_low) / 2
            ok = b.matched and math.isfinite(b.lift.value) and math.isfinite(half)
            cells.append(f"{b.label:>5} {_pct(b.lift.value, True, 2)} +-{_pct(half, False, 2)}" if ok else f"{b.label:>5} n/a")
        lines.append(f"{lab:<10}" + "".join(f"{s:>22}" for s in cells))
    if r.truth is not None:
        t = r.truth
        lines += ["", f"truth (simulator world): policy {_pct(t.policy)}, uniform {_pct(t.uniform)} (+-{_pct(t.uniform_se, digits=4)} MC), "
                  f"oracle {_pct(t.oracle)}, headroom captured {_pct(t.headroom_captured, digits=1)}",
                  "  each row's truth is what its estimate targets: per component = that component's choice with the "
                  "others uniform (rows having it); combination = the policy's own CTR"]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def format_validity(report: Mapping[str, Any]) -> str:
    """Render :func:`metric_validity`'s report as a table."""
    lo, hi = report["truth_range"]
    lines = [
        f"metric validity on {report['release']} (release {report['dataset_version']}, {report['test_rows']:,} test rows)",
        f"{report['n_policies']} policies (seed {report['seed']}), true CTR from {_pct(lo)} to {_pct(hi)}",
        "",
        f"{'level':<21}{'metric':<17}{'pearson':>8}{'kendall':>9}{'bias':>10}{'rmse':>9}{'CI cover':>10}",
    ]
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for lv, per in report["levels"].items():
        for m, d in per.items():
            lines.append(f"{lv:<21}{m:<17}{f(d['pearson']):>8}{f(d['kendall']):>9}{_pct(d['bias'], True):>10}"
                         f"{_pct(d['rmse']):>9}{_pct(d['ci_coverage'], digits=0):>10}")
    lines.append("truth: combination = the policy's exact CTR; component = its choice there, uniform elsewhere (world.component_value)")
    return "\n".join(lines)


__all__ = ["format_validity"]
