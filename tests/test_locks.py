"""genco_data.locks: a second writer of the same target is refused at once, naming the holder; a dead holder
leaves no stale lock."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from genco_data.errors import LockedError
from genco_data.locks import lock_path, writer_lock

ROOT = Path(__file__).resolve().parents[1]


def _hold_in_child(target: Path, seconds: float) -> subprocess.Popen:
    code = (
        "import sys, time\n"
        "from genco_data.locks import writer_lock\n"
        f"with writer_lock({str(target)!r}, 'genco build'):\n"
        "    print('held', flush=True)\n"
        f"    time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    target = tmp_path / "release"
    proc = _hold_in_child(target, 30)
    try:
        with pytest.raises(LockedError, match=rf"release: another writer holds it \(genco build, pid {proc.pid} on "):
            with writer_lock(target, "genco build"):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    target = tmp_path / "release"
    proc = _hold_in_child(target, 30)
    proc.kill()
    proc.wait()
    with writer_lock(target, "genco build") as path:
        assert path == lock_path(target) and path.is_file()


def test_the_lock_is_reusable_in_one_process_after_release(tmp_path):
    target = tmp_path / "entries"
    with writer_lock(target, "first"):
        pass
    t0 = time.monotonic()
    with writer_lock(target, "second"):
        assert time.monotonic() - t0 < 1.0


def test_a_lock_under_a_regular_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LockedError, match=r"cannot create its lock file"):
        with writer_lock(blocker / "release", "genco build"):
            pass
