"""Verified entries on disk: their ids, reading them back, writing one without ever losing another.

An entry of method *M* on dataset version *V* lives at ``<entries>/<slug(M)>--v<V>.json``, where ``slug``
folds case and turns every run of characters outside ``[a-z0-9]`` into ``-`` (``"GenCO (ours)"`` ->
``genco-ours``). The slug is lossy on purpose (file names stay portable), so **ids are made collision-free by
refusal**: writing an entry whose file already holds *another* method (``GenCO`` after ``genco``, or two names
that differ only in non-ASCII letters) is refused with one line; re-verifying the *same* method replaces its
entry. Reading checks that each file's name is the id of what it holds, so a renamed or hand-made file is
refused too.

Writers hold the entries folder's writer lock (:func:`genco_data.locks.writer_lock`), taken by
:func:`genco_data.leaderboard.verify.verify_submission`: a second concurrent writer fails at once with one line.
"""
from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from genco_data.errors import SubmissionError
from genco_data.format.records import LeaderboardEntry
from genco_data.fsutil import parse_json, write_json_atomic
from genco_data.leaderboard.rules import MAX_ENTRY_BYTES, one_line, read_limited


def entry_id(method: str, dataset_version: str) -> str:
    """``<slug(method)>--v<dataset_version>`` (see the module docstring)."""
    slug = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-") or "method"
    return f"{slug}--v{dataset_version}"


def entry_filename(method: str, dataset_version: str) -> str:
    return entry_id(method, dataset_version) + ".json"


def check_entries_dir(entries_dir: Path, must_exist: bool) -> Path:
    """``entries_dir`` as a folder: refuse a file (or a symlink) in its place, and a missing folder when ``must_exist``."""
    entries_dir = Path(entries_dir)
    if entries_dir.is_symlink():
        raise SubmissionError(f"{entries_dir}: the entries folder is a symlink; give the folder itself")
    if entries_dir.exists() and not entries_dir.is_dir():
        raise SubmissionError(f"{entries_dir}: --entries must be a folder of verified entries, not a file")
    if must_exist and not entries_dir.is_dir():
        raise SubmissionError(f"{entries_dir}: no such entries folder (is --entries right?)")
    return entries_dir


def load_entry(path: Path) -> LeaderboardEntry:
    """One verified entry: a regular file under the size limit, strict JSON, a valid entry, named by its id."""
    path = Path(path)
    if path.is_symlink():
        raise SubmissionError(f"{path}: is a symlink; an entry is a regular file")
    data = read_limited(path, MAX_ENTRY_BYTES, "leaderboard entry")
    raw = parse_json(data, SubmissionError, path, invalid="not a UTF-8 JSON document")
    try:
        entry = LeaderboardEntry.model_validate(raw)
    except ValidationError as exc:
        raise SubmissionError(f"{path}: not a verified entry ({one_line(exc)})") from None
    want = entry_filename(entry.method, entry.submission.dataset_version)
    if path.name != want:
        raise SubmissionError(f"{path}: holds method {entry.method!r} of version {entry.submission.dataset_version}, whose "
                              f"entry file is {want}; entries are named by their id")
    return entry


def entry_paths(entries_dir: Path) -> list[Path]:
    """The entry files of ``entries_dir`` (``*.json``, hidden files aside), sorted; the folder must exist."""
    entries_dir = check_entries_dir(entries_dir, must_exist=True)
    return sorted(p for p in entries_dir.glob("*.json") if not p.name.startswith("."))


def load_entries(entries_dir: Path) -> list[LeaderboardEntry]:
    """Every verified entry of ``entries_dir`` (see :func:`load_entry`); a missing folder is refused."""
    return [load_entry(p) for p in entry_paths(entries_dir)]


def check_slot(entries_dir: Path, method: str, dataset_version: str) -> Path:
    """The entry file of ``method`` on ``dataset_version``; refuse when it holds another method (or something that
    is not a verified entry). Cheap: verification calls it before evaluating, writing again before writing."""
    entries_dir = check_entries_dir(entries_dir, must_exist=False)
    target = entries_dir / entry_filename(method, dataset_version)
    if target.exists() or target.is_symlink():
        try:
            existing = load_entry(target)
        except SubmissionError as exc:
            raise SubmissionError(f"{target} exists and is not a verified entry ({exc}); remove it or choose another method name") from None
        if existing.method != method:
            raise SubmissionError(
                f"{target}: entry id {target.stem} is taken by method {existing.method!r}, and {method!r} maps to the "
                "same id (ids fold case, non-ASCII letters and punctuation); choose a method name that differs in ASCII letters or digits"
            )
    return target


def write_entry(entries_dir: Path, entry: LeaderboardEntry) -> Path:
    """Write ``entry`` atomically under its id (:func:`check_slot` first). The caller holds the entries folder's lock."""
    target = check_slot(entries_dir, entry.method, entry.submission.dataset_version)
    try:
        write_json_atomic(target, entry.model_dump(mode="json"))
    except OSError as exc:
        raise SubmissionError(f"{target}: cannot write the entry ({exc.strerror or exc})") from None
    return target


__all__ = ["entry_id", "entry_filename", "check_entries_dir", "load_entry", "entry_paths", "load_entries", "check_slot", "write_entry"]
