"""Publish a release to the Hugging Face Hub and pull one back — the only module that talks to the Hub.

Everything goes through an ``HfApi``-shaped object passed in (``api=``), so tests use an on-disk stand-in
and the CLI uses ``huggingface_hub.HfApi()``. The token comes from the environment (``HF_TOKEN``) or
``hf auth login``; this module never reads, prints, logs or writes it.

Versions are git tags on the dataset repo and are **immutable**: publishing under a tag that already
points at the same content is a no-op; under a tag that points at other content it is refused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genco_data.errors import GencoError, IntegrityError, PublishError
from genco_data.release import CARD_NAME, DATA_DIR, MANIFEST_NAME, PUBLISHED_TOP_LEVEL, REJECTS_DIR, WORLD_DIR, Release, verify_release

REPO_TYPE = "dataset"
#: What a publish uploads (posix globs relative to the release); rejects/ never travels.
ALLOW_PATTERNS = [CARD_NAME, MANIFEST_NAME, f"{DATA_DIR}/**", f"{WORLD_DIR}/**"]
IGNORE_PATTERNS = [f"{REJECTS_DIR}/**", ".*", "**/.*"]
#: Remote files a new version replaces (shard counts may change between versions).
DELETE_PATTERNS = [f"{DATA_DIR}/**", f"{WORLD_DIR}/**"]


@dataclass(frozen=True)
class PlannedFile:
    path: str
    bytes: int
    sha256: str


@dataclass
class PublishPlan:
    """What ``publish`` will do (``dry_run``) or did. Contains no secret."""

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
        return d

    def describe(self) -> str:
        head = {
            "dry-run": f"DRY RUN — nothing touched. Would publish {self.repo_id} tag {self.tag}",
            "published": f"published {self.repo_id} tag {self.tag} (commit {self.commit})",
            "unchanged": f"{self.repo_id} tag {self.tag} already holds this release; nothing to do",
        }[self.action]
        lines = [head, f"  dataset_version {self.dataset_version}, private={self.private}, {len(self.files)} files, {self.total_bytes:,} bytes"]
        lines += [f"  {f.sha256}  {f.bytes:>12,}  {f.path}" for f in self.files]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def plan_publish(release_path: Path, repo_id: str, tag: str | None = None, private: bool = False) -> PublishPlan:
    """Verify the release and list exactly what would be uploaded (card, manifest, data/, world/)."""
    _check_repo_id(repo_id)
    verify_release(release_path)  # refuse to publish a release that fails verification
    release = Release.open(release_path)
    listed = {f.path: f for f in release.manifest.files}
    files = []
    for top in PUBLISHED_TOP_LEVEL:
        p = release.root / top
        paths = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else []
        for q in paths:
            rel = q.relative_to(release.root).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            entry = listed.get(rel)
            sha = entry.sha256 if entry is not None else _sha256(q)  # data files were just verified
            files.append(PlannedFile(rel, q.stat().st_size, sha))
    tag = tag or f"v{release.manifest.dataset_version}"
    return PublishPlan(repo_id, tag, release.manifest.dataset_version, private, files)


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise PublishError(f"--repo must be ORG/NAME, got {repo_id!r}")


def _default_api():
    from huggingface_hub import HfApi

    return HfApi()  # token resolved by huggingface_hub from HF_TOKEN / the login cache


def _tag_target(api, repo_id: str, tag: str) -> str | None:
    """Commit the tag points at, or None when the tag (or the repo) does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    except RepositoryNotFoundError:
        return None
    for ref in refs.tags:
        if ref.name == tag:
            return ref.target_commit
    return None


def _remote_manifest_sha(api, repo_id: str, revision: str) -> str | None:
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = api.hf_hub_download(repo_id, MANIFEST_NAME, repo_type=REPO_TYPE, revision=revision)
    except EntryNotFoundError:
        return None
    return _sha256(Path(path))


def publish(
    release_path: Path,
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    api: Any = None,
) -> PublishPlan:
    """Verify ``release_path``, upload card + manifest + data/ + world/ to ``repo_id`` and tag the commit.

    ``dry_run`` only plans: it contacts nobody. A tag is immutable: when it already exists, the publish is a
    no-op if the tagged manifest is byte-identical to ours (the manifest pins every data file's sha256), and
    is refused otherwise.
    """
    plan = plan_publish(Path(release_path), repo_id, tag=tag, private=private)
    if dry_run:
        plan.notes.append("the Hub was not contacted; the tag's existence is checked on a real publish")
        return plan
    api = api if api is not None else _default_api()
    manifest_sha = next(f.sha256 for f in plan.files if f.path == MANIFEST_NAME)
    try:
        existing = _tag_target(api, repo_id, plan.tag)
        if existing is not None:
            remote = _remote_manifest_sha(api, repo_id, existing)
            if remote != manifest_sha:
                raise PublishError(
                    f"tag {plan.tag} of {repo_id} already points at commit {existing} with different content "
                    f"(manifest sha256 {remote} != {manifest_sha}); tags are immutable: bump the dataset version"
                )
            plan.action, plan.commit = "unchanged", existing
            return plan
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(release_path),
            repo_type=REPO_TYPE,
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=IGNORE_PATTERNS,
            delete_patterns=DELETE_PATTERNS,
            commit_message=f"genco-data release {plan.dataset_version}",
        )
        commit = getattr(info, "oid", None)
        api.create_tag(repo_id, tag=plan.tag, revision=commit, repo_type=REPO_TYPE, tag_message=f"dataset version {plan.dataset_version}")
    except GencoError:
        raise
    except Exception as exc:  # network / auth / server errors -> one line, token never included
        raise PublishError(f"publishing {repo_id} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    plan.action, plan.commit = "published", commit
    return plan


def pull(repo_id: str, *, revision: str, out: Path, api: Any = None) -> dict[str, Any]:
    """Download ``repo_id`` at ``revision`` (a tag) into ``out`` and verify every file against its manifest."""
    _check_repo_id(repo_id)
    api = api if api is not None else _default_api()
    out = Path(out)
    try:
        api.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=revision, local_dir=str(out))
    except Exception as exc:
        raise PublishError(f"pulling {repo_id}@{revision} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    try:
        report = verify_release(out)
    except IntegrityError as exc:
        raise IntegrityError(f"pulled {repo_id}@{revision} does not match its manifest: {exc}") from None
    report = dict(report)
    report.update(repo_id=repo_id, revision=revision, out=str(out))
    return report


__all__ = ["PublishPlan", "PlannedFile", "plan_publish", "publish", "pull", "ALLOW_PATTERNS", "IGNORE_PATTERNS"]
