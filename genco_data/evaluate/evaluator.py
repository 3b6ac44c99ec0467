"""Score a policy offline on a release's uniform-logged test split: calibrated sCTR (paper, Algorithm 1)
per component and per combination, plain sCTR, NSCTR, lifts vs uniform (overall and by Table-4 bucket),
95 % intervals (score intervals built on the delta-method linearisation, see :mod:`genco_data.evaluate.metrics`;
``bootstrap=N`` as a cross-check) and, on synthetic releases, the matching ground truth from ``world/``
(:mod:`genco_data.evaluate.truth`).

NSCTR follows JD's "Parallel Ranking of Ads and Creatives in Real-Time Advertising Systems" (AAAI 2024,
Algorithm 1): each ad's replay CTR weighted by the ad's impressions; ads with no matched impression (0/0,
undefined in the paper) are left out — see :func:`genco_data.evaluate.metrics.nsctr`.

    >>> ev = Evaluator("releases/genco-synth")                       # doctest: +SKIP
    >>> result = ev.evaluate("predictions.parquet", bootstrap=200)   # doctest: +SKIP
    >>> print(result.format_table()); result.to_dict()["combination"]  # doctest: +SKIP

The input contract is :attr:`Evaluator.expected_input_format` (generated from
:class:`genco_data.format.records.PredictionRow`); every violation raises :class:`PredictionsError` with one line
naming the file, the column and an example row (the checks: :mod:`genco_data.evaluate.predictions`). The math
lives in :mod:`genco_data.evaluate.metrics`, the results in :mod:`genco_data.evaluate.results`;
:func:`genco_data.evaluate.validity.metric_validity` checks, on a synthetic release, how well each offline
metric ranks many policies by their true CTR.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from genco_data.evaluate import metrics as M
from genco_data.evaluate.predictions import (
    _ID,
    _TestSplit,
    _choices_from_arrays,
    _choices_from_table,
    _load_predictions,
    _read_test_split,
)
from genco_data.evaluate.results import (
    MIN_EFFECTIVE_ROWS,
    BucketResult,
    CellResult,
    Estimate,
    EvaluationResult,
    Truth,
    TruthSummary,
)
from genco_data.evaluate.truth import _AUTO, WorldTruth, load_world, read_requests
from genco_data.format.arrow import predictions_schema
from genco_data.format.components import COMPONENTS, bucket_labels
from genco_data.errors import InvalidInputError
from genco_data.format.records import PREDICTION_REQUIRED_COLUMNS, PredictionRow
from genco_data.release import MANIFEST_NAME, Release

K = len(COMPONENTS)
#: Default size limit of a predictions file, checked before reading (one row per test impression is
#: ~30 bytes without scores; 2 GB leaves room for scores of tens of millions of rows).
DEFAULT_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class EvalConfig:
    """Evaluator settings (the CLI fills one in; defaults are what `genco evaluate` uses)."""

    max_bytes: int = DEFAULT_MAX_BYTES  # predictions files larger than this are refused before reading
    confidence: float = 0.95  # two-sided level of every interval
    truth_samples: int = 16  # Monte-Carlo draws per row for the world's uniform / per-component truths (MC se ~1e-5 at 50k rows)
    batch_rows: int = 1 << 20  # rows per Arrow batch while streaming the test split
    validity_components: bool = True  # metric_validity: also per-component truths (6 world calls per policy)
    validity_samples: int = 4  # metric_validity: Monte-Carlo draws per row of each per-component truth
    min_effective_rows: float = MIN_EFFECTIVE_ROWS  # below this n_eff an estimate is flagged reliable = False

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if min(self.truth_samples, self.batch_rows, self.validity_samples) < 1:
            raise ValueError("truth_samples, validity_samples and batch_rows must be >= 1")
        if not self.min_effective_rows >= 0:
            raise ValueError(f"min_effective_rows must be >= 0, got {self.min_effective_rows}")


def _expected_input_format(max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    lines = ["Predictions: one Parquet file (or a pyarrow.Table) with exactly one row per test impression:"]
    for f in predictions_schema():
        info = PredictionRow.model_fields[f.name]
        desc, arrow_type = info.description or "", (info.json_schema_extra or {}).get("arrow", str(f.type))
        if f.name == _ID:
            rule = "not null; every test impression_id exactly once, no other ids"
        elif f.name in PREDICTION_REQUIRED_COLUMNS:
            rule = "0 <= choice < len(pool); any integer type is accepted, float/string are refused"
        else:
            rule = "finite values, len == len(pool); null or [] where the pool is empty"
        lines.append(f"  {f.name}: {arrow_type}{'' if f.name in PREDICTION_REQUIRED_COLUMNS else ', optional'} - {desc}; {rule}")
    lines.append("No other columns. Files over EvalConfig.max_bytes "
                 f"(default {max_bytes:,} bytes) are refused before reading.")
    lines.append('Python API also: {"choices": integer array [R, 6]} aligned to the test split order (-1 where the '
                 'pool is empty), optionally with "impression_id": [R] strings to align by id instead.')
    return "\n".join(lines)


_EXPECTED_OUTPUT_FORMAT = """EvaluationResult.metrics() -> {name: float}, names:
  calibrated_sctr/<component|combination>, plain_sctr/..., nsctr/..., uniform_ctr/..., lift/...
  (and <name>/ci_low, <name>/ci_high, <name>/n_eff); lift/<component>/<bucket label> for Table 4;
  truth/policy, truth/uniform, truth/oracle, truth/headroom_captured on synthetic releases.
