"""The leaderboard: submissions verified by recomputation, never by trust; a deterministic rendered board.

A submission (``records.Submission``) names a release (version + manifest sha256) and one predictions Parquet
per seed with its sha256. ``verify_submission`` checks all of it, then **recomputes every metric** from the
predictions with :class:`genco_data.evaluate.Evaluator`; self-reported numbers, when present, must agree.
It writes a ``records.LeaderboardEntry`` into ``cards/leaderboard/``. ``render_leaderboard`` turns the entries
into ``cards/LEADERBOARD.md`` (same entries → same bytes).

Nothing from a submission is ever executed or unpickled: predictions are read as Parquet only, after their
magic bytes, size and sha256 were checked.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from genco_data import __version__
from genco_data.format.components import COMPONENTS
from genco_data.errors import SubmissionError
from genco_data.fsutil import sha256_file, write_json_atomic, write_text_atomic
from genco_data.format.records import LeaderboardEntry, MetricSummary, Submission
from genco_data.release import MANIFEST_NAME, Release

#: Minimum number of distinct seeds (OGB asks 10; we default to 5).
MIN_SEEDS = 5
#: Largest submission JSON / predictions file accepted, checked before reading.
MAX_SUBMISSION_BYTES = 1 << 20
MAX_PREDICTIONS_BYTES = 512 << 20
#: Largest verified entry JSON read back by ``render`` (an entry holds every seed's full result: ~100 KB).
MAX_ENTRY_BYTES = 16 << 20
#: Self-reported means must match the recomputed ones within this absolute tolerance.
REPORT_TOLERANCE = 5e-4
PARQUET_MAGIC = b"PAR1"

#: The board's ranking key (EvaluationResult.summary_metrics): the mean of the six per-component lifts.
#: The combination-level lift is shown too but is much noisier on a small test split (Πn weights).
RANK_METRIC = "mean_component_lift"
#: On synthetic releases, where every entry carries the planted truth, rows are ranked by this instead.
TRUTH_RANK_METRIC = "headroom_captured"




def _one_line(exc: ValidationError) -> str:
    errs = exc.errors()
    first = errs[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(root)"
    more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def load_submission(path: Path) -> Submission:
    """Read and validate a submission JSON, refusing oversized or non-JSON files."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such submission file")
    size = path.stat().st_size
    if size > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{path}: {size:,} bytes is over the {MAX_SUBMISSION_BYTES:,}-byte limit for a submission JSON")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmissionError(f"{path}: not a UTF-8 JSON document ({exc.__class__.__name__}: {exc})") from None
    try:
        return Submission.model_validate(raw)
    except ValidationError as exc:
        raise SubmissionError(f"{path}: {_one_line(exc)}") from None


def check_submission_rules(sub: Submission, where: str, min_seeds: int = MIN_SEEDS) -> None:
    """Rules that need no data: label use, seeds, distinct files."""
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


def check_predictions_file(path: Path, expected_sha256: str, seed: int) -> None:
    """Size, Parquet magic bytes and sha256 — before anything parses the file."""
    if not path.is_file():
        raise SubmissionError(f"seed {seed}: predictions file {path} does not exist")
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


def _summaries(per_seed: list[dict[str, float]]) -> dict[str, MetricSummary]:
    keys = sorted(set.intersection(*(set(d) for d in per_seed)))
    out = {}
    for k in keys:
        vals = [float(d[k]) for d in per_seed]
        arr = np.asarray(vals)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        out[k] = MetricSummary(mean=float(arr.mean()), std=std, per_seed=vals)
    return out




