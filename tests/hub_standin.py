"""An on-disk stand-in for ``huggingface_hub.HfApi`` (the Hub is unreachable from here).

It implements the methods genco_data.hub calls, with huggingface_hub 2.x's signatures, and keeps blobs,
commits and refs in a folder. ``fail_after_files=N`` makes the next ``upload_folder`` die after N blobs were
stored (as a network failure mid-upload would): the commit is not created, the stored blobs stay (like the
Hub's content-addressed storage), and a rerun completes.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import CommitInfo, GitRefInfo, GitRefs, RepoUrl
from huggingface_hub.utils import filter_repo_objects


class UploadInterrupted(ConnectionError):
    pass


def _not_found(cls, what: str):
    request = httpx2.Request("GET", f"https://standin.invalid/{what}")
    return cls(f"{what} not found", response=httpx2.Response(404, request=request))


class LocalHub:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fail_after_files: int | None = None
        self.calls: list[str] = []

    # -- storage helpers ---------------------------------------------------------------------
    def _repo(self, repo_id: str) -> Path:
        return self.root / repo_id.replace("/", "__")

    def _refs(self, repo_id: str) -> dict:
        p = self._repo(repo_id) / "refs.json"
        if not p.exists():
            raise _not_found(RepositoryNotFoundError, repo_id)
        return json.loads(p.read_text())

    def _write_refs(self, repo_id: str, refs: dict) -> None:
        (self._repo(repo_id) / "refs.json").write_text(json.dumps(refs, sort_keys=True))

    def _resolve(self, repo_id: str, revision: str | None) -> str:
        refs = self._refs(repo_id)
        revision = revision or "main"
        if revision in refs["tags"]:
            return refs["tags"][revision]
        if revision in refs["branches"]:
            return refs["branches"][revision]
        if (self._repo(repo_id) / "commits" / f"{revision}.json").exists():
            return revision
        raise _not_found(RevisionNotFoundError, f"{repo_id}@{revision}")

    def _tree(self, repo_id: str, oid: str | None) -> dict[str, str]:
        if oid is None:
            return {}
        return json.loads((self._repo(repo_id) / "commits" / f"{oid}.json").read_text())["files"]

    # -- the HfApi surface -------------------------------------------------------------------
    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **_):
        self.calls.append("create_repo")
        repo = self._repo(repo_id)
        if (repo / "refs.json").exists():
            if not exist_ok:
                raise FileExistsError(repo_id)
        else:
            (repo / "objects").mkdir(parents=True)
            (repo / "commits").mkdir()
            self._write_refs(repo_id, {"branches": {"main": None}, "tags": {}, "private": bool(private), "repo_type": repo_type})
        return RepoUrl(f"https://standin.invalid/datasets/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, commit_message=None, commit_description=None,
                      token=None, repo_type=None, revision=None, create_pr=None, parent_commit=None,
                      allow_patterns=None, ignore_patterns=None, delete_patterns=None, run_as_future=False):
        self.calls.append("upload_folder")
        refs = self._refs(repo_id)
        folder = Path(folder_path)
        local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        chosen = list(filter_repo_objects(local, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        parent = refs["branches"].get(revision or "main")
        tree = dict(self._tree(repo_id, parent))
        if delete_patterns:
            for path in list(filter_repo_objects(list(tree), allow_patterns=delete_patterns)):
                if path not in chosen:
                    del tree[path]
        objects = self._repo(repo_id) / "objects"
        for i, rel in enumerate(chosen):
            if self.fail_after_files is not None and i >= self.fail_after_files:
                self.fail_after_files = None
                raise UploadInterrupted(f"connection reset after {i} files")
            data = (folder / rel).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if not (objects / sha).exists():
                (objects / sha).write_bytes(data)
            tree[rel] = sha
        oid = hashlib.sha1(json.dumps({"parent": parent, "files": tree}, sort_keys=True).encode()).hexdigest()
        (self._repo(repo_id) / "commits" / f"{oid}.json").write_text(
            json.dumps({"parent": parent, "message": commit_message, "files": tree}, sort_keys=True)
        )
        refs["branches"][revision or "main"] = oid
        self._write_refs(repo_id, refs)
        return CommitInfo(commit_url=f"https://standin.invalid/{repo_id}/commit/{oid}", commit_message=commit_message or "",
                          commit_description="", oid=oid)

    def create_tag(self, repo_id, *, tag, tag_message=None, revision=None, token=None, repo_type=None, exist_ok=False):
        self.calls.append("create_tag")
        refs = self._refs(repo_id)
        if tag in refs["tags"] and not exist_ok:
            raise FileExistsError(f"tag {tag} exists")
        refs["tags"][tag] = self._resolve(repo_id, revision)
        self._write_refs(repo_id, refs)

    def list_repo_refs(self, repo_id, *, repo_type=None, include_pull_requests=False, token=None):
        self.calls.append("list_repo_refs")
        refs = self._refs(repo_id)
        return GitRefs(
            branches=[GitRefInfo(name=k, ref=f"refs/heads/{k}", target_commit=v) for k, v in refs["branches"].items() if v],
            converts=[],
            tags=[GitRefInfo(name=k, ref=f"refs/tags/{k}", target_commit=v) for k, v in refs["tags"].items()],
        )

    def hf_hub_download(self, repo_id, filename, *, subfolder=None, repo_type=None, revision=None, cache_dir=None,
                        local_dir=None, force_download=False, etag_timeout=10, token=None, local_files_only=False, **_):
        self.calls.append("hf_hub_download")
        tree = self._tree(repo_id, self._resolve(repo_id, revision))
        if filename not in tree:
            raise _not_found(EntryNotFoundError, filename)
        return str(self._repo(repo_id) / "objects" / tree[filename])

    def snapshot_download(self, repo_id, *, repo_type=None, revision=None, cache_dir=None, local_dir=None, **_):
        self.calls.append("snapshot_download")
        tree = self._tree(repo_id, self._resolve(repo_id, revision))
        out = Path(local_dir)
        for rel, sha in tree.items():
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._repo(repo_id) / "objects" / sha, dest)
        return str(out)

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, token=None):
        return sorted(self._tree(repo_id, self._resolve(repo_id, revision)))


def signature_mismatches() -> list[str]:
    """Methods whose keyword names differ from the real HfApi's (the stand-in must not drift)."""
    bad = []
    for name in ("create_repo", "upload_folder", "create_tag", "list_repo_refs", "hf_hub_download", "snapshot_download", "list_repo_files"):
        real = inspect.signature(getattr(HfApi, name)).parameters
        ours = inspect.signature(getattr(LocalHub, name)).parameters
        for pname, p in ours.items():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or pname == "self":
                continue
            if pname not in real:
                bad.append(f"{name}({pname})")
    return bad
