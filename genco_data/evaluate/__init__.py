"""Predictions -> numbers: calibrated sCTR with intervals, lifts, buckets, truth, the validity study.

    metrics.py     the array math (no files): matches, sufficient statistics, intervals, NSCTR, bootstrap
    evaluator.py   ``Evaluator``: input checks, alignment by impression_id, results, truth, report, validity
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    n: "genco_data.evaluate.evaluator"
    for n in (
        "DEFAULT_MAX_BYTES", "EvalConfig", "Estimate", "Truth", "BucketResult", "CellResult", "TruthSummary",
        "EvaluationResult", "Evaluator", "metric_validity", "format_validity",
    )
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