EvaluationResult.to_dict() nests the same with standard errors, bootstrap intervals, counts, each
estimate's effective sample size n_eff and reliable flag (n_eff >= EvalConfig.min_effective_rows),
dataset_version and the manifest.json sha256."""


# -------------------------------------------------------------------------------------------- evaluator
class Evaluator:
    """Offline replay evaluator of one release. ``world="auto"`` loads ``<release>/world/`` when present
    (``genco_data.synth.World``); pass an object with the World interface to inject one, or None for none.
    ``verify=True`` (default) first checks every file of the release against the manifest's sha256
    (:func:`genco_data.release.verify_checksums`, cached per process) and raises ``IntegrityError`` on a
    mismatch; ``verify=False`` skips that for speed on a release you trust."""

    expected_input_format: str = _expected_input_format()
    expected_output_format: str = _EXPECTED_OUTPUT_FORMAT

    def __init__(self, release: str | Path, *, config: EvalConfig | None = None, world: Any = _AUTO, verify: bool = True) -> None:
        self.release = Release.open(release, verify=verify)
        self.config = config or EvalConfig()
        self._world_arg = world
        self._split: _TestSplit | None = None
        self._world: Any = None
        self._world_loaded = False
        self._requests: pa.Table | None = None
        self._world_truth: WorldTruth | None = None
        self._cache: dict[Any, Any] = {}
        self.notes: list[str] = []

    # ------------------------------------------------------------------ lazily loaded parts
    @property
    def split(self) -> _TestSplit:
        if self._split is None:
            self._split = _read_test_split(self.release, self.config.batch_rows)
        return self._split

    @property
    def log(self) -> M.UniformLog:
        return self.split.log

    @property
    def world(self) -> Any:
        if not self._world_loaded:
            self._world_loaded = True
            self._world = load_world(self.release, self._world_arg, self.notes)
        return self._world

    @property
    def requests(self) -> pa.Table:
        """The full test split (every impressions column), as the World's ``requests``."""
        if self._requests is None:
            self._requests = read_requests(self.release)
        return self._requests

    # ------------------------------------------------------------------ public API
    def check_predictions(self, predictions: Any) -> np.ndarray:
        """Validate ``predictions`` (path, ``pa.Table`` or dict of arrays) -> choices int64 [R, 6] in test
        order, -1 where the pool is empty. Raises :class:`PredictionsError` (one line) on any violation."""
        return self._choices(predictions).T.astype(np.int64)

    def evaluate(self, predictions: Any, bootstrap: int = 0, seed: int = 0, progress: bool = False) -> EvaluationResult:
        """Every metric of the policy in ``predictions`` with its interval and, on synthetic releases, its truth.
        ``progress`` draws a tqdm bar (stderr) over the steps after the input checks (estimates, bootstrap,
        the world's truths — the slow part on a synthetic release)."""
        if bootstrap < 0:
            raise InvalidInputError(f"bootstrap must be >= 0, got {bootstrap}")
        label = "<arrays>" if isinstance(predictions, Mapping) else "<table>" if isinstance(predictions, pa.Table) else str(predictions)
        choices = self._choices(predictions)  # every input check first: a mistake is one line, no bar
        world = self.world
        from tqdm import tqdm

        steps = 1 + (1 if bootstrap else 0) + (0 if world is None else WorldTruth.STEPS)
        with tqdm(total=steps, desc="genco evaluate", unit="step", disable=not progress, leave=False) as bar:
            log, z, conf = self.log, M.z_value(self.config.confidence), self.config.confidence
            matches = M.match(log, choices)
            bar.set_postfix_str("estimates")
            est = M.estimates(M.sufficient_stats(log, matches), z)
            ns_val, ns_se, ns_neff = M.nsctr(log, matches, with_neff=True)
            bar.update()
            boot = None
            if bootstrap:
                bar.set_postfix_str(f"bootstrap x{bootstrap}")
                samples = M.bootstrap(log, matches, bootstrap, np.random.default_rng(seed))
                boot = {name: M.bootstrap_summary(s, conf) for name, s in samples.items()}
                bar.update()
            truth, truths = self._truth(choices, seed, bar) if world is not None else (None, {})
        floor = self.config.min_effective_rows

        def e(name: str, row: int, col: int = M.ALL) -> Estimate:
            b = None if boot is None else tuple(a[row, col] for a in boot[name])
            return Estimate.of(est[name][row, col], est[f"{name}_se"][row, col], est[f"{name}_lo"][row, col], est[f"{name}_hi"][row, col],
                               "log-score+delta" if name == "lift" else "score", b, n_eff=est[f"{name}_neff"][row, col], min_n_eff=floor)

        def cell(row: int, name: str) -> CellResult:
            b = None if boot is None else tuple(a[row] for a in boot["nsctr"])
            buckets = ()
            if row < K:
                buckets = tuple(
                    BucketResult(lab, int(est["rows"][row, k]), int(est["matched"][row, k]), e("calibrated", row, k), e("plain", row, k),
                                 e("uniform", row, k), e("lift", row, k))
                    for k, lab in enumerate(bucket_labels(name))
                )
            return CellResult(name, int(est["rows"][row, M.ALL]), int(est["matched"][row, M.ALL]), e("calibrated", row), e("plain", row),
                              e("uniform", row), e("lift", row),
                              Estimate.of(ns_val[row], ns_se[row], ns_val[row] - z * ns_se[row], ns_val[row] + z * ns_se[row], "cluster-delta", b,
                                          n_eff=ns_neff[row], min_n_eff=floor),
                              buckets, truths.get(row))

        m = self.release.manifest
        return EvaluationResult(
            release=str(self.release.root), dataset_version=m.dataset_version, format_version=m.format_version,
            manifest_sha256=self.manifest_sha256, predictions=label, test_rows=log.rows, mean_click=float(log.y.mean()),
            confidence=conf, bootstrap=int(bootstrap), seed=int(seed),
            components=tuple(cell(j, c) for j, c in enumerate(COMPONENTS)), combination=cell(M.COMB, "combination"),
            truth=truth, notes=tuple(self.notes), min_effective_rows=floor,
        )

    @property
    def manifest_sha256(self) -> str:
        if "sha" not in self._cache:
            self._cache["sha"] = hashlib.sha256((self.release.root / MANIFEST_NAME).read_bytes()).hexdigest()
        return self._cache["sha"]

    # ------------------------------------------------------------------ private
    def _choices(self, predictions: Any) -> np.ndarray:
        if isinstance(predictions, Mapping):
            return _choices_from_arrays(predictions, self.split)
        table, src = _load_predictions(predictions, self.config.max_bytes)
        return _choices_from_table(table, src, self.split)

    def _truth(self, choices: np.ndarray, seed: int, bar: Any = None) -> tuple[TruthSummary, dict[int, Truth]]:
        if self._world_truth is None:
            self._world_truth = WorldTruth(self.world, self.requests, self.log, self.config.truth_samples)
        return self._world_truth.truth(choices, seed, bar)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "EvalConfig",
    "Evaluator",
]
