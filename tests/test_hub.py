"""genco_data.hub: publish / pull through an HfApi-shaped object — against the on-disk stand-in
(tests/hub_standin.py), plus one opt-in test against a real endpoint (``-m hub``, HF_ENDPOINT + HF_TOKEN).

Every refusal of issue 7 has a test here: a release that fails verification, a changed release under an
existing tag, another major format version (publish, pull, verify), a corrupted download, a bad tag or repo
id; and the promises: dry-run touches nothing, publishing twice is a no-op, an interrupted upload resumes,
``load_dataset`` on the tag returns the release's rows, the token never shows.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factories import TSD, make_impressions, set_cells, write_parquet, write_world
from genco_data import hub
from genco_data import BuildConfig, build_release
from genco_data.card.options import CardOptions
from genco_data.pipeline import render_release_card
from genco_data.cli import main
from genco_data.errors import BackwardCompatibilityError, ForwardCompatibilityError, IntegrityError, PublishError
from genco_data.release import Release, verify_release
from hub_standin import METHODS, LocalHub, hub_methods_used, signature_mismatches

ROOT = Path(__file__).resolve().parents[1]
REPO = "genco-org/creatives"
SECRET = "secret-value-5e1f"


def _build(src: Path, out: Path, version: str = "1.0.0", rows_per_shard: int = 500) -> Path:
    """A release whose card names REPO (what `genco card --repo REPO` renders; publish refuses any other card)."""
    build_release(BuildConfig(sources=[src], out=out, version=version, rows_per_shard=rows_per_shard, row_group_rows=250,
                              sample_rows=200), progress=False, card=CardOptions(repo_id=REPO))
    return out


def _source(folder: Path, seed: int) -> Path:
    table = make_impressions(2000, seed=seed)
    table = set_cells(table, "click", {3: 7, 5: 7})  # two bad rows -> rejects/ exists (and must never travel)
    write_parquet(table, folder / "raw" / "part-0.parquet")
    write_world(folder / "world", TSD)
    return folder


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return _source(tmp_path_factory.mktemp("src"), seed=21)


@pytest.fixture(scope="module")
def release(tmp_path_factory, src) -> Path:
    out = _build(src, tmp_path_factory.mktemp("rel") / "release")
    assert list((out / "rejects").glob("*.parquet"))
    return out


@pytest.fixture(scope="module")
def changed(tmp_path_factory) -> Path:
    """Other rows, same dataset version 1.0.0."""
    src = _source(tmp_path_factory.mktemp("src2"), seed=22)
    return _build(src, tmp_path_factory.mktemp("rel2") / "release")


@pytest.fixture
def api(tmp_path) -> LocalHub:
    return LocalHub(tmp_path / "hub")


@pytest.fixture
def cli_hub(tmp_path, monkeypatch) -> LocalHub:
    """The stand-in behind `genco publish` / `genco pull` (the CLI's only seam is hub._default_api)."""
    stand_in = LocalHub(tmp_path / "cli-hub")
    monkeypatch.setattr(hub, "_default_api", lambda: stand_in)
    return stand_in


def _published_paths(release: Path) -> set[str]:
    return {f.path for f in hub.plan_publish(release, REPO).files}


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(release: Path, split: str) -> list[dict]:
    files = Release.open(release).data_files("impressions", split)
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()


# --------------------------------------------------------------------------------------- the stand-in
def test_the_stand_in_has_the_real_signatures():
    assert signature_mismatches() == []
    assert hub_methods_used() <= set(METHODS), "genco_data.hub calls an HfApi method the stand-in lacks"


# -------------------------------------------------------------------------------------------- dry run
def test_dry_run_prints_the_exact_plan_and_touches_nothing(release, api):
    before = _snapshot(release)
    plan = hub.publish(release, REPO, dry_run=True, api=api)
    assert api.calls == [] and not (api.root / "datasets").exists()
    assert _snapshot(release) == before
    assert plan.action == "dry-run" and plan.tag == "v1.0.0" and plan.commit is None
    paths = [f.path for f in plan.files]
    assert paths[:2] == ["README.md", "manifest.json"]
    assert not any(p.startswith("rejects/") or "/." in p for p in paths)
    m = Release.open(release).manifest
    listed = {f.path for f in m.files}
    assert {"README.md", "figures/candidate_counts.png", "figures/ctr_by_day.png"} <= listed  # the card is listed
    assert set(paths) == {p for p in listed if not p.startswith("world/")} | {"manifest.json"}  # the truth stays here
    assert plan.world_kept == 2 and not plan.include_world
    text = plan.describe()
    assert "world/ (2 files, the ground truth) stays with you" in text
    assert text.startswith("DRY RUN — nothing was touched.") and "tag v1.0.0" in text
    for f in plan.files:
        assert re.search(rf"{f.sha256}\s+{f.bytes:,}\s+{re.escape(f.path)}$", text, re.M), f.path
    d = plan.to_dict()
    assert d["total_bytes"] == sum(f.bytes for f in plan.files) and d["delete_patterns"] == hub.DELETE_PATTERNS


# ------------------------------------------------------------------------------------------- publish
def test_publish_then_load_dataset_at_the_tag_gives_the_release_rows(release, api, tmp_path, monkeypatch):
    import datasets
    from huggingface_hub import constants

    plan = hub.publish(release, REPO, api=api, progress=False)
    assert plan.action == "published" and api.tags(REPO) == {"v1.0.0": plan.commit}
    tree = api.tree(REPO, "v1.0.0")
    assert set(tree) - {".gitattributes"} == _published_paths(release)
    for f in plan.files:
        assert tree[f.path] == f.sha256
    # what a user gets: the snapshot at the tag, loaded offline
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    local = Path(api.snapshot_download(REPO, repo_type="dataset", revision="v1.0.0", local_dir=str(tmp_path / "snap")))
    ds = datasets.load_dataset(str(local), "impressions", cache_dir=str(tmp_path / "cache"))
    for split in ("train", "test"):
        assert ds[split].to_list() == _rows(release, split)
    sample = datasets.load_dataset(str(local), "sample", cache_dir=str(tmp_path / "cache"))
    assert {s: sample[s].num_rows for s in ("train", "test")} == Release.open(release).manifest.splits["sample"]


def test_publishing_twice_is_a_no_op(release, api):
    first = hub.publish(release, REPO, api=api, progress=False)
    commits = api.commits(REPO)
    api.calls.clear()
    again = hub.publish(release, REPO, api=api, progress=False)
    assert again.action == "unchanged" and again.commit == first.commit
    assert "upload_folder" not in api.calls and "create_tag" not in api.calls and "create_repo" not in api.calls
    assert api.commits(REPO) == commits and api.tags(REPO) == {"v1.0.0": first.commit}
    assert "already holds this release" in again.describe()


def test_a_changed_release_under_an_existing_tag_is_refused(release, changed, api):
    first = hub.publish(release, REPO, api=api, progress=False)
    api.calls.clear()
    with pytest.raises(PublishError, match=r"tag v1\.0\.0 of genco-org/creatives already points at commit \w+ with different "
                                           r"content \(.*manifest\.json.*\); tags are immutable"):
        hub.publish(changed, REPO, api=api, progress=False)
    assert "upload_folder" not in api.calls and "create_tag" not in api.calls
    assert api.tags(REPO) == {"v1.0.0": first.commit} and api.tree(REPO, "main") == api.tree(REPO, "v1.0.0")


def test_a_changed_card_under_an_existing_tag_is_refused(release, api, tmp_path):
    hub.publish(release, REPO, api=api, progress=False)
    copy = tmp_path / "rel"
    shutil.copytree(release, copy)
    with open(copy / "README.md", "a", encoding="utf-8") as fh:
        fh.write("\nA late edit.\n")
    with pytest.raises(IntegrityError, match=r"README\.md: \d+ bytes, manifest\.json says"):  # the card is pinned
        hub.publish(copy, REPO, api=api, progress=False)
    render_release_card(copy, CardOptions(repo_id=REPO, license="cc-by-nc-4.0"))  # a re-render: listed again
    with pytest.raises(PublishError, match=r"different content \(manifest\.json, README\.md\)"):
        hub.publish(copy, REPO, api=api, progress=False)


@pytest.mark.parametrize("files_per_commit", [None, 2], ids=["one-commit", "xet-style-batches"])
def test_an_interrupted_upload_resumes_on_rerun(release, tmp_path, files_per_commit):
    api = LocalHub(tmp_path / "hub", files_per_commit=files_per_commit)
    api.fail_after_files = 5
    with pytest.raises(PublishError, match=r"failed while uploading: UploadInterrupted: connection reset by peer after 5 files; rerun"):
        hub.publish(release, REPO, api=api, progress=False)
    assert api.tags(REPO) == {}  # nothing tagged: a tag never names a half-upload
    partial = set(api.tree(REPO, "main")) - {".gitattributes"}
    assert len(partial) == (0 if files_per_commit is None else 4)
    plan = hub.publish(release, REPO, api=api, progress=False)
    assert plan.action == "published" and api.tags(REPO) == {"v1.0.0": plan.commit}
    assert set(api.tree(REPO, "v1.0.0")) - {".gitattributes"} == _published_paths(release)
    report = hub.pull(REPO, revision="v1.0.0", out=tmp_path / "pulled", api=api, progress=False)
    assert report["rows"] == sum(Release.open(release).manifest.splits["impressions"].values())


def test_a_failure_between_upload_and_tag_resumes_without_a_new_commit(release, api, monkeypatch):
    real = api.create_tag

    def failing(*a, **kw):
        raise ConnectionError("timed out")

    monkeypatch.setattr(api, "create_tag", failing)
    with pytest.raises(PublishError, match="while creating tag v1.0.0: ConnectionError: timed out"):
        hub.publish(release, REPO, api=api, progress=False)
    commits = api.commits(REPO)
    monkeypatch.setattr(api, "create_tag", real)
    plan = hub.publish(release, REPO, api=api, progress=False)
    assert plan.action == "published" and api.commits(REPO) == commits  # the upload was a no-op


def test_a_new_version_replaces_the_old_files_and_keeps_the_old_tag(release, src, api, tmp_path):
    v1 = hub.publish(release, REPO, api=api, progress=False)
    newer = _build(src, tmp_path / "rel-1.1.0", version="1.1.0", rows_per_shard=10_000)  # fewer, bigger shards
    v2 = hub.publish(newer, REPO, api=api, progress=False)
    assert v2.tag == "v1.1.0" and v2.commit != v1.commit
    assert set(api.tree(REPO, "main")) - {".gitattributes"} == _published_paths(newer)  # no stale shard left
    assert set(api.tree(REPO, "v1.0.0")) - {".gitattributes"} == _published_paths(release)
    for tag, rel in (("v1.0.0", release), ("v1.1.0", newer)):
        report = hub.pull(REPO, revision=tag, out=tmp_path / f"pulled-{tag}", api=api, progress=False)
        assert report["dataset_version"] == Release.open(rel).manifest.dataset_version


def test_publish_refuses_a_release_that_fails_verification(release, api, tmp_path):
    copy = tmp_path / "rel"
    shutil.copytree(release, copy)
    shard = Release.open(copy).data_files("impressions", "train")[0]
    with open(shard, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    name = shard.relative_to(copy).as_posix()
    with pytest.raises(IntegrityError, match=rf"{re.escape(name)}: sha256"):
        hub.publish(copy, REPO, api=api)
    with pytest.raises(IntegrityError, match=rf"{re.escape(name)}: sha256"):
        hub.publish(copy, REPO, dry_run=True, api=api)
    assert api.calls == []


@pytest.mark.parametrize(
    "repo,tag,message",
    [
        ("no-slash", None, "repo must be ORG/NAME"),
        ("a/b/c", None, "repo must be ORG/NAME"),
        (REPO, "v9.9.9", "does not name dataset_version 1.0.0"),
        (REPO, "latest", "does not name dataset_version 1.0.0"),
        (REPO, "v1.0.0 rc", "does not name dataset_version 1.0.0"),
    ],
)
def test_bad_repo_ids_and_tags_are_refused(release, api, repo, tag, message):
    with pytest.raises(PublishError, match=message):
        hub.publish(release, repo, tag=tag, dry_run=True, api=api)
    assert api.calls == []


def test_a_suffixed_tag_is_allowed(release, api):
    plan = hub.publish(release, REPO, tag="v1.0.0-rc1", api=api, progress=False)
    assert api.tags(REPO) == {"v1.0.0-rc1": plan.commit}


# ---------------------------------------------------------------------------------------------- pull
def test_pull_downloads_and_verifies(release, api, tmp_path):
    hub.publish(release, REPO, api=api, progress=False)
    out = tmp_path / "pulled"
    report = hub.pull(REPO, revision="v1.0.0", out=out, api=api, progress=False)
    assert report["repo_id"] == REPO and report["revision"] == "v1.0.0" and report["files"] == len(Release.open(release).manifest.files)
    got = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert got == _published_paths(release)  # no .gitattributes, no rejects/
    for path in got:
        assert (out / path).read_bytes() == (release / path).read_bytes()
    again = hub.pull(REPO, revision="v1.0.0", out=out, api=api, progress=False)  # into an earlier pull: fine
    assert again["rows"] == report["rows"]


def test_pull_names_a_corrupted_file(release, api, tmp_path):
    hub.publish(release, REPO, api=api, progress=False)
    name = Release.open(release).manifest.files[0].path
    api.corrupt(REPO, name, "v1.0.0")
    with pytest.raises(IntegrityError, match=rf"pulled {REPO}@v1\.0\.0 does not match its manifest: {re.escape(name)}: sha256"):
        hub.pull(REPO, revision="v1.0.0", out=tmp_path / "pulled", api=api, progress=False)


@pytest.mark.parametrize(
    "setup,revision,out,message",
    [
        ("none", "v1.0.0", "new", f"{REPO}: no such dataset repo"),
        ("published", "v2.0.0", "new", r"has no revision 'v2\.0\.0' \(tags: v1\.0\.0\)"),
        ("no-manifest", "v0.1.0", "new", "has no manifest.json: not a genco-data release"),
        ("published", "v1.0.0", "occupied", "exists and is not an empty folder nor a release"),
        ("published", "", "new", "--revision is required"),
    ],
)
def test_pull_refusals(release, api, tmp_path, setup, revision, out, message):
    if setup == "published":
        hub.publish(release, REPO, api=api, progress=False)
    elif setup == "no-manifest":
        api.upload_raw(REPO, {"README.md": b"# hello\n"}, tag="v0.1.0")
    dest = tmp_path / "pulled"
    if out == "occupied":
        dest.mkdir()
        (dest / "precious.txt").write_text("keep")
    with pytest.raises(PublishError, match=message):
        hub.pull(REPO, revision=revision, out=dest, api=api, progress=False)
    if out == "occupied":
        assert [p.name for p in dest.iterdir()] == ["precious.txt"]


FORMATS = [
    ("2.0", ForwardCompatibilityError, r"format_version 2\.0 is newer than 1\.0; upgrade genco-data \(`pip install -U genco-data`\)"),
    ("0.9", BackwardCompatibilityError, r"format_version 0\.9 is older than 1\.0, which this genco-data reads; rebuild it"),
]


def _with_format(release: Path, dest: Path, found: str) -> Path:
    shutil.copytree(release, dest)
    m = json.loads((dest / "manifest.json").read_text())
    m["format_version"] = found
    (dest / "manifest.json").write_text(json.dumps(m, indent=2))
    return dest


@pytest.mark.parametrize("found,error,message", FORMATS, ids=["newer", "older"])
def test_other_format_versions_are_refused_by_pull_before_any_data(release, api, tmp_path, found, error, message):
    other = _with_format(release, tmp_path / "other", found)
    api.upload_raw(REPO, {p: (other / p).read_bytes() for p in _published_paths(release)}, tag="v1.0.0")
    with pytest.raises(error, match=rf"{REPO}@v1\.0\.0 manifest\.json: {message}"):
        hub.pull(REPO, revision="v1.0.0", out=tmp_path / "pulled", api=api, progress=False)
    assert api.calls == ["hf_hub_download"] and not (tmp_path / "pulled").exists()


@pytest.mark.parametrize("found,error,message", FORMATS, ids=["newer", "older"])
def test_other_format_versions_are_refused_by_the_cli(release, cli_hub, tmp_path, capsys, found, error, message):
    other = _with_format(release, tmp_path / "other", found)
    cli_hub.upload_raw(REPO, {p: (other / p).read_bytes() for p in _published_paths(release)}, tag="v1.0.0")
    for argv in (["verify", str(other)], ["publish", str(other), "--repo", REPO, "--dry-run"],
                 ["pull", REPO, "--revision", "v1.0.0", "--out", str(tmp_path / "pulled"), "--quiet"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"genco {argv[0]}: error: ") and re.search(message, err), err


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_publish_and_pull(release, cli_hub, tmp_path, capsys):
    assert main(["publish", str(release), "--repo", REPO, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["action"] == "dry-run" and plan["tag"] == "v1.0.0" and cli_hub.calls == []
    assert main(["publish", str(release), "--repo", REPO, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"published {REPO} tag v1.0.0 (commit ")
    assert main(["publish", str(release), "--repo", REPO, "--quiet"]) == 0
    assert "already holds this release; nothing to do" in capsys.readouterr().out
    out = tmp_path / "pulled"
    assert main(["pull", REPO, "--revision", "v1.0.0", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().startswith(f"pulled {REPO}@v1.0.0 into {out}: ")
    assert main(["verify", str(out)]) == 0
    name = Release.open(release).manifest.files[-1].path
    cli_hub.corrupt(REPO, name, "v1.0.0")
    assert main(["pull", REPO, "--revision", "v1.0.0", "--out", str(tmp_path / "again"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{name}: sha256" in err


def test_the_token_is_never_printed_logged_or_written(release, cli_hub, tmp_path, capsys, caplog, monkeypatch):
    import logging

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    out = tmp_path / "pulled"
    runs = [
        ["publish", str(release), "--repo", REPO, "--dry-run"],
        ["publish", str(release), "--repo", REPO, "--dry-run", "--json"],
        ["publish", str(release), "--repo", REPO],
        ["publish", str(release), "--repo", REPO, "--json"],
        ["pull", REPO, "--revision", "v1.0.0", "--out", str(out)],
        ["pull", REPO, "--revision", "v1.0.0", "--out", str(out), "--json"],
    ]
    for argv in runs:
        assert main(argv) == 0, argv

    class LeakyHub(LocalHub):
        """A library that puts the credentials into its error message."""

        def list_repo_refs(self, repo_id, **kw):
            raise ConnectionError(f"401 for https://hub.invalid/api?token={SECRET} with Authorization: Bearer {SECRET}")

    monkeypatch.setattr(hub, "_default_api", lambda: LeakyHub(tmp_path / "leaky"))
    assert main(["publish", str(release), "--repo", REPO]) == 2
    assert main(["pull", REPO, "--revision", "v1.0.0", "--out", str(tmp_path / "p2")]) == 2
    captured = capsys.readouterr()
    assert "***" in captured.err
    for text in (captured.out, captured.err, caplog.text):
        assert SECRET not in text
    for folder in (tmp_path, release):
        for p in folder.rglob("*"):
            if p.is_file():
                assert SECRET.encode() not in p.read_bytes(), p


def test_redaction_of_token_like_text(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "abcd-1234")
    text = hub._redact("x abcd-1234 y hf_AbCdEf0123456789 z Bearer eyJ.abc token=zzz&q=1")
    assert "abcd-1234" not in text and "hf_AbCd" not in text and "eyJ" not in text and "zzz" not in text
    assert text.startswith("x *** y *** z ***")


def _walkthrough_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = readme.split("\n## Publishing a version\n", 1)[1].split("\n## ", 1)[0]  # just that section
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("genco ")]


def test_the_publishing_walkthrough_runs_as_written(tmp_path, cli_hub, monkeypatch, capsys):
    """README.md's "Publishing a version", every `genco …` line of its ```bash blocks, in order, against the stand-in."""
    commands = _walkthrough_commands()
    verbs = [shlex.split(c)[1] for c in commands]
    assert verbs == ["synth", "build", "verify", "card", "publish", "publish", "pull", "verify"], verbs
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for command in commands:
        argv = shlex.split(command)[1:]
        assert main(argv) == 0, (command, capsys.readouterr().err[-2000:])
    captured = capsys.readouterr().out
    assert "DRY RUN — nothing was touched." in captured and "published ORG/NAME tag v1.0.0" in captured
    assert cli_hub.tags("ORG/NAME").keys() == {"v1.0.0"}
    pulled = Release.open(work / "pulled")
    assert pulled.manifest.splits["impressions"] == {"train": 200_000, "test": 50_000}
    assert 'load_dataset("ORG/NAME", "impressions", revision="v1.0.0")' in (work / "pulled" / "README.md").read_text()


# ------------------------------------------------------------------------------ a real Hub (opt-in)
@pytest.mark.hub
@pytest.mark.skipif(not (os.environ.get("HF_ENDPOINT") and os.environ.get("HF_TOKEN")),
                    reason="needs HF_ENDPOINT and HF_TOKEN (a real Hub endpoint and a write token)")
def test_round_trip_against_a_real_endpoint(release, tmp_path):
    import uuid

    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is set")
    api = HfApi(endpoint=os.environ["HF_ENDPOINT"])
    fixed = os.environ.get("GENCO_HUB_TEST_REPO")
    repo = fixed or f"{api.whoami()['name']}/genco-data-test-{uuid.uuid4().hex[:8]}"
    try:
        first = hub.publish(release, repo, private=True, api=api, progress=False)
        assert first.action == "published" or (fixed and first.action == "unchanged")
        assert hub.publish(release, repo, private=True, api=api, progress=False).action == "unchanged"
        report = hub.pull(repo, revision="v1.0.0", out=tmp_path / "pulled", api=api, progress=False)
        assert report["rows"] == sum(Release.open(release).manifest.splits["impressions"].values())
        verify_release(tmp_path / "pulled")
    finally:
        if fixed is None:
            api.delete_repo(repo, repo_type="dataset", missing_ok=True)
