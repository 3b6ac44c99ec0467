"""Predictions -> numbers: calibrated sCTR with intervals, lifts, buckets, truth, the validity study.

    metrics.py      the array math (no files): matches, sufficient statistics, intervals, NSCTR, bootstrap,
                    correlations
    predictions.py  input checks: the test split reader, loading predictions, schema checks, id alignment
    results.py      the result dataclasses: Estimate, Truth, BucketResult, CellResult, TruthSummary,
                    EvaluationResult
    report.py       the text: the evaluation table, format_validity
    truth.py        the simulator's ground truth via <release>/world/: true values, oracle, headroom
    evaluator.py    EvalConfig, the expected input/output formats, ``Evaluator``
    validity.py     metric_validity: the policy zoo, each offline metric against the truth
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    **{n: "genco_data.evaluate.evaluator" for n in ("DEFAULT_MAX_BYTES", "EvalConfig", "Evaluator")},
    **{n: "genco_data.evaluate.results"
       for n in ("Estimate", "Truth", "BucketResult", "CellResult", "TruthSummary", "EvaluationResult")},
    "metric_validity": "genco_data.evaluate.validity",
    "format_validity": "genco_data.evaluate.report",
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
