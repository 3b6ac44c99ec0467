"""The leaderboard's rules that need no release: limits, the submission file, seeds, the predictions files,
and the per-seed summary numbers.

Every limit is a constant here (the rules page, ``cards/LEADERBOARD_RULES.md``, quotes them). Nothing from a
submission is ever executed or unpickled: a submission is strict JSON (:func:`genco_data.fsutil.parse_json`: a
key given twice, nesting deeper than 64 levels, invalid UTF-8 are refused) validated by
:class:`genco_data.format.records.Submission` in strict mode (``"no"`` is not ``false``); a predictions file is
checked for size, Parquet magic bytes and sha256 before anything parses it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from genco_data.errors import SubmissionError
from genco_data.format.components import COMPONENTS
from genco_data.format.records import MetricSummary, Submission
from genco_data.fsutil import parse_json, sha256_file

#: Minimum number of distinct seeds (OGB asks 10; we default to 5).
MIN_SEEDS = 5
#: Largest submission JSON / predictions file accepted, checked before reading.
MAX_SUBMISSION_BYTES = 1 << 20
MAX_PREDICTIONS_BYTES = 512 << 20
#: Largest verified entry JSON read back (an entry holds every seed's full result: ~230 KB for 5 seeds).
MAX_ENTRY_BYTES = 16 << 20
#: Self-reported means must match the recomputed ones within this absolute tolerance.
REPORT_TOLERANCE = 5e-4
PARQUET_MAGIC = b"PAR1"

#: The board's ranking key (EvaluationResult.summary_metrics): the mean of the six per-component calibrated-sCTR
#: lifts — what real (non-synthetic) data is ranked by. The combination-level lift is shown too but is much
#: noisier on a small test split (Πn weights).
RANK_METRIC = "mean_component_lift"
#: On synthetic releases, where every entry carries the planted truth, rows are ranked by this instead.
TRUTH_RANK_METRIC = "headroom_captured"
#: Truth keys of the summary (present exactly when the entry was verified against the world).
TRUTH_METRICS = ("true_ctr", "uniform_true_ctr", "oracle_ctr", TRUTH_RANK_METRIC)


def one_line(exc: ValidationError) -> str:
    """The first pydantic error as ``loc: message (+N more)``."""
    errs = exc.errors()
    first = errs[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(root)"
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def read_limited(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes (checked before reading)."""
    if not path.is_file():
        raise SubmissionError(f"{path}: no such {what} file" + (" (it is a folder)" if path.is_dir() else ""))
    size = path.stat().st_size
    if size > limit:
        raise SubmissionError(f"{path}: {size:,} bytes is over the {limit:,}-byte limit for a {what} JSON")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_submission(path: Path) -> Submission:
    """Read and validate a submission JSON, refusing oversized, non-JSON or ambiguous files."""
    path = Path(path)
    raw = parse_json(read_limited(path, MAX_SUBMISSION_BYTES, "submission"), SubmissionError, path,
                     invalid="not a UTF-8 JSON document")
    try:
        return Submission.model_validate(raw)
    except ValidationError as exc:
        raise SubmissionError(f"{path}: {one_line(exc)}") from None


def check_submission_rules(sub: Submission, where: str, min_seeds: int = MIN_SEEDS) -> None:
    """Rules that need no data: label use, seeds, distinct files, finite self-reported numbers."""
    if sub.used_test_labels:
        raise SubmissionError(f"{where}: used_test_labels is true; test labels may be used for evaluation only")
    seeds = [p.seed for p in sub.predictions]
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise SubmissionError(f"{where}: seed {dup[0]} is listed twice; each seed has one predictions file")
    if len(seeds) < min_seeds:
        raise SubmissionError(f"{where}: {len(seeds)} seeds given, at least {min_seeds} distinct seeds are required")
    # One file may not stand for two seeds; identical *content* is only expected from a method that
    # declares it ignores the seed.
    for attr in ("path",) if sub.deterministic else ("path", "sha256"):
        values = [getattr(p, attr) for p in sub.predictions]
        same = sorted({v for v in values if values.count(v) > 1})
        if same:
            raise SubmissionError(f"{where}: the same predictions file ({attr} {same[0]}) is given for two seeds")
    for key, value in sorted(sub.reported.items()):
        if not math.isfinite(value):
            raise SubmissionError(f"{where}: reported {key} = {value} is not a finite number")


