"""Disk space: a build that cannot fit is refused before it writes anything, and a disk that fills mid-build is
one line (exit 2), with the temporary folder removed — no worker traceback."""
from __future__ import annotations

import errno
from collections import namedtuple
from pathlib import Path

import pytest

import genco_data.build.builder as builder_module
import genco_data.build.disk as disk_module
from factories import TSD, make_impressions, write_jsonl, write_parquet
from genco_data.build.builder import SPILL_DIR, build_release
from genco_data.build.disk import ID_RECORD_BYTES, space_need
from genco_data.build.plan import BuildConfig, _plan
from genco_data.cli import main
from genco_data.errors import BuildError

Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("raw")
    for k in range(2):
        write_parquet(make_impressions(3000, seed=k, first_id=3000 * k), src / f"part-{k}.parquet", row_group_size=500)
    return src


def _cfg(sources, out: Path, **kw) -> BuildConfig:
    return BuildConfig(sources=[Path(s) for s in sources], out=out, version="1.0.0", test_start_day=TSD, **kw)


def _free(monkeypatch, free: int) -> None:
    monkeypatch.setattr(disk_module.shutil, "disk_usage", lambda path: Usage(10 * free + 1, 9 * free, free))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".rel.lock")


def test_the_spill_estimate_is_a_close_lower_bound_of_the_real_spill(raw, tmp_path, monkeypatch):
    cfg = _cfg([raw], tmp_path / "rel", workers=1)
    need = space_need(_plan(cfg), cfg)
    measured = {}
    real = builder_module._write_sample

    def measure_then_sample(tmp, *args):  # runs while the spill is still on disk
        measured["spill"] = sum(p.stat().st_size for p in (Path(tmp) / SPILL_DIR).rglob("*") if p.is_file())
        return real(tmp, *args)

    monkeypatch.setattr(builder_module, "_write_sample", measure_then_sample)
    build_release(cfg, progress=False)
    assert need.spill > 6000 * ID_RECORD_BYTES
    assert need.spill <= measured["spill"] <= 1.5 * need.spill
    release = sum(p.stat().st_size for p in (tmp_path / "rel").rglob("*") if p.is_file())
    assert need.release > 0 and 0.25 < release / need.release < 4  # a guess, but of the right size


def test_a_build_that_cannot_fit_is_refused_before_it_writes(raw, tmp_path, monkeypatch, capsys):
    _free(monkeypatch, 50_000)
    code = main(["build", str(raw), "--out", str(tmp_path / "rel"), "--version", "1.0.0", "--test-start-day",
                 TSD.isoformat(), "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"genco build: error: {tmp_path}: 0.1 MB free, but the build's spill alone needs at least ")
    assert "choose an --out on a bigger disk" in err
    assert _leftovers(tmp_path) == []  # nothing written, not even the temporary folder


def test_enough_space_builds(raw, tmp_path, monkeypatch):
    cfg = _cfg([raw], tmp_path / "rel", workers=1)
    need = space_need(_plan(cfg), cfg)
    _free(monkeypatch, need.spill + 1)  # the refusal is on the spill alone: it only refuses a sure failure
    assert build_release(cfg, progress=False).rows_rejected == 0


def test_text_inputs_have_no_spill_estimate_and_are_not_refused(tmp_path, monkeypatch):
    src = tmp_path / "raw"
    write_jsonl(make_impressions(500, seed=2), src / "part-0.jsonl")
    cfg = _cfg([src], tmp_path / "rel", workers=1)
    need = space_need(_plan(cfg), cfg)
    assert (need.spill, need.release) == (0, 0)
    _free(monkeypatch, 1)
    build_release(cfg, progress=False)
    assert (tmp_path / "rel" / "manifest.json").is_file()


def test_a_compressed_spill_is_not_estimated(raw, tmp_path):
    cfg = _cfg([raw], tmp_path / "rel", spill_compression="lz4")
    assert space_need(_plan(cfg), cfg).spill == 0


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_disk_that_fills_mid_build_is_one_line_and_leaves_no_temporary_folder(raw, tmp_path, monkeypatch, capsys,
                                                                                  code):
    def full(*args, **kwargs):
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(builder_module, "_write_sample", full)
    rc = main(["build", str(raw), "--out", str(tmp_path / "rel"), "--version", "1.0.0", "--test-start-day",
               TSD.isoformat(), "--workers", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"genco build: error: {tmp_path}: no space left on the device while building rel (the build "
                          "needs about ")
    assert "was free at the start); the temporary folder was removed" in err
    assert _leftovers(tmp_path) == []


def test_a_full_disk_behind_another_exception_is_recognised(raw, tmp_path, monkeypatch):
    def wrapped(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("the writer failed") from exc

    monkeypatch.setattr(builder_module, "_write_sample", wrapped)
    with pytest.raises(BuildError, match="no space left on the device"):
        build_release(_cfg([raw], tmp_path / "rel", workers=1), progress=False)


def test_other_os_errors_are_not_called_a_full_disk(raw, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(builder_module, "_write_sample", denied)
    with pytest.raises(PermissionError):
        build_release(_cfg([raw], tmp_path / "rel", workers=1), progress=False)
    assert _leftovers(tmp_path) == []
