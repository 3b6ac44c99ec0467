"""Publish a release to the Hugging Face Hub and pull one back — the only module that talks to the Hub.

Everything goes through an ``HfApi``-shaped object passed in (``api=``), so tests use an on-disk stand-in
(``tests/hub_standin.py``) and the CLI uses ``huggingface_hub.HfApi()`` (:func:`_default_api`).
Authentication is huggingface_hub's own: ``HF_TOKEN`` or ``hf auth login``. This module never passes,
prints, logs or writes a token; error messages from the Hub are reduced to one line with anything that
looks like a token replaced by ``***``.

**Publish** (:func:`publish`), in order — nothing is uploaded unless every step before it passed:

1. ``verify_release`` (checksums, row counts, schema, format version): a release that fails is refused.
2. The plan: exactly the files that travel — ``README.md``, ``manifest.json``, ``data/``, ``world/``,
   ``figures/`` (never ``rejects/``, never hidden files) with size and sha256; the tag (default
   ``v<dataset_version>``; a custom tag must start with it, e.g. ``v1.0.0-rc1``). ``dry_run`` stops here
   and contacts nobody.
3. Tags are **immutable**. When the tag exists: if the tagged commit holds exactly the planned files (same
   paths; ``manifest.json``, which pins every ``data/`` and ``world/`` sha256, byte-identical; the card and
   figures byte-identical) the publish is a no-op (``action="unchanged"``); otherwise it is refused,
   naming the differing files.
4. ``create_repo(exist_ok=True)`` (``private`` only applies when the repo is created), then one
   ``upload_folder`` with exactly the planned paths and ``delete_patterns`` for ``data/``, ``world/`` and
   ``figures/`` (remote files there that this version lacks — e.g. shards of a bigger older version — are
   removed). huggingface_hub's uploads are resumable: after an interruption, rerunning the same publish
   re-sends only what the Hub lacks. With ``hf_xet`` a big upload may land as several commits on ``main``;
   only the final one is tagged, so **a tag always names a complete release** (``main`` may be half-way
   while an upload runs — load by tag).
5. The files of the resulting commit are checked against the plan, then the tag is created on it.

**Pull** (:func:`pull`): ``manifest.json`` first — its ``format_version`` must be readable by this
genco-data (else the pull stops before downloading the data) — then the published files of the revision
into ``out``, then ``verify_release(out)``: every file against its manifest sha256; a mismatch is an
:class:`~genco_data.errors.IntegrityError` naming the file.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from genco_data.errors import GencoError, IntegrityError, PublishError
from genco_data.fsutil import read_json_object
from genco_data.release import (
    CARD_NAME,
    MANIFEST_NAME,
    PUBLISHED_TOP_LEVEL,
    Release,
    check_format_version,
    sha256_file,
    verify_release,
)

REPO_TYPE = "dataset"
#: Top-level files and folders a publish uploads and a pull downloads (rejects/ never travels).
PUBLISHED: tuple[str, ...] = PUBLISHED_TOP_LEVEL
#: Remote folders a new version replaces wholesale (their files absent from the new version are deleted).
REPLACED_DIRS: tuple[str, ...] = tuple(p for p in PUBLISHED if p not in (CARD_NAME, MANIFEST_NAME))
DELETE_PATTERNS = [f"{d}/**" for d in REPLACED_DIRS]
#: What a pull downloads (posix globs relative to the repo root).
PULL_PATTERNS = [p if p in (CARD_NAME, MANIFEST_NAME) else f"{p}/**" for p in PUBLISHED]

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
#: Things that look like credentials in a message from the Hub or the network stack.
_SECRET = re.compile(r"(hf_[A-Za-z0-9]{6,}|(?i:bearer)\s+\S+|(?i:token)=[^\s&]+)")


@dataclass(frozen=True)
class PlannedFile:
    path: str  # posix, relative to the release root = path in the repo
    bytes: int
    sha256: str


@dataclass
class PublishPlan:
    """What ``publish`` will do (``dry-run``) or did (``published`` / ``unchanged``). Contains no secret."""

    repo_id: str
    tag: str
    dataset_version: str
    private: bool
    files: list[PlannedFile]
    action: str = "dry-run"  # dry-run | published | unchanged
    commit: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        d["delete_patterns"] = list(DELETE_PATTERNS)
        return d

    def describe(self) -> str:
        head = {
            "dry-run": f"DRY RUN — nothing was touched. `genco publish` without --dry-run would publish {self.repo_id} tag {self.tag}:",
            "published": f"published {self.repo_id} tag {self.tag} (commit {self.commit})",
            "unchanged": f"{self.repo_id} tag {self.tag} already holds this release; nothing to do (commit {self.commit})",
        }[self.action]
        lines = [head]
        if self.action == "dry-run":
            lines += [
                f"  1. create the dataset repo {self.repo_id} if it does not exist (private={self.private})",
                f"  2. refuse if tag {self.tag} exists with other content; stop (no-op) if it holds exactly these files",
                f"  3. upload {len(self.files)} files, {self.total_bytes:,} bytes, in one upload_folder call; delete "
                f"remote files under {', '.join(d + '/' for d in REPLACED_DIRS)} that are not listed",
                f"  4. tag the resulting commit {self.tag}",
                "  sha256                                                            bytes  path",
            ]
        else:
            lines.append(f"  dataset_version {self.dataset_version}, {len(self.files)} files, {self.total_bytes:,} bytes")
        lines += [f"  {f.sha256}  {f.bytes:>14,}  {f.path}" for f in self.files]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ helpers
def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise PublishError(f"repo must be ORG/NAME (letters, digits, '.', '_', '-'), got {repo_id!r}")


def _redact(text: str) -> str:
    """``text`` with token-looking substrings — and the values of HF_TOKEN / HUGGING_FACE_HUB_TOKEN, read
    here only to scrub them — replaced by ``***``."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _SECRET.sub("***", text)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    status = getattr(getattr(exc, "response", None), "status_code", None)
    head = type(exc).__name__ + (f" (HTTP {status})" if isinstance(status, int) else "")
    return _redact(f"{head}: {text}" if text else head)


