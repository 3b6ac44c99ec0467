"""The evaluator's results: one :class:`Estimate` per metric (value, delta-method se, interval, bootstrap),
the matching :class:`Truth` on synthetic releases, per-bucket and per-cell results, and the whole
:class:`EvaluationResult` with its ``to_dict`` / ``metrics`` / ``summary_metrics`` views (the text table is
:mod:`genco_data.evaluate.report`'s)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from genco_data.evaluate.report import _format_result


def _num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


#: Below this effective sample size (Kish's n_eff of the matched rows, see ``metrics.effective_size``) an
#: estimate is flagged ``reliable: false`` and the text report prints "too few matched rows (n_eff = …)"
#: instead of its interval. Why 200: at the paper's 6.84 % CTR that is ~14 effective clicks, where the 95 %
#: interval of a CTR spans about ±50 % of its value (z·sqrt((1 − p) / (n_eff · p)) = 0.51) — too wide to
#: rank policies, and where the normal approximations behind every interval here start to break down.
#: ``EvalConfig.min_effective_rows`` changes it.
MIN_EFFECTIVE_ROWS = 200.0


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its delta-method standard error and interval, (optionally) the bootstrap's, its
    effective sample size and whether that reaches :data:`MIN_EFFECTIVE_ROWS` (or the configured threshold)."""

    value: float
    se: float  # delta-method standard error (value ± z·se is the plain delta interval)
    ci_low: float
    ci_high: float
    ci_method: str  # "score" (Wilson, Kish effective size), "log-score+delta" (lift), "cluster-delta" (NSCTR)
    boot_se: float | None = None
    boot_low: float | None = None
    boot_high: float | None = None
    n_eff: float = 0.0  # Kish effective sample size of the rows behind the estimate
    reliable: bool = True  # n_eff >= the threshold and the value is finite

    @classmethod
    def of(cls, value: float, se: float, lo: float, hi: float, method: str, boot: tuple | None = None, *,
           n_eff: float = 0.0, min_n_eff: float = MIN_EFFECTIVE_ROWS) -> "Estimate":
        b = (None, None, None) if boot is None else tuple(float(v) for v in boot)
        n_eff = float(n_eff) if math.isfinite(float(n_eff)) else 0.0
        reliable = n_eff >= min_n_eff and math.isfinite(float(value))
        return cls(float(value), float(se), float(lo), float(hi), method, *b, n_eff=n_eff, reliable=reliable)

    def covers(self, x: float) -> bool:
        return bool(self.ci_low <= x <= self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        return {k: v if isinstance(v, (str, bool)) else _num(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Truth:
    """The matching true value of an estimate (synthetic releases): the world's CTR of what it estimates,
    the uniform policy's on the same rows, and the true lift. ``*_se`` are Monte-Carlo errors (0 if exact)."""

    value: float
    se: float
    uniform: float
    uniform_se: float

    @property
    def lift(self) -> float:
        return self.value / self.uniform - 1 if self.uniform > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**{k: _num(v) for k, v in asdict(self).items()}, "lift": _num(self.lift)}


@dataclass(frozen=True)
class BucketResult:
    label: str  # e.g. "<3", "3-5", ">5"
    rows: int
    matched: int
    calibrated: Estimate
    plain: Estimate
    uniform: Estimate
    lift: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "rows": self.rows, "matched": self.matched, "calibrated_sctr": self.calibrated.to_dict(),
                "plain_sctr": self.plain.to_dict(), "uniform_ctr": self.uniform.to_dict(), "lift": self.lift.to_dict()}


@dataclass(frozen=True)
class CellResult:
    """One component (per-component metrics) or the combination (all components at once)."""

    name: str
    rows: int  # test rows having the component (all rows for the combination)
    matched: int  # rows where the policy's choice equals the shown element (on every component)
    calibrated: Estimate
    plain: Estimate
    uniform: Estimate  # mean click of the uniform test log on the same rows
    lift: Estimate  # calibrated / uniform - 1
    nsctr: Estimate
    buckets: tuple[BucketResult, ...] = ()
    truth: Truth | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"rows": self.rows, "matched": self.matched, "calibrated_sctr": self.calibrated.to_dict(), "plain_sctr": self.plain.to_dict(),
             "uniform_ctr": self.uniform.to_dict(), "lift": self.lift.to_dict(), "nsctr": self.nsctr.to_dict(),
             "truth": None if self.truth is None else self.truth.to_dict()}
        if self.buckets:
            d["buckets"] = {b.label: b.to_dict() for b in self.buckets}
        return d


