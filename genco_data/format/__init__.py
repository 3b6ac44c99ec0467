"""The contract: what a row, a manifest, a prediction and a submission are (format version 1).

    components.py   COMPONENTS, PAD_TO = 15, Table-4 buckets, the paper's Table-1 figures, column names
    records.py      pydantic models: the one source of truth for every format
    arrow.py        records -> pyarrow schema, ``datasets.Features``, JSON Schema (``schema/v1/``)

This package imports nothing else of the project; everything may import it.
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    **{n: "genco_data.format.components" for n in (
        "COMPONENTS", "N_COMPONENTS", "PAD_TO", "CONFIGS", "SPLITS", "PRODUCTION", "UNIFORM", "LOGGING_POLICIES",
        "BUCKET_EDGES", "CANDIDATE_COLUMNS", "EXPOSED_COLUMNS", "PROPENSITY_COLUMNS", "candidates_col",
        "exposed_col", "propensity_col", "choice_col", "scores_col", "bucket_labels")},
    **{n: "genco_data.format.records" for n in (
        "FORMAT_VERSION", "FORMAT_MAJOR", "ImpressionRow", "ROW_COLUMNS", "PredictionRow", "Manifest", "FileEntry",
        "Source", "Submission", "LeaderboardEntry")},
    **{n: "genco_data.format.arrow" for n in ("impressions_schema", "predictions_schema", "impressions_features")},
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
