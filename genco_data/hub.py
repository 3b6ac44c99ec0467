"""Publish a release to the Hugging Face Hub and pull one back — the only module that talks to the Hub.

Everything goes through an ``HfApi``-shaped object passed in (``api=``), so tests use an on-disk stand-in
(``tests/hub_standin.py``) and the CLI uses ``huggingface_hub.HfApi()`` (:func:`_default_api`).
Authentication is huggingface_hub's own: ``HF_TOKEN`` or ``hf auth login``. This module never passes,
prints, logs or writes a token; error messages from the Hub are reduced to one line with anything that
looks like a token replaced by ``***``.

**Publish** (:func:`publish`), in order — nothing is uploaded unless every step before it passed:

1. ``verify_release`` (checksums, row counts, schema, format version): a release that fails is refused.
2. The plan: exactly the files the manifest lists — ``README.md``, ``data/``, ``figures/`` — plus
   ``manifest.json`` itself, each a regular file inside the release with its size and sha256 (never
   ``rejects/``, never a hidden or unlisted file: ``verify_release`` refused those already). ``world/`` (the
   ground truth) stays with the maintainer unless ``include_world``: the published manifest still pins its
   sha256, so the truth can be checked when it is handed over. The card must name ``repo_id`` in every
   loading snippet (``load_dataset("…")``, ``genco pull …``); a card rendered for another repo or with the
   placeholder is refused with the command that fixes it. The tag (default ``v<dataset_version>``; a custom
   tag must start with it, e.g. ``v1.0.0-rc1``). ``dry_run`` stops here and contacts nobody.
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
:class:`~genco_data.errors.IntegrityError` naming the file. A release published without its world verifies
as a release whose ``world/`` is withheld.

**Quiet failures.** huggingface_hub logs every retry of a failing request as a warning (about ten lines when
the network is down); while this module calls it, its logger only lets errors through and its Python warnings
are silenced, so an offline or unauthenticated failure is the one line of :class:`PublishError`.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from genco_data.errors import GencoError, IntegrityError, PublishError
from genco_data.format.records import is_repo_id
from genco_data.fsutil import os_errors_as, read_json_object
from genco_data.release import (
    CARD_NAME,
    MAX_MANIFEST_BYTES,
    MANIFEST_NAME,
    PUBLISHED_TOP_LEVEL,
    WORLD_DIR,
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

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", re.ASCII)
#: The card's placeholder Hub id (``genco_data.card.card.REPO_PLACEHOLDER``; a test keeps them equal).
REPO_PLACEHOLDER = "ORG/NAME"
#: Where a card names a Hub repo: load_dataset("…"), genco pull …, repo_id="…", hf://datasets/…, huggingface.co/datasets/….
_CARD_REPO_MENTIONS = re.compile(
    r"""load_dataset\(\s*["']([^"'\s]+)["']|genco\s+pull\s+([^\s`]+)|repo_id\s*=\s*["']([^"'\s]+)["']"""
    r"""|hf://datasets/([^\s/"'`)]+/[^\s/"'`)@]+)|huggingface\.co/datasets/([^\s/"'`)]+/[^\s/"'`)]+)"""
)
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
    include_world: bool = False
    world_kept: int = 0  # world/ files the manifest pins that stay with the maintainer

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
    if not is_repo_id(repo_id):
        raise PublishError(f"repo must be ORG/NAME (ASCII letters, digits, '.', '_', '-'; no '--' or '..'; "
                           f"at most 96 characters), got {repo_id!r}")


def card_repo_ids(text: str) -> list[str]:
    """The Hub ids a card's snippets name (in order of appearance; local paths such as ``path/to/release`` are
    not ids), the placeholder ``ORG/NAME`` included wherever it appears."""
    found = []
    for m in _CARD_REPO_MENTIONS.finditer(text):
        value = next(g for g in m.groups() if g is not None)
        if is_repo_id(value):
            found.append(value)
    found += [REPO_PLACEHOLDER] * text.count(REPO_PLACEHOLDER)
    return found


def check_card_names_repo(release: Release, repo_id: str) -> None:
    """Refuse a card that would tell users to load another repo: every Hub id in its snippets must be
    ``repo_id`` (and there must be at least one)."""
    path = release.root / CARD_NAME
    text = path.read_text(encoding="utf-8", errors="replace")
    named = card_repo_ids(text)
    other = sorted({n for n in named if n != repo_id})
    if other or not named:
        what = f"name {', '.join(other)}" if other else "name no Hub repo"
        raise PublishError(
            f"{path}: the card's loading snippets {what}, not {repo_id}; render the card for this repo first: "
            f"genco card {release.root} --repo {repo_id}"
        )


@contextlib.contextmanager
def _quiet_hub() -> Iterator[None]:
    """huggingface_hub's retry warnings and Python warnings silenced for the duration (its errors still raise)."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hub_logger.setLevel(level)


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
def _planned(root: Path, rel: str, sha: str | None) -> PlannedFile:
    """A file of the plan: a regular file inside the release (never a symlink: nothing outside travels)."""
    p = root / rel
    st = os.lstat(p)
    if not os.path.isfile(p) or os.path.islink(p) or not p.resolve().is_relative_to(root.resolve()):
        raise PublishError(f"{root}: {rel} is not a regular file inside the release; refused")
    return PlannedFile(rel, st.st_size, sha if sha is not None else sha256_file(p))


@os_errors_as(PublishError)
def plan_publish(release_path: str | Path, repo_id: str, tag: str | None = None, private: bool = False,
                 include_world: bool = False, progress: bool = False) -> PublishPlan:
    """Verify the release and list exactly what would be uploaded; touches nothing but reads."""
    _check_repo_id(repo_id)
    verify_release(release_path, progress=progress)  # refuse to publish a release that fails verification
    release = Release.open(release_path)
    version = release.manifest.dataset_version
    tag = f"v{version}" if tag is None else tag
    if not isinstance(tag, str) or not _TAG.fullmatch(tag) or not (
            tag == f"v{version}" or tag.startswith(f"v{version}-") or tag.startswith(f"v{version}+")):
        raise PublishError(f"tag {tag!r} does not name dataset_version {version}: use v{version} (or v{version}-SUFFIX)")
    if include_world and not release.world_files:
        raise PublishError(f"{release.root}: --include-world, but the release has no world/ (not a synthetic release)")
    if include_world and release.world_withheld:
        raise PublishError(f"{release.root}: --include-world, but world/ is not in this folder (its truth is withheld)")
    check_card_names_repo(release, repo_id)
    order = {top: i for i, top in enumerate(PUBLISHED)}
    listed = sorted(release.manifest.files, key=lambda f: (order.get(f.path.split("/", 1)[0], len(order)), f.path))
    kept = [f for f in listed if f.path.startswith(WORLD_DIR + "/")] if not include_world else []
    files = [_planned(release.root, CARD_NAME, next((f.sha256 for f in listed if f.path == CARD_NAME), None)),
             _planned(release.root, MANIFEST_NAME, None)]
    files += [_planned(release.root, f.path, f.sha256) for f in listed if f.path != CARD_NAME and f not in kept]
    plan = PublishPlan(repo_id, tag, version, private, files, include_world=include_world, world_kept=len(kept))
    if kept:
        plan.notes.append(
            f"{WORLD_DIR}/ ({len(kept)} files, the ground truth) stays with you: the published {MANIFEST_NAME} pins its "
            f"sha256; keep it to verify leaderboard entries (genco leaderboard verify --world PATH); --include-world publishes it"
        )
    return plan


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
    """Paths whose content at ``commit`` differs from the plan (missing, extra or other bytes). Every listed file
    is pinned by manifest.json, which is compared byte for byte; when it differs, the remote manifest's pins
    name the files that differ too."""
    remote = {p for p in api.list_repo_files(repo_id, revision=commit, repo_type=REPO_TYPE) if _is_published(p)}
    local = {f.path: f for f in plan.files}
    differ = sorted(set(local) ^ remote)
    with tempfile.TemporaryDirectory(prefix="genco-hub-") as tmp:
        for f in plan.files:
            if f.path in remote and f.path not in pinned:
                got = api.hf_hub_download(repo_id, f.path, repo_type=REPO_TYPE, revision=commit, local_dir=tmp)
                if sha256_file(Path(got)) != f.sha256:
                    differ.append(f.path)
                    if f.path == MANIFEST_NAME:
                        try:
                            files = read_json_object(got, PublishError, max_bytes=MAX_MANIFEST_BYTES).get("files", [])
                            pins = {e.get("path"): e.get("sha256") for e in files if isinstance(e, dict)}
                        except (PublishError, AttributeError, TypeError):
                            pins = {}
                        differ += [p for p, g in local.items() if p in pinned and p in pins and pins[p] != g.sha256]
    return sorted(set(differ), key=lambda p: (p != MANIFEST_NAME, p))  # the manifest first: it pins the rest


@os_errors_as(PublishError)
def publish(
    release_path: str | Path,
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    include_world: bool = False,
    api: Any = None,
    progress: bool = True,
) -> PublishPlan:
    """Verify ``release_path``, upload it to the dataset repo ``repo_id`` and tag the commit (see the module
    docstring for every step). ``dry_run`` returns the plan and contacts nobody. Raises
    :class:`PublishError` (refused or failed; one line, no secret) or the release's own errors."""
    release_path = Path(release_path)
    plan = plan_publish(release_path, repo_id, tag=tag, private=private, include_world=include_world, progress=progress)
    if dry_run:
        plan.notes.append("the Hub was not contacted: whether the repo and the tag exist is checked by the real publish")
        return plan
    api = api if api is not None else _default_api()
    pinned = {f.path for f in Release.open(release_path).manifest.files}
    step = "checking the tag"
    try:
        with _progress_bars(progress), _quiet_hub():
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
@os_errors_as(PublishError)
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
    above = next((q for q in out.absolute().parents if q.exists()), None)
    if not out.exists() and above is not None and not above.is_dir():
        raise PublishError(f"--out {out}: {above} is a file, not a folder; pull into a new folder")
    api = api if api is not None else _default_api()
    where = f"{repo_id}@{revision}"
    step = f"downloading {MANIFEST_NAME}"
    try:
        with _progress_bars(progress), _quiet_hub():
            with tempfile.TemporaryDirectory(prefix="genco-hub-") as tmp:
                mpath = api.hf_hub_download(repo_id, MANIFEST_NAME, repo_type=REPO_TYPE, revision=revision, local_dir=tmp)
                raw = read_json_object(mpath, IntegrityError, name=f"{where} {MANIFEST_NAME}", max_bytes=MAX_MANIFEST_BYTES)
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
        report = verify_release(out, progress=progress)
    except IntegrityError as exc:
        raise IntegrityError(f"pulled {where} does not match its manifest: {exc}") from None
    report = dict(report)
    report.update(repo_id=repo_id, revision=revision, out=str(out))
    return report


def _available_tags(api: Any, repo_id: str) -> str:
    try:
        with _quiet_hub():
            tags = sorted(t.name for t in api.list_repo_refs(repo_id, repo_type=REPO_TYPE).tags)
    except Exception:
        return ""
    return f" (tags: {', '.join(tags)})" if tags else " (it has no tags)"


__all__ = [
    "PublishPlan",
    "PlannedFile",
    "card_repo_ids",
    "check_card_names_repo",
    "REPO_PLACEHOLDER",
    "plan_publish",
    "publish",
    "pull",
    "PUBLISHED",
    "DELETE_PATTERNS",
    "PULL_PATTERNS",
    "REPO_TYPE",
]