def _hint(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return " — check your credentials: `hf auth login` or HF_TOKEN with write access to the repo"
    return ""


def _is(exc: BaseException, name: str) -> bool:
    """isinstance by class name along the MRO (huggingface_hub's error classes, without importing them here)."""
    return any(k.__name__ == name for k in type(exc).__mro__)


def _default_api():
    from huggingface_hub import HfApi

    return HfApi()  # credentials resolved by huggingface_hub (HF_TOKEN, then the `hf auth login` cache)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """huggingface_hub's progress bars on or off for the duration, restored afterwards."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not enabled and not was_disabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def _is_published(path: str) -> bool:
    top = path.split("/", 1)[0]
    return path in (CARD_NAME, MANIFEST_NAME) or (top in REPLACED_DIRS and "/" in path)


# --------------------------------------------------------------------------------------------- plan
def plan_publish(release_path: str | Path, repo_id: str, tag: str | None = None, private: bool = False) -> PublishPlan:
    """Verify the release and list exactly what would be uploaded; touches nothing but reads."""
    _check_repo_id(repo_id)
    verify_release(release_path)  # refuse to publish a release that fails verification
    release = Release.open(release_path)
    version = release.manifest.dataset_version
    tag = f"v{version}" if tag is None else tag
    if not _TAG.match(tag) or not (tag == f"v{version}" or tag.startswith(f"v{version}-") or tag.startswith(f"v{version}+")):
        raise PublishError(f"tag {tag!r} does not name dataset_version {version}: use v{version} (or v{version}-SUFFIX)")
    listed = {f.path: f for f in release.manifest.files}
    files = []
    for top in PUBLISHED:
        p = release.root / top
        if p.is_file():
            paths = [p]
        elif p.is_dir():
            paths = sorted(q for q in p.rglob("*") if q.is_file())
        else:
            paths = []
        for q in paths:
            rel = q.relative_to(release.root).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            entry = listed.get(rel)
            sha = entry.sha256 if entry is not None else sha256_file(q)  # listed files were just verified
            files.append(PlannedFile(rel, q.stat().st_size, sha))
    missing = [n for n in (CARD_NAME, MANIFEST_NAME) if n not in {f.path for f in files}]
    if missing:  # pragma: no cover - verify_release requires both
        raise PublishError(f"{release.root}: missing {', '.join(missing)}")
    return PublishPlan(repo_id, tag, version, private, files)


# ------------------------------------------------------------------------------------------ publish
def _tag_target(api: Any, repo_id: str, tag: str) -> str | None:
    """Commit the tag points at; None when the tag or the repo does not exist."""
    try:
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    except Exception as exc:
        if _is(exc, "RepositoryNotFoundError"):
            return None
        raise
    for ref in refs.tags:
        if ref.name == tag:
            return ref.target_commit
    return None


def _remote_differences(api: Any, repo_id: str, commit: str, plan: PublishPlan, pinned: set[str]) -> list[str]:
    """Paths whose content at ``commit`` differs from the plan (missing, extra or other bytes)."""
    remote = {p for p in api.list_repo_files(repo_id, revision=commit, repo_type=REPO_TYPE) if _is_published(p)}
    local = {f.path: f for f in plan.files}
    differ = sorted(set(local) ^ remote)
    with tempfile.TemporaryDirectory(prefix="genco-hub-") as tmp:
        for f in plan.files:
            # data/ and world/ are pinned by manifest.json (compared here byte for byte); the rest is compared itself
            if f.path in remote and f.path not in pinned:
                got = api.hf_hub_download(repo_id, f.path, repo_type=REPO_TYPE, revision=commit, local_dir=tmp)
                if sha256_file(Path(got)) != f.sha256:
                    differ.append(f.path)
    return sorted(set(differ))


def publish(
    release_path: str | Path,
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    api: Any = None,
    progress: bool = True,
) -> PublishPlan:
    """Verify ``release_path``, upload it to the dataset repo ``repo_id`` and tag the commit (see the module
    docstring for every step). ``dry_run`` returns the plan and contacts nobody. Raises
    :class:`PublishError` (refused or failed; one line, no secret) or the release's own errors."""
    release_path = Path(release_path)
    plan = plan_publish(release_path, repo_id, tag=tag, private=private)
    if dry_run:
        plan.notes.append("the Hub was not contacted: whether the repo and the tag exist is checked by the real publish")
        return plan
    api = api if api is not None else _default_api()
    pinned = {f.path for f in Release.open(release_path).manifest.files}
    step = "checking the tag"
    try:
        with _progress_bars(progress):
            existing = _tag_target(api, repo_id, plan.tag)
            if existing is not None:
                step = f"comparing tag {plan.tag}"
                differ = _remote_differences(api, repo_id, existing, plan, pinned)
                if differ:
                    shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
                    raise PublishError(
                        f"tag {plan.tag} of {repo_id} already points at commit {existing} with different content "
                        f"({shown}); tags are immutable: build the release under a new version "
                        f"(genco build ... --version X.Y.Z) and publish that"
                    )
                plan.action, plan.commit = "unchanged", existing
                return plan
            step = "creating the repo"
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
            step = "uploading"
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(release_path),
                repo_type=REPO_TYPE,
                allow_patterns=[glob.escape(f.path) for f in plan.files],  # exactly the plan, nothing else
                delete_patterns=list(DELETE_PATTERNS),
                commit_message=f"genco-data release {plan.dataset_version} ({plan.tag})",
            )
            commit = info.oid
            step = "checking the upload"
            remote = {p for p in api.list_repo_files(repo_id, revision=commit, repo_type=REPO_TYPE) if _is_published(p)}
            if remote != {f.path for f in plan.files}:
                odd = sorted(remote ^ {f.path for f in plan.files})
                raise PublishError(
                    f"after the upload, commit {commit} of {repo_id} does not hold exactly the release "
                    f"({', '.join(odd[:5])}); nothing was tagged — rerun the publish"
                )
            step = f"creating tag {plan.tag}"
            api.create_tag(repo_id, tag=plan.tag, revision=commit, repo_type=REPO_TYPE, tag_message=f"dataset version {plan.dataset_version}")
    except GencoError:
        raise
    except Exception as exc:  # network / auth / server errors -> one line, secrets scrubbed
        raise PublishError(
            f"publishing {repo_id} failed while {step}: {_one_line(exc)}{_hint(exc)}; "
            "rerun the same command to resume (uploaded data is not sent twice)"
        ) from None
    plan.action, plan.commit = "published", commit
    return plan