def check_predictions_file(path: Path, expected_sha256: str, seed: int) -> None:
    """Size, Parquet magic bytes and sha256 — before anything parses the file."""
    if path.is_symlink() or not path.is_file():
        what = "is a symlink (give the file itself)" if path.is_symlink() else "does not exist"
        raise SubmissionError(f"seed {seed}: predictions file {path} {what}")
    size = path.stat().st_size
    if size > MAX_PREDICTIONS_BYTES:
        raise SubmissionError(f"seed {seed}: {path} is {size:,} bytes, over the {MAX_PREDICTIONS_BYTES:,}-byte limit")
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(max(size - 4, 0))
        tail = fh.read(4)
    if size < 12 or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        kind = "a pickle" if head[:1] == b"\x80" else "not a Parquet file"
        raise SubmissionError(f"seed {seed}: {path} is {kind} (Parquet files start and end with PAR1); refused unread")
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise SubmissionError(f"seed {seed}: {path} sha256 is {digest}, the submission says {expected_sha256}")


# ---------------------------------------------------------------------------------------- the numbers
def seed_std(values: list[float]) -> float:
    """Sample standard deviation (ddof=1) over seeds; 0.0 for one seed (the board shows "n/a (1 seed)")."""
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1)) if len(values) > 1 else 0.0


def summaries(per_seed: list[dict[str, float]]) -> dict[str, MetricSummary]:
    """mean, std and per-seed values of every metric every seed has."""
    keys = sorted(set.intersection(*(set(d) for d in per_seed)))
    out = {}
    for k in keys:
        vals = [float(d[k]) for d in per_seed]
        out[k] = MetricSummary(mean=float(np.mean(np.asarray(vals, dtype=np.float64))), std=seed_std(vals), per_seed=vals)
    return out


def _value(d: Any, *path: str) -> float | None:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else None


def summary_from_result(d: dict[str, Any]) -> dict[str, float]:
    """``EvaluationResult.summary_metrics()`` recomputed from its ``to_dict()`` (what an entry stores per seed):
    the leaderboard check compares an entry's per-seed numbers with it. A test keeps the two equal."""
    out: dict[str, float | None] = {"mean_click": _value(d, "mean_click")}
    cells = [("components", c) for c in COMPONENTS] + [("combination", None)]
    for group, name in cells:
        base = (group, name) if name is not None else (group,)
        label = name or "combination"
        for key in ("calibrated_sctr", "lift", "plain_sctr", "nsctr"):
            out[f"{label}_{key}"] = _value(d, *base, key, "value")
    lifts = [out[f"{c}_lift"] for c in COMPONENTS]
    if all(v is not None and math.isfinite(v) for v in lifts):
        out["mean_component_lift"] = sum(lifts) / len(lifts)  # type: ignore[arg-type]
    if isinstance(d.get("truth"), dict):
        t = d["truth"]
        out.update({"true_ctr": _value(t, "policy"), "uniform_true_ctr": _value(t, "uniform"), "oracle_ctr": _value(t, "oracle"),
                    TRUTH_RANK_METRIC: _value(t, "headroom_captured")})
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


__all__ = [
    "MIN_SEEDS", "MAX_SUBMISSION_BYTES", "MAX_PREDICTIONS_BYTES", "MAX_ENTRY_BYTES", "REPORT_TOLERANCE", "PARQUET_MAGIC",
    "RANK_METRIC", "TRUTH_RANK_METRIC", "TRUTH_METRICS", "one_line", "read_limited", "load_submission",
    "check_submission_rules", "check_predictions_file", "seed_std", "summaries", "summary_from_result",
]
