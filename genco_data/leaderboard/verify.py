"""Verify a submission by recomputation, never by trust, and write its entry.

``verify_submission(submission.json, release)`` checks the submission (:mod:`~genco_data.leaderboard.rules`),
the release it names (dataset version, ``manifest.json`` sha256), every predictions file (size, magic bytes,
sha256), then **recomputes every metric** per seed with :class:`genco_data.evaluate.evaluator.Evaluator`;
self-reported numbers, when present, must agree within ``REPORT_TOLERANCE``.

**The truth is the maintainer's.** A synthetic release is published without its ``world/`` (participants get
the logs); its manifest pins the world's sha256. Its entries are ranked by the true headroom, so verifying one
needs the world: ``world=PATH`` (``genco leaderboard verify --world PATH``), checked against the pins
(:func:`genco_data.release.check_world`), or the release's own ``world/`` when it is there. Without it the
verification is refused — never ranked by a truth it does not have. A raw release (no world pinned) is ranked
by calibrated sCTR and takes no world.

With ``entries_dir`` the entry is written (:func:`~genco_data.leaderboard.entries.write_entry`) while the
entries folder's writer lock is held for the whole verification.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

from genco_data import __version__
from genco_data.errors import IntegrityError, SubmissionError
from genco_data.format.records import LeaderboardEntry
from genco_data.fsutil import os_errors_as, sha256_file
from genco_data.leaderboard.entries import check_entries_dir, check_slot, write_entry
from genco_data.leaderboard.rules import (
    MIN_SEEDS,
    REPORT_TOLERANCE,
    check_predictions_file,
    check_submission_rules,
    load_submission,
    summaries,
)
from genco_data.locks import writer_lock
from genco_data.release import MANIFEST_NAME, Release, check_world


def world_for(release: Release, world: str | Path | None) -> Any:
    """What the evaluator scores the truth with: None for a raw release; the checked world at ``world``; the
    release's own ``world/`` ("auto"); else refused (see the module docstring)."""
    if not release.world_files:
        if world is not None:
            raise SubmissionError(f"{release.root}: --world given, but the release pins no world (not a synthetic release)")
        return None
    if world is not None:
        try:
            folder = check_world(release, world)
        except IntegrityError as exc:
            raise SubmissionError(str(exc)) from None
        from genco_data.synth.world import World  # the simulator's loader (npz + json, never pickle)

        return World.load(folder)
    if release.world_dir is not None:
        return "auto"
    raise SubmissionError(
        f"{release.root}: a synthetic release whose ground truth ({release.root.name}/world/, pinned by {MANIFEST_NAME}) is "
        "not here; its entries are ranked by the truth, so pass the maintainer's copy: --world PATH"
    )


def evaluate_seeds(release: Release, world: Any, files: list[tuple[int, Path]]) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """Per seed: the evaluator's full result (``to_dict()`` with ``seed`` = the predictions' seed; the evaluation
    itself runs with the evaluator's default seed 0) and its summary metrics."""
    from genco_data.evaluate.evaluator import Evaluator  # heavier; imported on use

    evaluator = Evaluator(release.root) if world == "auto" else Evaluator(release.root, world=world)
    full, flat = [], []
    for seed, path in files:
        result = evaluator.evaluate(path)
        if world is not None and result.truth is None:
            raise SubmissionError(f"{release.root}: the truth could not be computed ({'; '.join(evaluator.notes) or 'no world'})")
        full.append({**result.to_dict(), "seed": seed})  # the predictions' seed (the evaluation itself uses seed 0)
        flat.append(result.summary_metrics())
    return full, flat


@os_errors_as(SubmissionError)
def verify_submission(
    submission_path: Path,
    release_path: Path,
    *,
    entries_dir: Path | None = None,
    min_seeds: int = MIN_SEEDS,
    regenerate: str | None = None,
    world: str | Path | None = None,
) -> LeaderboardEntry:
    """Verify a submission against ``release_path`` by recomputation; write the entry when ``entries_dir``.
    ``world``: the maintainer's world folder of a synthetic release whose ``world/`` is withheld."""
    submission_path = Path(submission_path)
    sub = load_submission(submission_path)
    where = str(submission_path)
    check_submission_rules(sub, where, min_seeds=min_seeds)
    lock: Any = contextlib.nullcontext()
    if entries_dir is not None:
        check_entries_dir(Path(entries_dir), must_exist=False)
        lock = writer_lock(Path(entries_dir), "genco leaderboard verify")
    with lock:
        if entries_dir is not None:
            check_slot(Path(entries_dir), sub.method, sub.dataset_version)  # a taken id is refused before any work
        release = Release.open(release_path)
        if sub.dataset_version != release.manifest.dataset_version:
            raise SubmissionError(
                f"{where}: dataset_version {sub.dataset_version} but the release at {release_path} is {release.manifest.dataset_version}"
            )
        manifest_sha = sha256_file(release.root / MANIFEST_NAME)
        if sub.manifest_sha256 != manifest_sha:
            raise SubmissionError(f"{where}: manifest_sha256 {sub.manifest_sha256} does not match the release's {manifest_sha}")
        truth = world_for(release, world)
        files = []
        for item in sorted(sub.predictions, key=lambda p: p.seed):
            path = submission_path.parent / item.path
            check_predictions_file(path, item.sha256, item.seed)
            files.append((item.seed, path))
        per_seed_full, per_seed_flat = evaluate_seeds(release, truth, files)
        metrics = summaries(per_seed_flat)
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
            synthetic=truth is not None,
            regenerate=regenerate,
        )
        if entries_dir is not None:
            write_entry(Path(entries_dir), entry)
    return entry


__all__ = ["verify_submission", "world_for", "evaluate_seeds"]
