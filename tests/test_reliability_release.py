"""Issue #16 (1, 4): a release is exactly its manifest, and its parsers are strict.

* every file that travels — data, world, figures, the card — is listed with its sha256; ``verify`` flags an
  unlisted file or a symlink anywhere (``figures/`` included); the card's text never depends on its own entry;
  ``genco card`` re-renders through the same pipeline function and keeps the manifest true;
* a withheld world (#15) verifies, and a world handed over later is checked against the manifest's pins;
* semver, format versions and manifests parse strictly (no trailing newline, non-ASCII digits, leading
  zeros, ``"1.x"``, duplicate keys, deep nesting, NUL in a path); every refusal is one line, exit 2.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factories import TSD, make_impressions, read_manifest, write_manifest, write_parquet, write_world
from genco_data.card.card import card_text
from genco_data.card.figures import figure_data
from genco_data.card.options import CardOptions
from genco_data.cli import main
from genco_data.errors import IntegrityError, InvalidInputError, LockedError
from genco_data.pipeline import BuildConfig, build_release, data_manifest, render_release_card
from genco_data.release import Release, check_world, verify_checksums, verify_release

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    write_parquet(make_impressions(400, seed=11), src / "raw" / "part-0.parquet")
    write_world(src / "world", TSD)
    out = tmp_path_factory.mktemp("rel") / "release"
    build_release(BuildConfig(sources=[src], out=out, version="1.0.0", sample_rows=50), progress=False)
    return out


@pytest.fixture
def release(built, tmp_path) -> Path:
    out = tmp_path / "release"
    shutil.copytree(built, out, symlinks=True)
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _verify_fails(release: Path, capsys, pattern: str) -> str:
    with pytest.raises(IntegrityError, match=pattern) as info:
        verify_release(release)
    assert "\n" not in str(info.value)
    capsys.readouterr()
    assert main(["verify", str(release)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco verify: error: ") and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return err


# ------------------------------------------------------------------------------- the card is listed
def test_every_file_that_travels_is_listed_with_its_sha256(built):
    m = Release.open(built).manifest
    listed = {f.path: f for f in m.files}
    travels = {p.relative_to(built).as_posix() for p in built.rglob("*")
               if p.is_file() and p.relative_to(built).parts[0] not in ("rejects", "manifest.json")}
    assert travels == set(listed)
    assert {"README.md", "figures/candidate_counts.png", "figures/ctr_by_day.png", "world/world.json"} <= set(listed)
    for path, f in listed.items():
        assert f.sha256 == _sha(built / path) and f.bytes == (built / path).stat().st_size, path
    assert verify_release(built)["files"] == len(m.files)


def test_the_card_text_does_not_depend_on_its_own_entry_nor_the_manifest_checksum(release):
    rel = Release.open(release)
    # the card is a function of the data manifest: what it says is computable before it is listed
    assert (release / "README.md").read_text(encoding="utf-8") == card_text(data_manifest(rel.manifest), None, figure_data(rel))
    card, manifest = (release / "README.md").read_bytes(), (release / "manifest.json").read_bytes()
    render_release_card(release)  # a re-render of a listed release: the same bytes, the same manifest
    assert (release / "README.md").read_bytes() == card and (release / "manifest.json").read_bytes() == manifest
    verify_release(release)


def _no_figures(monkeypatch):
    import genco_data.card.card as card_module

    monkeypatch.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])


def test_genco_card_keeps_the_manifest_true(release, capsys, monkeypatch):
    _no_figures(monkeypatch)  # (the figures' listing is checked on the build's own render above)
    assert main(["card", str(release), "--repo", "my-org/genco", "--quiet"]) == 0
    m = Release.open(release).manifest
    card = next(f for f in m.files if f.path == "README.md")
    assert card.sha256 == _sha(release / "README.md") and "my-org/genco" in (release / "README.md").read_text()
    assert main(["verify", str(release)]) == 0


@pytest.mark.parametrize("stray", ["figures/notes.txt", "figures/sub/x.png", "README.txt", ".hidden", ".cache/other"])
def test_verify_flags_an_unlisted_file_anywhere(release, capsys, stray):
    (release / stray).parent.mkdir(parents=True, exist_ok=True)
    (release / stray).write_bytes(b"stray")
    _verify_fails(release, capsys, rf"extra file {re.escape(stray)} \(not in manifest.json\)")


def _link_world_file(release: Path) -> None:
    target = release / "world" / "world.json"
    data = target.read_bytes()
    target.unlink()
    outside = release.parent / "outside.json"
    outside.write_bytes(data)  # same bytes, so only the symlink itself can give it away
    target.symlink_to(outside)


SYMLINKS = {
    "figure to a system file": (lambda r: (r / "figures" / "extra.png").symlink_to("/etc/hostname"), "figures/extra.png is a symlink"),
    "listed world file": (_link_world_file, "world/world.json is a symlink"),
    "data folder": (lambda r: (shutil.move(str(r / "data"), str(r.parent / "data-elsewhere")), (r / "data").symlink_to(r.parent / "data-elsewhere")),
                    r"data is a symlink"),
    "dangling": (lambda r: (r / "figures" / "gone.png").symlink_to(r / "nowhere"), "figures/gone.png is a symlink"),
    "loop": (lambda r: (r / "world" / "loop").symlink_to(r / "world"), "world/loop is a symlink"),
    "rejects folder": (lambda r: (shutil.rmtree(r / "rejects", ignore_errors=True), (r / "rejects").symlink_to("/etc")), "rejects is a symlink"),
}


@pytest.mark.parametrize("what", list(SYMLINKS))
def test_verify_flags_a_symlink_anywhere(release, capsys, what):
    plant, pattern = SYMLINKS[what]
    plant(release)
    _verify_fails(release, capsys, pattern)
    with pytest.raises(IntegrityError, match=pattern):
        verify_checksums(release)  # what every loader runs on open


def test_verify_flags_a_fifo(release, capsys):
    os.mkfifo(release / "figures" / "pipe")
    _verify_fails(release, capsys, "figures/pipe is not a regular file")


def test_huggingface_hubs_local_cache_and_rejects_are_not_part_of_the_release(release):
    (release / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (release / ".cache" / "huggingface" / "download" / "README.md.metadata").write_text("etag")
    (release / "rejects").mkdir(exist_ok=True)
    (release / "rejects" / "rejects-00000.parquet").write_bytes(b"anything")
    verify_release(release)


def test_a_release_built_before_the_card_was_listed_says_how_to_fix_it(release, capsys, monkeypatch):
    _no_figures(monkeypatch)
    m = read_manifest(release)
    m["files"] = [f for f in m["files"] if f["path"].startswith(("data/", "world/"))]
    write_manifest(release, m)
    err = _verify_fails(release, capsys, r"extra file (README\.md|figures/\S+) \(not in manifest\.json\)")
    assert f"re-render it: genco card {release}" in err
    assert main(["card", str(release), "--quiet"]) == 0
    verify_release(release)


def test_a_re_render_refuses_a_stray_figure_and_changes_nothing(release, capsys):
    (release / "figures" / "planted.png").write_bytes(b"\x89PNG not ours")
    before = {p: p.read_bytes() for p in release.rglob("*") if p.is_file()}
    assert main(["card", str(release), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "figures/planted.png is not a figure of the card (not in manifest.json); remove it" in err
    assert {p: p.read_bytes() for p in release.rglob("*") if p.is_file()} == before


def test_genco_card_refuses_a_repo_id_with_a_newline(release, capsys):
    before = (release / "README.md").read_bytes()
    assert main(["card", str(release), "--repo", "my-org/genco\n", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "repo must be ORG/NAME" in err
    assert (release / "README.md").read_bytes() == before


def test_genco_card_waits_for_nobody_while_a_build_of_the_release_runs(release, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from genco_data.locks import writer_lock\n"
         f"with writer_lock({str(release)!r}, 'genco build'):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        with pytest.raises(LockedError, match=r"another writer holds it \(genco build, pid \d+"):
            render_release_card(release)
        assert main(["card", str(release), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another writer holds it (genco build" in err
        assert time.perf_counter() - t0 < 5
    finally:
        holder.kill()
        holder.wait()
    verify_release(release)


# ---------------------------------------------------------------------------------- a private truth
def test_a_withheld_world_verifies_and_a_partial_one_does_not(release, capsys):
    world = release.parent / "kept-world"
    shutil.move(str(release / "world"), str(world))
    report = verify_release(release)
    assert report["world"] == "withheld"
    assert Release.open(release).world_withheld and Release.open(release).world_dir is None
    capsys.readouterr()
    assert main(["verify", str(release)]) == 0 and "world/ withheld" in capsys.readouterr().out
    assert check_world(Release.open(release), world) == world  # the maintainer's copy matches the pins
    (release / "world").mkdir()
    shutil.copy(world / "world.json", release / "world" / "world.json")
    _verify_fails(release, capsys, r"missing file world/world.npz")


def test_a_world_that_is_not_the_pinned_one_is_refused(release, tmp_path):
    rel = Release.open(release)
    other = write_world(tmp_path / "other-world", TSD, seed=99)
    with pytest.raises(IntegrityError, match=r"world\.json differs from the world/world\.json pinned by"):
        check_world(rel, other)
    (tmp_path / "more").mkdir()
    shutil.copytree(release / "world", tmp_path / "more" / "w")
    (tmp_path / "more" / "w" / "extra.json").write_text("{}")
    with pytest.raises(IntegrityError, match=r"it has extra\.json, which is not pinned"):
        check_world(rel, tmp_path / "more" / "w")
    with pytest.raises(IntegrityError, match="not a world folder"):
        check_world(rel, tmp_path / "missing")


# ----------------------------------------------------------------------------------- strict parsing
MANIFEST_EDITS = {
    "format 1.x": (lambda m: m.update(format_version="1.x"), r"format_version '1\.x' is not 'MAJOR\.MINOR'"),
    "format trailing newline": (lambda m: m.update(format_version="1.0\n"), r"format_version '1\.0\\n' is not"),
    "format leading zero": (lambda m: m.update(format_version="01.0"), r"format_version '01\.0' is not"),
    "format non-ASCII digit": (lambda m: m.update(format_version="\u0661.0"), r"format_version .* is not 'MAJOR\.MINOR'"),
    "format as a number": (lambda m: m.update(format_version=1.0), r"format_version 1\.0 is not 'MAJOR\.MINOR'"),
    "version trailing newline": (lambda m: m.update(dataset_version="1.0.0\n"), r"invalid manifest .*dataset_version must be semver"),
    "version leading zero": (lambda m: m.update(dataset_version="1.00.0"), r"invalid manifest .*dataset_version"),
    "version non-ASCII digit": (lambda m: m.update(dataset_version="1.\u0660.0"), r"invalid manifest .*dataset_version"),
    "rows as text": (lambda m: m.update(rows_in=str(m["rows_in"])), r"invalid manifest .*rows_in"),
    "bytes as a float": (lambda m: m["files"][0].update(bytes=float(m["files"][0]["bytes"])), r"invalid manifest .*bytes"),
    "NUL in a path": (lambda m: m["files"].append({**m["files"][0], "path": "data/x\x00.parquet"}), r"invalid manifest .*path must be relative"),
    "empty path segment": (lambda m: m["files"].append({**m["files"][0], "path": "data//x.parquet"}), r"invalid manifest .*path must be relative"),
    "dot segment": (lambda m: m["files"].append({**m["files"][0], "path": "data/./x.parquet"}), r"invalid manifest .*path must be relative"),
}


@pytest.mark.parametrize("what", list(MANIFEST_EDITS))
def test_verify_refuses_lenient_manifest_values(release, capsys, what):
    edit, pattern = MANIFEST_EDITS[what]
    m = read_manifest(release)
    edit(m)
    write_manifest(release, m)
    _verify_fails(release, capsys, pattern)


@pytest.mark.parametrize("depth", [200, 100_000])
def test_a_deeply_nested_manifest_is_one_line(release, capsys, depth):
    m = read_manifest(release)
    m["stats"]["deep"] = "@@"
    nested = "[" * depth + "]" * depth
    (release / "manifest.json").write_text(json.dumps(m).replace('"@@"', nested))
    _verify_fails(release, capsys, r"manifest\.json: JSON nested deeper than 64 levels")


def test_a_manifest_key_given_twice_is_refused(release, capsys):
    text = (release / "manifest.json").read_text()
    (release / "manifest.json").write_text(text.replace('"dataset_version": "1.0.0"', '"dataset_version": "1.0.0", "dataset_version": "9.9.9"', 1))
    _verify_fails(release, capsys, r"key 'dataset_version' is given twice")


def test_an_oversized_manifest_is_refused_before_it_is_read(release, capsys, monkeypatch):
    import genco_data.release as release_module

    monkeypatch.setattr(release_module, "MAX_MANIFEST_BYTES", 100)
    _verify_fails(release, capsys, r"manifest\.json: [\d,]+ bytes is over the 100-byte limit")


@pytest.mark.parametrize("version", ["1.0.0\n", "01.0.0", "1.0.\u0661", "1.0", " 1.0.0"])
def test_build_refuses_a_lenient_version_at_once_with_one_line(built, tmp_path, capsys, version):
    src = tmp_path / "src"
    write_parquet(make_impressions(60, seed=1), src / "a.parquet")
    out = tmp_path / "rel"
    with pytest.raises(InvalidInputError, match="version must be semver X.Y.Z"):
        build_release(BuildConfig(sources=[src], out=out, version=version, test_start_day=TSD), progress=False)
    assert main(["build", str(src), "--out", str(out), "--version", version, "--test-start-day", TSD.isoformat(), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "version must be semver" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".rel*tmp*"))


def test_card_options_are_checked_before_the_build(tmp_path):
    src = tmp_path / "src"
    write_parquet(make_impressions(60, seed=1), src / "a.parquet")
    with pytest.raises(InvalidInputError, match="repo must be ORG/NAME"):
        build_release(BuildConfig(sources=[src], out=tmp_path / "rel", version="1.0.0", test_start_day=TSD), progress=False,
                      card=CardOptions(repo_id="a/b\n"))
    assert not (tmp_path / "rel").exists()


# ----------------------------------------------------------------- paths the filesystem cannot take
BAD_PATHS = {
    "a name too long": lambda tmp: str(tmp / ("x" * 300)),
    "under a regular file": lambda tmp: str(tmp / "afile" / "sub"),
    "a file, not a folder": lambda tmp: str(tmp / "afile"),
}
VERBS = {
    "verify": lambda p, rel: ["verify", p],
    "card": lambda p, rel: ["card", p, "--quiet"],
    "publish": lambda p, rel: ["publish", p, "--repo", "a/b", "--dry-run", "--quiet"],
    "leaderboard verify": lambda p, rel: ["leaderboard", "verify", p, "--data", str(rel), "--entries", p + "-entries"],
    "leaderboard verify --entries": lambda p, rel: ["leaderboard", "verify", str(rel / "manifest.json"), "--data", str(rel), "--entries", p],
    "leaderboard render --entries": lambda p, rel: ["leaderboard", "render", "--entries", p, "--out", p + ".md"],
    "leaderboard render --out": lambda p, rel: ["leaderboard", "render", "--entries", str(ROOT / "cards" / "leaderboard"), "--out", p + ".md"],
    "leaderboard check": lambda p, rel: ["leaderboard", "check", "--entries", p, "--board", ""],
    "pull --out": lambda p, rel: ["pull", "a/b", "--revision", "v1.0.0", "--out", p, "--quiet"],
}


#: (bad path, verb) — all but "render --out <file>.md", which names a valid board beside a file
PATH_CASES = [(b, v) for b in BAD_PATHS for v in VERBS if (b, v) != ("a file, not a folder", "leaderboard render --out")]


@pytest.mark.parametrize("bad,verb", PATH_CASES)
def test_paths_the_filesystem_cannot_take_are_one_line(built, tmp_path, capsys, monkeypatch, verb, bad):
    from genco_data import hub

    monkeypatch.setattr(hub, "_default_api", lambda: pytest.fail("the Hub must not be contacted"))
    (tmp_path / "afile").write_text("I am a file")
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(VERBS[verb](BAD_PATHS[bad](tmp_path), built)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco ") and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == before  # nothing written
