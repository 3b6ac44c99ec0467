"""An on-disk stand-in for ``huggingface_hub.HfApi`` (the Hub is unreachable from here).

It implements the methods :mod:`genco_data.hub` calls with **exactly** huggingface_hub 2.x's signatures
(:func:`signature_mismatches` compares names, kinds and defaults; a test keeps it empty) and keeps blobs,
commits and refs in a folder::

    <root>/<repo_type>s/<org>__<name>/refs.json          {"branches": {"main": oid}, "tags": {...}, "private": bool}
    <root>/<repo_type>s/<org>__<name>/commits/<oid>.json {"parent", "message", "files": {path: sha256}}
    <root>/<repo_type>s/<org>__<name>/objects/<sha256>   file contents (content-addressed, like LFS / xet)

What it emulates of the real Hub and huggingface_hub 2.4:

* repos live per repo type (a dataset repo is not found with ``repo_type=None``); a new repo has an
  initial commit holding ``.gitattributes``; creating an existing repo / tag without ``exist_ok`` is an
  HTTP 409; missing repos, revisions and files raise the real error classes;
* ``upload_folder``: ``allow_patterns`` / ``ignore_patterns`` (+ huggingface_hub's default ignores) with
  its ``filter_repo_objects``; ``delete_patterns`` against the remote files (never ``.gitattributes``; not
  the files being uploaded); unchanged files are skipped and an upload that changes nothing creates no
  commit (returns the head); ``files_per_commit`` splits a big upload into several commits like the xet
  pipeline, deletions going with the first;
* ``fail_after_files = N`` makes the next upload die after storing N new blobs (a network failure): the
  commits made before stay, the pending one is never created, stored blobs stay (content-addressed), and
  a rerun completes;
* ``hf_hub_download`` / ``snapshot_download`` copy files out (``local_dir``), so callers never touch the
  store; ``corrupt()`` flips bytes of a stored blob to test checksum verification.

Unsupported options (``create_pr``, ``run_as_future``, ``path_in_repo``, ``dry_run``, …) raise
``NotImplementedError`` so that a new use in genco_data.hub is noticed.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import CommitInfo, GitRefInfo, GitRefs, RepoUrl
from huggingface_hub.utils import filter_repo_objects

try:  # huggingface_hub's own default ignores (.git, .cache/huggingface)
    from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS
except ImportError:  # pragma: no cover
    DEFAULT_IGNORE_PATTERNS = [".git", ".git/*", "*/.git", "**/.git/**", ".cache/huggingface", ".cache/huggingface/*",
                               "*/.cache/huggingface", "**/.cache/huggingface/**"]

#: The HfApi methods the stand-in implements (and genco_data.hub may call).
METHODS = ("create_repo", "upload_folder", "create_tag", "list_repo_refs", "hf_hub_download", "snapshot_download", "list_repo_files")


class UploadInterrupted(ConnectionError):
    """What ``fail_after_files`` raises: a connection dying mid-upload."""


def _http_error(cls, what: str, status: int):
    request = httpx2.Request("GET", f"https://standin.invalid/{what}")
    return cls(f"{status} {what}", response=httpx2.Response(status, request=request))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalHub:
    """The stand-in. ``calls`` records the name of every HfApi method called, in order."""

    def __init__(self, root: Path, files_per_commit: int | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fail_after_files: int | None = None
        self.files_per_commit = files_per_commit
        self.calls: list[str] = []

    # -- storage helpers (not part of the HfApi surface) -------------------------------------------
    def _repo(self, repo_id: str, repo_type: str | None) -> Path:
        return self.root / f"{repo_type or 'model'}s" / repo_id.replace("/", "__")

    def _refs(self, repo_id: str, repo_type: str | None) -> dict:
        p = self._repo(repo_id, repo_type) / "refs.json"
        if not p.exists():
            raise _http_error(RepositoryNotFoundError, f"{repo_type or 'model'}s/{repo_id}", 404)
        return json.loads(p.read_text())

    def _write_refs(self, repo_id: str, repo_type: str | None, refs: dict) -> None:
        (self._repo(repo_id, repo_type) / "refs.json").write_text(json.dumps(refs, sort_keys=True))

    def _resolve(self, repo_id: str, repo_type: str | None, revision: str | None) -> str:
        refs = self._refs(repo_id, repo_type)
        revision = revision or "main"
        if revision in refs["tags"]:
            return refs["tags"][revision]
        if revision in refs["branches"]:
            return refs["branches"][revision]
        if (self._repo(repo_id, repo_type) / "commits" / f"{revision}.json").exists():
            return revision
        raise _http_error(RevisionNotFoundError, f"{repo_id}@{revision}", 404)

    def _tree(self, repo_id: str, repo_type: str | None, oid: str | None) -> dict[str, str]:
        if oid is None:
            return {}
        return json.loads((self._repo(repo_id, repo_type) / "commits" / f"{oid}.json").read_text())["files"]

    def _commit(self, repo_id: str, repo_type: str | None, branch: str, parent: str | None, files: dict, message: str) -> str:
        record = {"parent": parent, "message": message, "files": files}
        oid = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()
        (self._repo(repo_id, repo_type) / "commits" / f"{oid}.json").write_text(json.dumps(record, sort_keys=True))
        refs = self._refs(repo_id, repo_type)
        refs["branches"][branch] = oid
        self._write_refs(repo_id, repo_type, refs)
        return oid

    def _store(self, repo_id: str, repo_type: str | None, data: bytes) -> str:
        sha = _sha256(data)
        obj = self._repo(repo_id, repo_type) / "objects" / sha
        if not obj.exists():
            obj.write_bytes(data)
        return sha

    def _commit_info(self, repo_id: str, oid: str, message: str) -> CommitInfo:
        return CommitInfo(commit_url=f"https://standin.invalid/datasets/{repo_id}/commit/{oid}", commit_message=message,
                          commit_description="", oid=oid, _endpoint="https://standin.invalid")

    # -- helpers for tests -------------------------------------------------------------------------
    def tree(self, repo_id: str, revision: str | None = None, repo_type: str = "dataset") -> dict[str, str]:
        """``{path: sha256}`` of a revision."""
        return self._tree(repo_id, repo_type, self._resolve(repo_id, repo_type, revision))

    def commits(self, repo_id: str, repo_type: str = "dataset") -> int:
        return len(list((self._repo(repo_id, repo_type) / "commits").glob("*.json")))

    def tags(self, repo_id: str, repo_type: str = "dataset") -> dict[str, str]:
        return dict(self._refs(repo_id, repo_type)["tags"])

    def corrupt(self, repo_id: str, path: str, revision: str | None = None, repo_type: str = "dataset") -> None:
        """Flip the bytes of the stored blob of ``path`` (bit rot / a tampered object)."""
        obj = self._repo(repo_id, repo_type) / "objects" / self.tree(repo_id, revision, repo_type)[path]
        data = bytearray(obj.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 8] = bytes(b ^ 0xFF for b in data[mid:mid + 8])
        obj.write_bytes(bytes(data))

    def upload_raw(self, repo_id: str, files: dict[str, bytes], tag: str | None = None, repo_type: str = "dataset") -> str:
        """Commit ``files`` as they are (no checks; for tests that need a broken remote), optionally tagged."""
        if not (self._repo(repo_id, repo_type) / "refs.json").exists():
            self.create_repo(repo_id, repo_type=repo_type)
        head = self._refs(repo_id, repo_type)["branches"]["main"]
        tree = dict(self._tree(repo_id, repo_type, head))
        tree.update({p: self._store(repo_id, repo_type, d) for p, d in files.items()})
        oid = self._commit(repo_id, repo_type, "main", head, tree, "raw upload")
        if tag is not None:
            refs = self._refs(repo_id, repo_type)
            refs["tags"][tag] = oid
            self._write_refs(repo_id, repo_type, refs)
        self.calls.clear()
        return oid

    # -- the HfApi surface (signatures equal to huggingface_hub 2.x) ------------------------------
    def create_repo(self, repo_id, *, token=None, private=None, visibility=None, repo_type=None, exist_ok=False,
                    resource_group_id=None, region=None, space_sdk=None, space_hardware=None, space_sleep_time=None,
                    space_secrets=None, space_variables=None, space_volumes=None, space_template=None):
        self.calls.append("create_repo")
        repo = self._repo(repo_id, repo_type)
        if (repo / "refs.json").exists():
            if not exist_ok:
                raise _http_error(HfHubHTTPError, f"{repo_id} already exists", 409)
        else:
            (repo / "objects").mkdir(parents=True)
            (repo / "commits").mkdir()
            self._write_refs(repo_id, repo_type, {"branches": {"main": None}, "tags": {}, "private": bool(private)})
            sha = self._store(repo_id, repo_type, b"*.parquet filter=lfs diff=lfs merge=lfs -text\n")
            self._commit(repo_id, repo_type, "main", None, {".gitattributes": sha}, "initial commit")
        prefix = "" if repo_type in (None, "model") else f"{repo_type}s/"
        return RepoUrl(f"https://standin.invalid/{prefix}{repo_id}", endpoint="https://standin.invalid")

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, commit_message=None, commit_description=None,
                      token=None, repo_type=None, revision=None, create_pr=None, parent_commit=None,
                      allow_patterns=None, ignore_patterns=None, delete_patterns=None, run_as_future=False):
        self.calls.append("upload_folder")
        if path_in_repo not in (None, "", ".") or create_pr or parent_commit is not None or run_as_future:
            raise NotImplementedError("stand-in upload_folder: path_in_repo/create_pr/parent_commit/run_as_future")
        message = commit_message or "Upload folder using huggingface_hub"
        branch = revision or "main"
        refs = self._refs(repo_id, repo_type)
        head = refs["branches"].get(branch)
        tree = dict(self._tree(repo_id, repo_type, head))
        folder = Path(folder_path)
        local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        ignores = ([ignore_patterns] if isinstance(ignore_patterns, str) else list(ignore_patterns or [])) + DEFAULT_IGNORE_PATTERNS
        chosen = list(filter_repo_objects(local, allow_patterns=allow_patterns, ignore_patterns=ignores))
        deletes = []
        if delete_patterns:
            deletes = [p for p in filter_repo_objects(list(tree), allow_patterns=delete_patterns)
                       if p != ".gitattributes" and p not in chosen]
        adds = [rel for rel in chosen if tree.get(rel) != _sha256((folder / rel).read_bytes())]
        if not adds and not deletes:  # huggingface_hub: "No files have been modified since last commit"
            return self._commit_info(repo_id, head, message)
        size = self.files_per_commit or max(len(adds), 1)
        batches = [adds[i:i + size] for i in range(0, len(adds), size)] or [[]]
        stored = 0
        for i, batch in enumerate(batches):
            new_tree = dict(tree)
            if i == 0:
                for p in deletes:
                    del new_tree[p]
            for rel in batch:
                if self.fail_after_files is not None and stored >= self.fail_after_files:
                    self.fail_after_files = None
                    raise UploadInterrupted(f"connection reset by peer after {stored} files")
                new_tree[rel] = self._store(repo_id, repo_type, (folder / rel).read_bytes())
                stored += 1
            head = self._commit(repo_id, repo_type, branch, head, new_tree, message)
            tree = new_tree
        return self._commit_info(repo_id, head, message)

    def create_tag(self, repo_id, *, tag, tag_message=None, revision=None, token=None, repo_type=None, exist_ok=False):
        self.calls.append("create_tag")
        refs = self._refs(repo_id, repo_type)
        if tag in refs["tags"]:
            if exist_ok:
                return None
            raise _http_error(HfHubHTTPError, f"tag {tag} already exists", 409)
        target = self._resolve(repo_id, repo_type, revision)
        refs = self._refs(repo_id, repo_type)
        refs["tags"][tag] = target
        self._write_refs(repo_id, repo_type, refs)
        return None

    def list_repo_refs(self, repo_id, *, repo_type=None, include_pull_requests=False, token=None):
        self.calls.append("list_repo_refs")
        refs = self._refs(repo_id, repo_type)
        return GitRefs(
            branches=[GitRefInfo(name=k, ref=f"refs/heads/{k}", target_commit=v) for k, v in sorted(refs["branches"].items()) if v],
            converts=[],
            tags=[GitRefInfo(name=k, ref=f"refs/tags/{k}", target_commit=v) for k, v in sorted(refs["tags"].items())],
            pull_requests=[] if include_pull_requests else None,
        )

    def hf_hub_download(self, repo_id, filename, *, subfolder=None, repo_type=None, revision=None, cache_dir=None,
                        local_dir=None, force_download=False, etag_timeout=10, token=None, local_files_only=False,
                        tqdm_class=None, dry_run=False):
        self.calls.append("hf_hub_download")
        if subfolder or dry_run or local_files_only:
            raise NotImplementedError("stand-in hf_hub_download: subfolder/dry_run/local_files_only")
        oid = self._resolve(repo_id, repo_type, revision)
        tree = self._tree(repo_id, repo_type, oid)
        if filename not in tree:
            raise _http_error(RemoteEntryNotFoundError, f"{repo_id}@{revision}/{filename}", 404)
        base = Path(local_dir) if local_dir is not None else Path(cache_dir or self.root / "cache") / oid
        dest = base / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._repo(repo_id, repo_type) / "objects" / tree[filename], dest)
        return str(dest)

    def snapshot_download(self, repo_id, *, repo_type=None, revision=None, cache_dir=None, local_dir=None, etag_timeout=10,
                          force_download=False, token=None, local_files_only=False, allow_patterns=None, ignore_patterns=None,
                          max_workers=8, tqdm_class=None, dry_run=False):
        self.calls.append("snapshot_download")
        if dry_run or local_files_only:
            raise NotImplementedError("stand-in snapshot_download: dry_run/local_files_only")
        oid = self._resolve(repo_id, repo_type, revision)
        tree = self._tree(repo_id, repo_type, oid)
        out = Path(local_dir) if local_dir is not None else Path(cache_dir or self.root / "cache") / f"snapshot-{oid}"
        for rel in filter_repo_objects(sorted(tree), allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._repo(repo_id, repo_type) / "objects" / tree[rel], dest)
        return str(out)

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, token=None):
        self.calls.append("list_repo_files")
        return sorted(self._tree(repo_id, repo_type, self._resolve(repo_id, repo_type, revision)))


def signature_mismatches() -> list[str]:
    """Where the stand-in's methods differ from the real HfApi's: parameter names, order, kinds, defaults."""
    bad = []
    for name in METHODS:
        real = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(HfApi, name)).parameters.values()]
        ours = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(LocalHub, name)).parameters.values()]
        if real != ours:
            missing = [r[0] for r in real if r not in ours]
            extra = [o[0] for o in ours if o not in real]
            bad.append(f"{name}: differs from HfApi (missing or changed {missing}, extra or changed {extra})")
    return bad


def hub_methods_used() -> set[str]:
    """Names of HfApi methods genco_data.hub calls on its ``api`` object (``api.<name>(``)."""
    import re

    import genco_data.hub as hub

    return set(re.findall(r"\bapi\.(\w+)\(", inspect.getsource(hub)))


__all__ = ["LocalHub", "UploadInterrupted", "signature_mismatches", "hub_methods_used", "METHODS"]
