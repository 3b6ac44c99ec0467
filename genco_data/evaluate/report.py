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


def _neff(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def too_few(e: Any) -> str:
    """What the text prints instead of an unreliable estimate's interval."""
    return f"too few matched rows (n_eff = {_neff(e.n_eff)})"


def _with_ci(e: Any, signed: bool = False, boot: bool = False) -> str:
    """``value [lo, hi]``, or :func:`too_few` when the estimate is below the n_eff threshold."""
    if not e.reliable:
        return too_few(e)
    return f"{_pct(e.value, signed)} {_ci(e, signed, boot)}" if not boot else _ci(e, signed, boot)


def _point(e: Any, signed: bool = False) -> str:
    """A point value without interval; ``*`` marks one below the n_eff threshold (footnote under the table)."""
    return _pct(e.value, signed) + ("*" if not e.reliable and e.value is not None and math.isfinite(e.value) else "")


def _format_result(r: Any) -> str:
    level = f"{r.confidence * 100:g}%"
    floor = _neff(r.min_effective_rows)
    lines = [
        f"release {r.dataset_version} (format {r.format_version}, manifest sha256 {r.manifest_sha256[:12]}) - {r.release}",
        f"predictions {r.predictions}; test split {r.test_rows:,} uniform-logged rows, mean click {_pct(r.mean_click)}",
        f"{level} intervals: score (Wilson, Kish effective size) for ratios, log-score + joint delta for lifts, cluster delta for NSCTR"
        + (f"; bootstrap cross-check: {r.bootstrap} resamples, seed {r.seed}" if r.bootstrap else ""),
        f"n_eff = Kish effective sample size of the matched rows (weights n, or the product of n for the combination); "
        f"below {floor} an estimate is too noisy to read and no interval is printed",
        "",
        f"{'':<20}{'rows':>10}{'matched':>9}{'n_eff':>9}  {'calibrated sCTR [' + level + ' CI]':<36}{'plain sCTR':>11}{'NSCTR':>10}"
        f"  {'lift vs uniform [' + level + ' CI]':<36}{'truth':>9}{'true lift':>10}",
    ]
    unreliable_points = False
    for c in (*r.components, r.combination):
        t = c.truth
        unreliable_points |= not (c.plain.reliable and c.nsctr.reliable)
        lines.append(
            f"{c.name:<20}{c.rows:>10,}{c.matched:>9,}{_neff(c.calibrated.n_eff):>9}  {_with_ci(c.calibrated):<36}{_point(c.plain):>11}"
            f"{_point(c.nsctr):>10}  {_with_ci(c.lift, True):<36}"
            f"{_pct(t.value if t else None):>9}{_pct(t.lift if t else None, True):>10}"
        )
    if unreliable_points:
        lines.append(f"* n_eff below {floor}: too few matched rows to read this point estimate")
    if r.bootstrap:
        lines += ["", f"bootstrap (percentile) vs reported {level} intervals",
                  f"{'':<20}{'calibrated sCTR: reported':<36}{'bootstrap':<36}{'lift: reported':<36}bootstrap"]
        for c in (*r.components, r.combination):
            lines.append(f"{c.name:<20}{_with_ci(c.calibrated):<36}{_with_ci(c.calibrated, boot=True):<36}"
                         f"{_with_ci(c.lift, True):<36}{_with_ci(c.lift, True, True)}")
    lines += ["", "lift vs uniform by candidate count (Table 4: [<3, 3-5, >5] title/image/marketing, [<4, 4-8, >8] others), "
              "+- half CI width, n_eff"]
    lines.append(f"{'':<20}" + "".join(f"{lab:<40}" for lab in ("low", "mid", "high")).rstrip())
    for c in r.components:
        cells = []
        for b in c.buckets:
            half = (b.lift.ci_high - b.lift.ci_low) / 2
            if not b.lift.reliable or not math.isfinite(half):
                cells.append(f"{b.label} {too_few(b.lift)}")
            else:
                cells.append(f"{b.label} {_pct(b.lift.value, True, 2)} +-{_pct(half, False, 2)} (n_eff {_neff(b.lift.n_eff)})")
        lines.append(f"{c.name:<20}" + "".join(f"{s:<40}" for s in cells).rstrip())
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


__all__ = ["format_validity", "too_few"]
