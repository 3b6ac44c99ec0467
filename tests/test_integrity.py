"""Integrity end to end: ``genco verify`` catches every kind of damage to a release; the package's own loaders
(``Evaluator``, the torch adapters) refuse a damaged release unless ``verify=False``, and re-opening a verified
release is cheap; builds and leaderboard writes are atomic (a killed ``genco build`` leaves nothing, a rerun
succeeds); oversized inputs are refused before they are read.

(``tests/test_release.py`` holds the first cases of ``verify_release``: a flipped byte in a train shard and in
``world.npz``, an extra file, the hand-edited train-shard entry; this file completes the set over *every*
file of a release, sample shards and ``world/`` included.)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import genco_data.card.card as card_module
import genco_data.release as release_module
from factories import TSD, make_impressions, read_manifest as _manifest, write_csv, write_manifest as _write_manifest, write_parquet, write_world
from genco_data import BuildConfig, build_release
from genco_data.cli import main
from genco_data.format.components import COMPONENTS, exposed_col
from genco_data.errors import BackwardCompatibilityError, GencoError, IntegrityError
from genco_data.release import Release, verify_checksums, verify_release

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A synthetic-style release: two train shards, one test shard, the sample, world/ (json + npz)."""
    src = tmp_path_factory.mktemp("src")
    write_parquet(make_impressions(600, seed=9), src / "raw" / "part-0.parquet")
    write_world(src / "world", TSD)
    out = tmp_path_factory.mktemp("rel") / "release"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])
        build_release(BuildConfig(sources=[src], out=out, version="1.0.0", rows_per_shard=250, sample_rows=50), progress=False)
    return out


@pytest.fixture
def release(built, tmp_path) -> Path:
    """A fresh copy to damage (new inodes, so no cached verification carries over)."""
    out = tmp_path / "release"
    shutil.copytree(built, out)
    return out


def _files(p: Path) -> list[str]:
    return [f["path"] for f in _manifest(p)["files"]]


def _flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[min(int(len(data) * where), len(data) - 1)] ^= 0x01
    path.write_bytes(bytes(data))


