"""benchmarks/build_budget.py: a build's CPU split into its steps beside the encode floor (issue #13)."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import build_budget  # noqa: E402
from scale import synth  # noqa: E402


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("budget") / "raw"
    return folder, synth(folder, 6000)


def test_every_step_is_found_in_a_real_builds_profile_and_they_fit_in_its_cpu(raw, tmp_path):
    folder, tsd = raw
    cpu, stats, rows = build_budget.build(folder, tmp_path / "rel", dt.date.fromisoformat(tsd), profile=True)
    steps = build_budget.split_steps(stats)
    assert rows == 6000
    assert set(steps) == set(build_budget.STEPS)
    missing = [name for name, s in steps.items() if s <= 0]
    assert not missing, f"steps not found in the profile (a function renamed?): {missing}"
    assert sum(steps.values()) <= cpu * 1.05  # each function counted once, none twice through a nested call
    assert not (tmp_path / "rel").exists()  # the release is removed after it is measured


def test_the_floor_reads_and_writes_every_raw_row(raw, tmp_path):
    folder, _ = raw
    f = build_budget.floor(folder, tmp_path / "floor.parquet")
    assert f["rows"] == 6000
    assert f["read_s"] > 0 and f["write_s"] > 0
    assert f["cpu_s"] == pytest.approx(f["read_s"] + f["write_s"])


def test_the_script_prints_the_ratio_and_the_ceiling(raw):
    folder, tsd = raw
    out = subprocess.run([sys.executable, str(BENCH / "build_budget.py"), "--raw", str(folder), "--test-start-day", tsd],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "6,000 rows" in out.stdout
    assert "build / floor per CPU-s = " in out.stdout
    assert "ceiling if validation, statistics and sample cost nothing: " in out.stdout


def test_raw_without_its_test_start_day_is_refused_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "build_budget.py"), "--raw", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--raw needs --test-start-day" in out.stderr
    assert "Traceback" not in out.stderr