@dataclass(frozen=True)
class TruthSummary:
    policy: float  # the policy's exact mean true CTR (what the combination-level sCTR estimates)
    uniform: float
    uniform_se: float
    oracle: float  # the exact optimum's mean true CTR
    headroom_captured: float  # (policy - uniform) / (oracle - uniform)

    def to_dict(self) -> dict[str, Any]:
        return {k: _num(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EvaluationResult:
    release: str
    dataset_version: str
    format_version: str
    manifest_sha256: str
    predictions: str
    test_rows: int
    mean_click: float
    confidence: float
    bootstrap: int
    seed: int
    components: tuple[CellResult, ...]
    combination: CellResult
    truth: TruthSummary | None = None
    notes: tuple[str, ...] = field(default=())
    min_effective_rows: float = MIN_EFFECTIVE_ROWS  # the reliability threshold the estimates were flagged with

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release, "dataset_version": self.dataset_version, "format_version": self.format_version,
            "manifest_sha256": self.manifest_sha256, "predictions": self.predictions, "test_rows": self.test_rows,
            "mean_click": _num(self.mean_click), "confidence": self.confidence,
            "ci_method": "score intervals (ratios), log-score+delta (lifts), cluster delta (NSCTR); se by the delta method"
                         + (f"; bootstrap {self.bootstrap} resamples" if self.bootstrap else ""), "seed": self.seed,
            "components": {c.name: c.to_dict() for c in self.components}, "combination": self.combination.to_dict(),
            "truth": None if self.truth is None else self.truth.to_dict(), "notes": list(self.notes),
            "min_effective_rows": self.min_effective_rows,
        }

    def metrics(self) -> dict[str, float]:
        """Flat ``{name: float}`` (OGB style) — see ``Evaluator.expected_output_format``."""
        out: dict[str, float] = {}
        for cell in (*self.components, self.combination):
            for key, est in (("calibrated_sctr", cell.calibrated), ("plain_sctr", cell.plain), ("nsctr", cell.nsctr),
                             ("uniform_ctr", cell.uniform), ("lift", cell.lift)):
                out[f"{key}/{cell.name}"] = est.value
                out[f"{key}/{cell.name}/ci_low"] = est.ci_low
                out[f"{key}/{cell.name}/ci_high"] = est.ci_high
                out[f"{key}/{cell.name}/n_eff"] = est.n_eff
            for b in cell.buckets:
                out[f"lift/{cell.name}/{b.label}"] = b.lift.value
        if self.truth is not None:
            for k, v in asdict(self.truth).items():
                out[f"truth/{k}"] = v
        return out

    def summary_metrics(self) -> dict[str, float]:
        """Headline numbers for the leaderboard, finite values only: ``<cell>_calibrated_sctr``,
        ``<cell>_lift``, ``<cell>_plain_sctr``, ``<cell>_nsctr`` (cell = component or ``combination``),
        ``mean_click``, ``mean_component_lift`` (mean of the six per-component lifts); on synthetic releases ``true_ctr``, ``uniform_true_ctr``, ``oracle_ctr``,
        ``headroom_captured``."""
        out = {"mean_click": self.mean_click}
        for cell in (*self.components, self.combination):
            out.update({f"{cell.name}_calibrated_sctr": cell.calibrated.value, f"{cell.name}_lift": cell.lift.value,
                        f"{cell.name}_plain_sctr": cell.plain.value, f"{cell.name}_nsctr": cell.nsctr.value})
        lifts = [cell.lift.value for cell in self.components]
        if lifts and all(v is not None and math.isfinite(v) for v in lifts):
            # The board's ranking key: per-component lifts are far less noisy than the combination-level one
            # (whose Πn weights leave few matched rows on a small test split).
            out["mean_component_lift"] = sum(lifts) / len(lifts)
        if self.truth is not None:
            out.update({"true_ctr": self.truth.policy, "uniform_true_ctr": self.truth.uniform, "oracle_ctr": self.truth.oracle,
                        "headroom_captured": self.truth.headroom_captured})
        return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}

    def format_table(self) -> str:
        return _format_result(self)


__all__ = [
    "MIN_EFFECTIVE_ROWS",
    "Estimate",
    "Truth",
    "BucketResult",
    "CellResult",
    "TruthSummary",
    "EvaluationResult",
]