def _cli_verify_fails(release: Path, capsys, pattern: str) -> None:
    capsys.readouterr()
    assert main(["verify", str(release)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco verify: error: ") and "Traceback" not in err, err
    assert re.search(pattern, err), err


def test_the_release_has_every_kind_of_file(built):
    names = _files(built)
    assert any(n.startswith("data/impressions/train-") for n in names) and any(n.startswith("data/impressions/test-") for n in names)
    assert any(n.startswith("data/sample/") for n in names) and "world/world.json" in names and "world/world.npz" in names
    verify_release(built)
    verify_checksums(built)


# ------------------------------------------------------------------------------------- genco verify
@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_verify_detects_a_flipped_byte_in_every_file(release, capsys, where):
    """Every listed file (train/test/sample shards, world.json, world.npz), at its start, middle and end."""
    for name in _files(release):
        path = release / name
        original = path.read_bytes()
        _flip(path, where)
        with pytest.raises(IntegrityError, match=rf"{name}: sha256 .* differs from manifest.json"):
            verify_release(release)
        _cli_verify_fails(release, capsys, rf"{name}: sha256")
        path.write_bytes(original)
    verify_release(release)


def test_verify_detects_every_missing_file(release, capsys):
    for name in _files(release):
        path = release / name
        original = path.read_bytes()
        path.unlink()
        with pytest.raises(IntegrityError, match=rf"missing file {name} \(listed in manifest.json\)"):
            verify_release(release)
        _cli_verify_fails(release, capsys, rf"missing file {name}")
        path.write_bytes(original)
    verify_release(release)


EXTRA_FILES = [
    "data/impressions/train-00007-of-00009.parquet",
    "data/sample/train-00001-of-00001.parquet",
    "data/sample/notes.txt",
    "data/impressions/nested/deeper/x.parquet",
    "data/.hidden",
    "world/extra.npz",
    "world/sub/world.json",
]


@pytest.mark.parametrize("extra", EXTRA_FILES)
def test_verify_detects_an_extra_file_anywhere_under_data_and_world(release, capsys, extra):
    (release / extra).parent.mkdir(parents=True, exist_ok=True)
    (release / extra).write_bytes(b"PAR1 surprise PAR1")
    with pytest.raises(IntegrityError, match=rf"extra file {extra} \(not in manifest.json\)"):
        verify_release(release)
    _cli_verify_fails(release, capsys, rf"extra file {extra}")


def test_verify_detects_a_symlink_planted_in_data(release):
    (release / "data" / "impressions" / "link.parquet").symlink_to(release / _files(release)[0])
    with pytest.raises(IntegrityError, match=r"data/impressions/link.parquet is a symlink"):
        verify_release(release)


def _entry(m: dict, prefix: str) -> dict:
    return next(f for f in m["files"] if f["path"].startswith(prefix))


HAND_EDITS = [
    ("sample sha256", lambda m: _entry(m, "data/sample/test-").update(sha256="a" * 64), r"data/sample/test-.*: sha256 .* differs"),
    ("sample bytes", lambda m: _entry(m, "data/sample/train-").update(bytes=_entry(m, "data/sample/train-")["bytes"] - 1), r"data/sample/train-.*bytes, manifest.json says"),
    ("sample rows", lambda m: _entry(m, "data/sample/train-").update(rows=_entry(m, "data/sample/train-")["rows"] + 1), r"data/sample/train-.*rows, manifest.json says"),
    ("sample split count", lambda m: m["splits"]["sample"].update(test=m["splits"]["sample"]["test"] + 1), r"splits\[sample\]\[test\]"),
    ("test shard sha256", lambda m: _entry(m, "data/impressions/test-").update(sha256="b" * 64), r"data/impressions/test-.*: sha256"),
    ("world json sha256", lambda m: _entry(m, "world/world.json").update(sha256="c" * 64), r"world/world.json: sha256"),
    ("world npz bytes", lambda m: _entry(m, "world/world.npz").update(bytes=1), r"world/world.npz: \d+ bytes, manifest.json says 1"),
    ("world entry dropped", lambda m: m["files"].remove(_entry(m, "world/world.npz")), r"extra file world/world.npz"),
    ("phantom file listed", lambda m: m["files"].append({**_entry(m, "world/world.json"), "path": "world/ghost.json"}), r"missing file world/ghost.json"),
    ("file listed twice", lambda m: m["files"].append(dict(_entry(m, "data/sample/"))), r"a file is listed twice"),
    ("path traversal", lambda m: m["files"].append({**_entry(m, "world/world.json"), "path": "../elsewhere.json"}), r"invalid manifest .*path must be relative"),
    ("absolute path", lambda m: m["files"].append({**_entry(m, "world/world.json"), "path": "/etc/hostname"}), r"invalid manifest .*path must be relative"),
    ("file outside data/world", lambda m: m["files"].append({**_entry(m, "world/world.json"), "path": "rejects/rejects-00000.parquet"}), r"outside README.md, data/, world/ and figures/"),
    ("dataset_version", lambda m: m.update(dataset_version="1.0"), r"invalid manifest"),
    ("older format", lambda m: m.update(format_version="0.9"), r"older than .* rebuild it"),
    ("unknown field", lambda m: m.update(note="hello"), r"invalid manifest"),
    ("negative rows", lambda m: _entry(m, "data/sample/").update(rows=-1), r"invalid manifest"),
]


@pytest.mark.parametrize("what,edit,message", HAND_EDITS, ids=[h[0] for h in HAND_EDITS])
def test_verify_detects_a_hand_edited_manifest(release, capsys, what, edit, message):
    m = _manifest(release)
    edit(m)
    _write_manifest(release, m)
    with pytest.raises(GencoError, match=message) as info:
        verify_release(release)
    assert "\n" not in str(info.value)
    _cli_verify_fails(release, capsys, message)


@pytest.mark.parametrize("damage,message", [
    (lambda p: (p / "manifest.json").write_text('{"dataset_version": "1.0.0", '), r"manifest.json: not valid JSON"),
    (lambda p: (p / "manifest.json").write_text("[]"), r"manifest.json: expected a JSON object"),
    (lambda p: (p / "manifest.json").write_bytes(b'{"x": "\xff"}'), r"manifest.json: not valid JSON"),
    (lambda p: (p / "manifest.json").unlink(), r"not a release folder \(no manifest.json\)"),
], ids=["truncated", "not an object", "not utf-8", "missing"])
def test_verify_refuses_a_broken_or_missing_manifest(release, capsys, damage, message):
    damage(release)
    with pytest.raises(IntegrityError, match=message):
        verify_release(release)
    _cli_verify_fails(release, capsys, message)


def test_format_version_error_is_a_version_error(release):
    m = _manifest(release)
    m["format_version"] = "0.9"
    _write_manifest(release, m)
    with pytest.raises(BackwardCompatibilityError):
        verify_checksums(release)


# ----------------------------------------------------------------------- loaders verify by default
def _choices_table(release: Path) -> pa.Table:
    """Predictions = the logged exposure on every component (always valid)."""
    test = pa.concat_tables([pq.read_table(f) for f in Release.open(release).data_files("impressions", "test")])
    cols = {"impression_id": test.column("impression_id")}
    for c in COMPONENTS:
        cols[f"{c}_choice"] = test.column(exposed_col(c))
    return pa.table(cols)


DAMAGES = {
    "flipped train shard": lambda p: _flip(p / _entry(_manifest(p), "data/impressions/train-")["path"]),
    "flipped test shard": lambda p: _flip(p / _entry(_manifest(p), "data/impressions/test-")["path"]),
    "flipped world": lambda p: _flip(p / "world" / "world.npz", 0.9),
    "missing sample shard": lambda p: (p / _entry(_manifest(p), "data/sample/")["path"]).unlink(),
    "extra world file": lambda p: (p / "world" / "override.json").write_text("{}"),
    "edited manifest": lambda p: _write_manifest(p, {**_manifest(p), "files": [{**f, "bytes": f["bytes"] + 1} if f["path"].startswith("world/") else f for f in _manifest(p)["files"]]}),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_evaluator_refuses_a_damaged_release_unless_told_not_to_verify(release, damage, tmp_path, capsys):
    from genco_data.evaluate import Evaluator

    preds = _choices_table(release)
    pq.write_table(preds, tmp_path / "preds.parquet")
    DAMAGES[damage](release)
    with pytest.raises(IntegrityError):
        Evaluator(release, world=None)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "preds.parquet"), "--data", str(release), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco evaluate: error: ") and "Traceback" not in err
    if damage in ("flipped train shard", "missing sample shard", "extra world file"):  # files the evaluator never reads
        r = Evaluator(release, world=None, verify=False).evaluate(preds)
        assert r.to_dict()["combination"]["calibrated_sctr"]["value"] is not None


def test_evaluator_on_a_sound_release(release):
    from genco_data.evaluate import Evaluator

    r = Evaluator(release, world=None).evaluate(_choices_table(release))  # the fixture's world/ is a stand-in
    assert r.to_dict()["combination"]["calibrated_sctr"]["value"] is not None


@pytest.mark.parametrize("damage", ["flipped train shard", "flipped test shard", "missing sample shard", "extra world file", "edited manifest"])
def test_torch_loaders_refuse_a_damaged_release_unless_told_not_to_verify(release, damage):
    pytest.importorskip("torch")
    td = pytest.importorskip("genco_data.load")
    DAMAGES[damage](release)
    calls = {
        "Vocabularies.build": lambda **kw: td.Vocabularies.build(release, **kw),
        "MapDataset": lambda **kw: td.MapDataset(release, **kw),
        "MapDataset(test)": lambda **kw: td.MapDataset(release, split="test", **kw),
        "StreamingDataset": lambda **kw: td.StreamingDataset(release, **kw),
        "loader": lambda **kw: td.loader(release, batch_size=64, **kw),
        "loader(map-style)": lambda **kw: td.loader(release, batch_size=64, streaming=False, **kw),
        "parquet_files": lambda **kw: td.parquet_files(release, "train", **kw),
    }
    for name, call in calls.items():
        with pytest.raises(IntegrityError):
            call()
    if damage in ("flipped test shard", "missing sample shard", "extra world file"):  # the train split is intact
        vocabs = td.Vocabularies.build(release, verify=False)
        ds = td.MapDataset(release, vocabs, verify=False)
        assert len(ds) == Release.open(release).manifest.splits["impressions"]["train"]
        batches = list(td.loader(release, batch_size=128, vocabs=vocabs, verify=False))
        assert sum(len(b) for b in batches) == len(ds)


def test_torch_loaders_on_a_sound_release(release):
    pytest.importorskip("torch")
    td = pytest.importorskip("genco_data.load")
    vocabs = td.Vocabularies.build(release)
    batches = list(td.loader(release, batch_size=128, vocabs=vocabs))
    assert sum(len(b) for b in batches) == Release.open(release).manifest.splits["impressions"]["train"]


# ------------------------------------------------------------------------ verification is cheap to repeat
def _count_hashes(monkeypatch) -> dict:
    calls = {"n": 0}
    real = release_module.sha256_file

    def counting(path):
        calls["n"] += 1
        return real(path)

    monkeypatch.setattr(release_module, "sha256_file", counting)
    return calls


def test_repeated_opens_hash_each_file_once_and_changes_are_still_caught(release, monkeypatch):
    n_files = len(_files(release))
    calls = _count_hashes(monkeypatch)
    verify_checksums(release)
    assert calls["n"] == n_files
    for _ in range(3):
        Release.open(release, verify=True)
    assert calls["n"] == n_files  # cached: one stat per file, no hashing
    # a change made after the first check is caught, even when the modification time is put back
    name = _entry(_manifest(release), "data/impressions/test-")["path"]
    st = (release / name).stat()
    _flip(release / name)
    os.utime(release / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(IntegrityError, match=rf"{name}: sha256"):
        verify_checksums(release)
    assert calls["n"] == n_files + 1  # only the changed file was hashed again
    # `genco verify` never trusts the cache
    _flip(release / name)  # flip back: sound again
    calls["n"] = 0
    verify_release(release)
    assert calls["n"] == n_files


def test_a_replaced_file_is_hashed_again(release, monkeypatch):
    verify_checksums(release)
    calls = _count_hashes(monkeypatch)
    name = _entry(_manifest(release), "world/world.json")["path"]
    data = (release / name).read_bytes()
    (release / name).unlink()
    (release / name).write_bytes(data)  # same bytes, new inode
    verify_checksums(release)
    assert calls["n"] == 1


# ------------------------------------------------------------------------------------- atomic builds
def _genco_build(argv: list[str]) -> subprocess.Popen:
    """``genco build`` in a child process (``genco_data.cli.main``). The reference-model verbs are not
    registered there (their module imports torch, which this test does not need and which slows the start)."""
    code = "import sys; sys.modules['reference_model.entry'] = None; from genco_data.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "build", *argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def big_src(tmp_path_factory) -> Path:
    """40,000 rows as two CSV files, out of day order (so the builder spills and sorts): ~2 s of build."""
    src = tmp_path_factory.mktemp("big")
    t = make_impressions(40_000, seed=4)
    t = t.take(np.random.default_rng(0).permutation(t.num_rows))
    write_csv(t.slice(0, 20_000), src / "a.csv")
    write_csv(t.slice(20_000), src / "b.csv")
    return src


@pytest.mark.parametrize("phase,marker", [("ingest", ".spill"), ("card", "manifest.json")])
def test_a_killed_genco_build_leaves_no_release_and_a_rerun_succeeds(big_src, tmp_path, phase, marker):
    out = tmp_path / "rel"
    argv = [str(big_src), "--out", str(out), "--version", "1.0.0", "--test-start-day", TSD.isoformat(), "--quiet"]
    proc = _genco_build(argv)
    try:
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline and not list(tmp_path.glob(f".rel.tmp-*/{marker}")):
            time.sleep(0.005)
        assert proc.poll() is None, f"the build ended before the {phase} phase was seen: {proc.stderr.read()!r}"
        assert list(tmp_path.glob(f".rel.tmp-*/{marker}")), f"the {phase} phase never came"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "a killed build left a (partial) release at --out"
    assert list(tmp_path.glob(".rel.tmp-*")), "the killed build's temporary sibling should still be there"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])
        assert main(["build", *argv]) == 0
    assert not list(tmp_path.glob(".rel.tmp-*")), "the rerun did not remove the dead build's temporary folder"
    report = verify_release(out)
    assert report["rows"] == 40_000


def test_a_killed_rebuild_keeps_the_previous_release(built, big_src, tmp_path):
    """``--overwrite`` onto an existing release, killed mid-way: the old release is still complete."""
    out = tmp_path / "rel"
    shutil.copytree(built, out)
    before = {p: (out / p).read_bytes() for p in _files(out)}
    proc = _genco_build([str(big_src), "--out", str(out), "--version", "2.0.0", "--test-start-day", TSD.isoformat(), "--overwrite", "--quiet"])
    try:
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline and not list(tmp_path.glob(".rel.tmp-*/.spill")):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    verify_release(out)
    assert Release.open(out).manifest.dataset_version == "1.0.0"
    assert {p: (out / p).read_bytes() for p in _files(out)} == before


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_rebuild_killed_between_its_two_renames_gets_the_old_release_back(built, tmp_path):
    """The one moment ``out`` does not exist during a rebuild: after ``out -> .out.old-<pid>``, before the new
    release is renamed onto ``out``. The next build puts the previous release back first."""
    src = tmp_path / "src"
    write_parquet(make_impressions(300, seed=2), src / "raw.parquet")
    out = tmp_path / "rel"
    shutil.copytree(built, tmp_path / f".rel.old-{_dead_pid()}")
    shutil.copytree(built, tmp_path / f".rel.tmp-{_dead_pid()}")  # and the new release that never got renamed
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])
        with pytest.raises(GencoError, match="exists; pass --overwrite"):
            build_release(BuildConfig(sources=[src], out=out, version="2.0.0", test_start_day=TSD), progress=False)
        verify_release(out)
        assert Release.open(out).manifest.dataset_version == "1.0.0"
        build_release(BuildConfig(sources=[src], out=out, version="2.0.0", test_start_day=TSD, overwrite=True), progress=False)
    assert Release.open(out).manifest.dataset_version == "2.0.0"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".rel.lock") == ["rel", "src"]  # the writer lock file stays