def entry_filename(method: str, dataset_version: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-") or "method"
    return f"{slug}--v{dataset_version}.json"


def verify_submission(
    submission_path: Path,
    release_path: Path,
    *,
    entries_dir: Path | None = None,
    min_seeds: int = MIN_SEEDS,
    regenerate: str | None = None,
) -> LeaderboardEntry:
    """Verify a submission against ``release_path`` by recomputation; write the entry when ``entries_dir``."""
    from genco_data.evaluate.evaluator import Evaluator  # the evaluator is heavier; import on use

    submission_path = Path(submission_path)
    sub = load_submission(submission_path)
    where = str(submission_path)
    check_submission_rules(sub, where, min_seeds=min_seeds)
    release = Release.open(release_path)
    if sub.dataset_version != release.manifest.dataset_version:
        raise SubmissionError(
            f"{where}: dataset_version {sub.dataset_version} but the release at {release_path} is {release.manifest.dataset_version}"
        )
    manifest_sha = sha256_file(release.root / MANIFEST_NAME)
    if sub.manifest_sha256 != manifest_sha:
        raise SubmissionError(f"{where}: manifest_sha256 {sub.manifest_sha256} does not match the release's {manifest_sha}")
    files = []
    for item in sorted(sub.predictions, key=lambda p: p.seed):
        path = submission_path.parent / item.path
        check_predictions_file(path, item.sha256, item.seed)
        files.append((item.seed, path))
    evaluator = Evaluator(release.root)
    per_seed_full, per_seed_flat = [], []
    for seed, path in files:
        result = evaluator.evaluate(path)
        per_seed_full.append({"seed": seed, **result.to_dict()})
        per_seed_flat.append(result.summary_metrics())
    metrics = _summaries(per_seed_flat)
    for key, value in sorted(sub.reported.items()):
        if key not in metrics:
            raise SubmissionError(f"{where}: reported metric {key!r} is not one the evaluator computes ({', '.join(sorted(metrics))})")
        diff = value - metrics[key].mean
        if not math.isfinite(value) or abs(diff) > REPORT_TOLERANCE:
            raise SubmissionError(
                f"{where}: reported {key} = {value:.6f} but recomputed mean is {metrics[key].mean:.6f} (difference {diff:+.6f})"
            )
    entry = LeaderboardEntry(
        submission=sub,
        verified_by=__version__,
        seeds=[s for s, _ in files],
        metrics=metrics,
        per_seed=per_seed_full,
        synthetic=release.world_dir is not None,
        regenerate=regenerate,
    )
    if entries_dir is not None:
        write_json_atomic(Path(entries_dir) / entry_filename(sub.method, sub.dataset_version), entry.model_dump(mode="json"))
    return entry


def load_entries(entries_dir: Path) -> list[LeaderboardEntry]:
    entries = []
    for path in sorted(Path(entries_dir).glob("*.json")):
        size = path.stat().st_size
        if size > MAX_ENTRY_BYTES:
            raise SubmissionError(f"{path}: {size:,} bytes is over the {MAX_ENTRY_BYTES:,}-byte limit for a leaderboard entry")
        try:
            entries.append(LeaderboardEntry.model_validate_json(path.read_bytes().decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise SubmissionError(f"{path}: not a UTF-8 JSON document ({exc.__class__.__name__}: {exc})") from None
        except ValidationError as exc:
            raise SubmissionError(f"{path}: not a verified entry ({_one_line(exc)})") from None
    return entries


def rank_metric(entries: list[LeaderboardEntry]) -> str:
    """The key a version's table is ranked by: on a synthetic release (every entry has the planted truth)
    the true headroom captured — the quantity the offline metrics only estimate, and at the default test
    size they estimate it too noisily to order methods; otherwise :data:`RANK_METRIC`."""
    if entries and all(e.synthetic and TRUTH_RANK_METRIC in e.metrics for e in entries):
        return TRUTH_RANK_METRIC
    return RANK_METRIC


def _fmt(m: MetricSummary | None, pct: bool = True) -> str:
    if m is None:
        return "–"
    if pct:
        return f"{100 * m.mean:+.2f} ± {100 * m.std:.2f}"
    return f"{m.mean:.3f} ± {m.std:.3f}"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def render_board(entries: list[LeaderboardEntry]) -> str:
    """The board as markdown: one table per dataset version (newest first), ranked by combination lift."""
    lines = [
        "# Leaderboard",
        "",
        "Every number below was **recomputed** from the submitted predictions by `genco leaderboard verify`",
        "(see [LEADERBOARD_RULES.md](LEADERBOARD_RULES.md)). Lifts are calibrated sCTR relative to the uniform test",
        "log's CTR, in %, mean ± std over seeds. *Headroom* = share of the oracle's true-CTR gain over uniform",
        "that the method captures (synthetic releases only; computed from the planted ground truth, not from the",
        "log). Synthetic versions are ranked by headroom, others by the mean of the six per-component lifts.",
        "",
    ]
    by_version: dict[str, list[LeaderboardEntry]] = {}
    for e in entries:
        by_version.setdefault(e.submission.dataset_version, []).append(e)
    if not by_version:
        lines.append("_No verified entries yet._")
    for version in sorted(by_version, key=_version_key, reverse=True):
        group = by_version[version]
        key = rank_metric(group)
        group.sort(key=lambda e: (-(e.metrics[key].mean if key in e.metrics else -math.inf), e.method))
        lines += [f"## Dataset version {version}", "", f"Ranked by `{key}` (mean over seeds).", ""]
        header = ["Rank", "Method", "Mean lift", "Combination"] + list(COMPONENTS) + ["Headroom", "#Params", "Hardware", "Seeds", "Code"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * len(header)) + "|")
        for rank, e in enumerate(group, 1):
            m = e.metrics
            row = [str(rank), e.method, _fmt(m.get(RANK_METRIC)), _fmt(m.get("combination_lift"))]
            row += [_fmt(m.get(f"{c}_lift")) for c in COMPONENTS]
            row.append(_fmt(m.get("headroom_captured")) if e.synthetic else "–")
            row += [f"{e.submission.n_parameters:,}", e.submission.hardware, str(len(e.seeds)), f"[code]({e.submission.code_url})"]
            lines.append("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_leaderboard(entries_dir: Path, out: Path) -> Path:
    """Render ``entries_dir/*.json`` into ``out`` (deterministic; written atomically)."""
    text = render_board(load_entries(entries_dir))
    out = Path(out)
    write_text_atomic(out, text)
    return out


__all__ = [
    "MIN_SEEDS",
    "RANK_METRIC",
    "TRUTH_RANK_METRIC",
    "rank_metric",
    "MAX_SUBMISSION_BYTES",
    "MAX_PREDICTIONS_BYTES",
    "MAX_ENTRY_BYTES",
    "load_submission",
    "check_submission_rules",
    "check_predictions_file",
    "verify_submission",
    "load_entries",
    "render_board",
    "render_leaderboard",
    "entry_filename",
    "sha256_file",
]