# --------------------------------------------------------------------------------------------- pull
def pull(repo_id: str, *, revision: str, out: str | Path, api: Any = None, progress: bool = True) -> dict[str, Any]:
    """Download ``repo_id`` at ``revision`` (a tag such as ``v1.0.0``) into ``out`` and verify every file
    against its manifest. ``out`` must be new, empty, or an earlier pull (a release folder: resumed).
    Returns ``verify_release``'s report plus ``repo_id``, ``revision``, ``out``."""
    _check_repo_id(repo_id)
    if not revision:
        raise PublishError("--revision is required (a version tag such as v1.0.0)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).is_file())):
        raise PublishError(f"--out {out} exists and is not an empty folder nor a release; pull into a new folder")
    api = api if api is not None else _default_api()
    where = f"{repo_id}@{revision}"
    step = f"downloading {MANIFEST_NAME}"
    try:
        with _progress_bars(progress):
            with tempfile.TemporaryDirectory(prefix="genco-hub-") as tmp:
                mpath = api.hf_hub_download(repo_id, MANIFEST_NAME, repo_type=REPO_TYPE, revision=revision, local_dir=tmp)
                raw = read_json_object(mpath, IntegrityError, name=f"{where} {MANIFEST_NAME}")
            check_format_version(raw.get("format_version", "?"), f"{where} {MANIFEST_NAME}")
            step = "downloading the release"
            api.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=revision, local_dir=str(out), allow_patterns=list(PULL_PATTERNS))
    except GencoError:
        raise
    except Exception as exc:
        if _is(exc, "LocalEntryNotFoundError") or _is(exc, "OfflineModeIsEnabled"):
            raise PublishError(f"pulling {where}: the Hub cannot be reached (offline mode HF_HUB_OFFLINE=1, or no network)") from None
        if _is(exc, "GatedRepoError"):
            raise PublishError(f"{repo_id} is gated: accept its conditions on the Hub, then `hf auth login`") from None
        if _is(exc, "RepositoryNotFoundError"):
            raise PublishError(f"{repo_id}: no such dataset repo (or it is private: `hf auth login`)") from None
        if _is(exc, "RevisionNotFoundError"):
            raise PublishError(f"{repo_id} has no revision {revision!r}{_available_tags(api, repo_id)}") from None
        if _is(exc, "RemoteEntryNotFoundError") and step.endswith(MANIFEST_NAME):
            raise PublishError(f"{where} has no {MANIFEST_NAME}: not a genco-data release") from None
        raise PublishError(f"pulling {where} failed while {step}: {_one_line(exc)}{_hint(exc)}; rerun to resume") from None
    try:
        report = verify_release(out)
    except IntegrityError as exc:
        raise IntegrityError(f"pulled {where} does not match its manifest: {exc}") from None
    report = dict(report)
    report.update(repo_id=repo_id, revision=revision, out=str(out))
    return report


def _available_tags(api: Any, repo_id: str) -> str:
    try:
        tags = sorted(t.name for t in api.list_repo_refs(repo_id, repo_type=REPO_TYPE).tags)
    except Exception:
        return ""
    return f" (tags: {', '.join(tags)})" if tags else " (it has no tags)"


__all__ = [
    "PublishPlan",
    "PlannedFile",
    "plan_publish",
    "publish",
    "pull",
    "PUBLISHED",
    "DELETE_PATTERNS",
    "PULL_PATTERNS",
    "REPO_TYPE",
]