def test_a_rebuild_whose_final_rename_fails_keeps_the_previous_release(built, tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_parquet(make_impressions(300, seed=2), src / "raw.parquet")
    out = tmp_path / "rel"
    shutil.copytree(built, out)
    monkeypatch.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])
    real, calls = os.rename, {"n": 0}

    def second_fails(a, b):
        calls["n"] += 1
        if calls["n"] == 2:  # out -> .old succeeded; tmp -> out fails
            raise OSError("rename failed (simulated)")
        return real(a, b)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(GencoError, match="could not move the finished release onto"):
        build_release(BuildConfig(sources=[src], out=out, version="2.0.0", test_start_day=TSD, overwrite=True), progress=False)
    monkeypatch.setattr(os, "rename", real)
    verify_release(out)
    assert Release.open(out).manifest.dataset_version == "1.0.0"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".rel.lock") == ["rel", "src"]  # the writer lock file stays


# ------------------------------------------------------------------------------ atomic leaderboard writes
def test_leaderboard_writes_are_atomic(tmp_path, monkeypatch):
    from genco_data import leaderboard as lb
    from genco_data.errors import SubmissionError
    from genco_data.fsutil import write_json_atomic  # what leaderboard entries are written with

    target = tmp_path / "entries" / "m--v1.0.0.json"
    write_json_atomic(target, {"v": 1})
    assert json.loads(target.read_text()) == {"v": 1}

    def broken_fsync(fd):
        raise OSError("disk full (simulated)")

    with monkeypatch.context() as mp:
        mp.setattr(os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="simulated"):
            write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}  # the old entry, whole
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary file left
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is replaced
        write_json_atomic(target, {"v": float("nan")})
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]

    board = tmp_path / "LEADERBOARD.md"
    (tmp_path / "empty").mkdir()
    lb.render_leaderboard(tmp_path / "empty", board)
    first = board.read_text()
    assert "No verified entries yet" in first
    with monkeypatch.context() as mp:
        mp.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("rename failed (simulated)")))
        with pytest.raises(SubmissionError, match=r"LEADERBOARD\.md: cannot write the board \(rename failed \(simulated\)\)"):
            lb.render_leaderboard(tmp_path / "empty", board)
    assert board.read_text() == first
    # what stays beside the board: the entries, and the board's lock file (flock: never stale, kept on purpose)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".LEADERBOARD.md.lock", "LEADERBOARD.md", "empty", "entries"]


