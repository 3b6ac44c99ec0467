"""``genco leaderboard check``: re-verify every committed entry, so a hand edit never renders as verified.

For every entry of ``entries_dir`` (fast, no data needed — CI runs it on ``cards/leaderboard/``):

1. it reads as a verified entry (:func:`~genco_data.leaderboard.entries.load_entry`: size, strict JSON, schema,
   file name = its id) and its submission obeys the rules (seeds, distinct files; ``min_seeds``);
2. **per-seed hashes**: the seeds of the entry, of its per-seed results and of its submission's predictions
   (each with its sha256) are the same list; every per-seed result names the submission's dataset version
   and ``manifest.json`` sha256;
3. **means and stds against the per-seed values**: each metric's ``per_seed`` equals the number in the
   per-seed results (:func:`~genco_data.leaderboard.rules.summary_from_result`) and its mean and std (ddof=1)
   are recomputed from them; the metric set is exactly what those results give; truth metrics appear exactly
   when the entry is synthetic;
4. **recomputation where the predictions are present**: a ``submission.json`` found under ``submissions``
   (default ``<entries>/submissions/``) for the same method and version must equal the entry's submission,
   its predictions files must have the entry's sha256, and with ``release`` (the release the entry pins) every
   seed is re-evaluated and must give the entry's numbers (within 1e-9).

With ``board`` the rendered board must equal :func:`~genco_data.leaderboard.board.render_board` of the entries.
Every problem is collected; the check raises :class:`SubmissionError` with one line naming the first and
counting the others.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from genco_data.errors import GencoError, SubmissionError
from genco_data.format.records import LeaderboardEntry
from genco_data.fsutil import os_errors_as, sha256_file
from genco_data.leaderboard.board import render_board
from genco_data.leaderboard.entries import entry_paths, load_entry
from genco_data.leaderboard.rules import (
    MIN_SEEDS,
    TRUTH_METRICS,
    check_predictions_file,
    check_submission_rules,
    load_submission,
    seed_std,
    summary_from_result,
)
from genco_data.release import MANIFEST_NAME, Release

#: How far a recomputed or re-derived number may drift from the entry's (float round trips, summation order).
CHECK_TOLERANCE = 1e-9


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=CHECK_TOLERANCE, abs_tol=CHECK_TOLERANCE)


def check_entry_numbers(entry: LeaderboardEntry, min_seeds: int = MIN_SEEDS) -> None:
    """Steps 1–3 of the module docstring on one loaded entry; raises :class:`SubmissionError` (no path)."""
    sub = entry.submission
    check_submission_rules(sub, "its submission", min_seeds=min_seeds)
    seeds = sorted(p.seed for p in sub.predictions)
    if entry.seeds != seeds:
        raise SubmissionError(f"seeds {entry.seeds} differ from its submission's predictions (seeds {seeds})")
    if [d.get("seed") for d in entry.per_seed] != seeds:
        raise SubmissionError(f"per-seed results are for seeds {[d.get('seed') for d in entry.per_seed]}, not {seeds}")
    paths = {p.seed: p.path for p in sub.predictions}
    for d in entry.per_seed:
        label = str(d.get("predictions", ""))
        if label.replace("\\", "/").rsplit("/", 1)[-1] != paths[d["seed"]].rsplit("/", 1)[-1]:
            raise SubmissionError(f"seed {d['seed']}: per-seed result is of predictions {label!r}, not the submission's {paths[d['seed']]}")
        if d.get("manifest_sha256") != sub.manifest_sha256 or d.get("dataset_version") != sub.dataset_version:
            raise SubmissionError(f"seed {d.get('seed')}: per-seed result is for release {d.get('dataset_version')} "
                                  f"manifest {str(d.get('manifest_sha256'))[:12]}…, not the submission's")
        if (d.get("truth") is not None) != entry.synthetic:
            raise SubmissionError(f"seed {d.get('seed')}: synthetic={entry.synthetic} but the per-seed result "
                                  f"{'lacks' if entry.synthetic else 'has'} a truth")
    flat = [summary_from_result(d) for d in entry.per_seed]
    keys = set.intersection(*(set(f) for f in flat)) if flat else set()
    if set(entry.metrics) != keys:
        odd = sorted(set(entry.metrics) ^ keys)
        raise SubmissionError(f"metric {odd[0]} is {'not ' if odd[0] in entry.metrics else ''}in the per-seed results "
                              f"but {'is' if odd[0] in entry.metrics else 'is not'} in the entry's metrics")
    if not entry.synthetic and any(k in entry.metrics for k in TRUTH_METRICS):
        raise SubmissionError("truth metrics on an entry that is not synthetic")
    for key, m in sorted(entry.metrics.items()):
        values = [f[key] for f in flat]
        if len(m.per_seed) != len(values) or not all(_close(a, b) for a, b in zip(m.per_seed, values)):
            raise SubmissionError(f"{key}: per_seed {m.per_seed} differ from the per-seed results {values}")
        mean, std = sum(values) / len(values), seed_std(values)
        if not _close(m.mean, mean):
            raise SubmissionError(f"{key}: mean {m.mean!r} but its per-seed values average {mean!r}")
        if not _close(m.std, std):
            raise SubmissionError(f"{key}: std {m.std!r} but its per-seed values have std {std!r} (ddof=1)")


def find_submissions(folder: Path) -> dict[tuple[str, str], Path]:
    """``(method, dataset_version) -> submission.json`` of every readable submission under ``folder``
    (symlinks are not followed; an unreadable one is an error)."""
    found: dict[tuple[str, str], Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("submission.json")):
        if path.is_symlink() or any(p.is_symlink() for p in path.relative_to(folder).parents if str(p) != "."):
            raise SubmissionError(f"{path}: a symlink under the submissions folder; give the files themselves")
        sub = load_submission(path)
        key = (sub.method, sub.dataset_version)
        if key in found:
            raise SubmissionError(f"{path}: a second submission of {sub.method!r} v{sub.dataset_version} (the first: {found[key]})")
        found[key] = path
    return found


def _recompute(entry: LeaderboardEntry, sub_path: Path, release: Release | None, world: Any) -> str:
    from genco_data.leaderboard.verify import evaluate_seeds, world_for

    files = []
    for item in sorted(entry.submission.predictions, key=lambda p: p.seed):
        path = sub_path.parent / item.path
        check_predictions_file(path, item.sha256, item.seed)
        files.append((item.seed, path))
    if release is None:
        return "predictions present and their sha256 match (not re-evaluated: no --data)"
    if sha256_file(release.root / MANIFEST_NAME) != entry.submission.manifest_sha256:
        return f"predictions present and their sha256 match (not re-evaluated: {release.root} is not the release it pins)"
    _, flat = evaluate_seeds(release, world_for(release, world) if entry.synthetic else None, files)
    for seed, got, want in zip(entry.seeds, flat, (summary_from_result(d) for d in entry.per_seed)):
        for key in sorted(set(got) | set(want)):
            if key not in got or key not in want or not _close(got[key], want[key]):
                raise SubmissionError(f"seed {seed}: recomputed {key} = {got.get(key)!r}, the entry says {want.get(key)!r}")
    return "re-evaluated from its predictions: every number matches"


@os_errors_as(SubmissionError)
def check_entries(
    entries_dir: Path,
    *,
    board: Path | None = None,
    release_path: Path | None = None,
    submissions: Path | None = None,
    world: Path | None = None,
    min_seeds: int = MIN_SEEDS,
) -> dict[str, Any]:
    """Re-verify every entry of ``entries_dir`` (module docstring). Returns ``{entries: [{entry, method,
    version, seeds, checks}], board, problems: []}``; raises :class:`SubmissionError` when any check fails."""
    entries_dir = Path(entries_dir)
    paths = entry_paths(entries_dir)
    release = Release.open(release_path, verify=True) if release_path is not None else None
    subs_dir = Path(submissions) if submissions is not None else entries_dir / "submissions"
    problems: list[str] = []
    try:
        found = find_submissions(subs_dir)
    except GencoError as exc:
        problems.append(str(exc))
        found = {}
    report: list[dict[str, Any]] = []
    loaded: list[LeaderboardEntry] = []
    for path in paths:
        try:
            entry = load_entry(path)
            loaded.append(entry)
            check_entry_numbers(entry, min_seeds=min_seeds)
            checks = ["schema and id", "seeds and hashes", "means and stds"]
            sub_path = found.pop((entry.method, entry.submission.dataset_version), None)
            if sub_path is not None:
                if load_submission(sub_path) != entry.submission:
                    raise SubmissionError(f"{sub_path} differs from the submission the entry was verified from")
                checks.append(_recompute(entry, sub_path, release, world))
            report.append({"entry": str(path), "method": entry.method, "version": entry.submission.dataset_version,
                           "seeds": len(entry.seeds), "checks": checks})
        except GencoError as exc:
            msg = str(exc)
            problems.append(msg if msg.startswith(str(path)) else f"{path}: {msg}")
    for (method, version), sub_path in sorted(found.items()):
        problems.append(f"{sub_path}: a submission of {method!r} v{version} without a verified entry (run genco leaderboard verify)")
    board_state = None
    if board is not None:
        board = Path(board)
        if not board.is_file():
            problems.append(f"{board}: no board (run genco leaderboard render)")
        elif len(loaded) == len(paths):
            try:
                current = board.read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{board}: cannot read the board as UTF-8 text ({exc.__class__.__name__})")
            else:
                board_state = "up to date" if current == render_board(loaded) else "stale"
                if board_state == "stale":
                    problems.append(f"{board}: differs from the entries (run genco leaderboard render --entries {entries_dir} --out {board})")
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise SubmissionError(f"{problems[0]}{more}")
    return {"entries": report, "board": board_state, "problems": problems}


__all__ = ["check_entries", "check_entry_numbers", "find_submissions", "CHECK_TOLERANCE"]