def test_leaderboard_refuses_oversized_or_non_utf8_entries(tmp_path, monkeypatch):
    from genco_data import leaderboard as lb
    from genco_data.errors import SubmissionError

    entries = tmp_path / "entries"
    entries.mkdir()
    (entries / "a.json").write_bytes(b'{"x": "\xff"}')
    with pytest.raises(SubmissionError, match=r"a\.json: not a UTF-8 JSON document"):
        lb.load_entries(entries)
    monkeypatch.setattr("genco_data.leaderboard.entries.MAX_ENTRY_BYTES", 4)
    with pytest.raises(SubmissionError, match=r"a\.json: 10 bytes is over the 4-byte limit"):
        lb.load_entries(entries)


# ------------------------------------------------------------------------------------ bounded resources
def test_a_raw_file_over_the_size_limit_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    """Refused on its size alone: the file is never opened (no read of any input happens)."""
    from genco_data.build import MAX_FILE_BYTES
    from genco_data.errors import InvalidInputError

    write_parquet(make_impressions(200, seed=1), tmp_path / "src" / "a.parquet")
    (tmp_path / "src" / "b.parquet").write_bytes(b"\0" * 50_000)
    opened: list[str] = []
    real_open = open

    def spy(file, *a, **kw):
        opened.append(str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr("builtins.open", spy)
    with pytest.raises(InvalidInputError, match=r"b\.parquet: 50,000 bytes is over the 40,000-byte limit"):
        build_release(BuildConfig(sources=[tmp_path / "src"], out=tmp_path / "rel", version="1.0.0", test_start_day=TSD, max_file_bytes=40_000), progress=False)
    assert not any("src" in f for f in opened)
    assert not (tmp_path / "rel").exists()
    assert BuildConfig(sources=["a.parquet"], out="r", version="1.0.0").max_file_bytes == MAX_FILE_BYTES >= 1 << 30
    with pytest.raises(GencoError, match="max_file_bytes must be a positive integer"):
        BuildConfig(sources=["a.parquet"], out="r", version="1.0.0", max_file_bytes=0)


def test_oversized_submission_and_predictions_are_refused_unread(tmp_path, monkeypatch):
    """(The evaluator's own predictions size limit is tested in test_evaluate.py.)"""
    from genco_data import leaderboard as lb
    from genco_data.errors import SubmissionError

    sub = tmp_path / "submission.json"
    sub.write_bytes(b"{" + b" " * (lb.MAX_SUBMISSION_BYTES + 1))
    with pytest.raises(SubmissionError, match=r"over the 1,048,576-byte limit for a submission JSON"):
        lb.load_submission(sub)
    monkeypatch.setattr("genco_data.leaderboard.rules.MAX_PREDICTIONS_BYTES", 100)
    preds = tmp_path / "p.parquet"
    preds.write_bytes(b"PAR1" + b"\0" * 200 + b"PAR1")
    with pytest.raises(SubmissionError, match=r"over the 100-byte limit"):
        lb.check_predictions_file(preds, "0" * 64, seed=1)
