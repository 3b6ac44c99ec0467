"""Progress bars draw on a terminal and nowhere else: on a pipe or a log a failure is exactly one line."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from factories import TSD, make_impressions, write_parquet
from genco_data import BuildConfig, build_release

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("progress")
    table = make_impressions(2000, seed=3)
    write_parquet(table, base / "raw" / "part.parquet")
    out = base / "rel"
    build_release(BuildConfig(sources=[base / "raw"], out=out, version="1.0.0", test_start_day=TSD), progress=False)
    return out


def _verify_on_a_terminal(release: Path, *extra: str) -> str:
    """Run ``genco verify`` with stderr on a pseudo-terminal; return what the terminal received."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real terminal has a size
    env = {k: v for k, v in os.environ.items() if k != "GENCO_PROGRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "genco_data.cli", "verify", str(release), *extra],
                            stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_verify_draws_a_bar_on_a_terminal(release):
    assert "verify" in _verify_on_a_terminal(release)


def test_quiet_hides_the_bar_on_a_terminal(release):
    assert _verify_on_a_terminal(release, "--quiet") == ""


def test_no_bar_on_a_pipe_so_a_failure_is_one_line(release, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(release), str(broken)], check=True)
    shard = next((broken / "data" / "impressions").glob("train-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if k != "GENCO_PROGRESS"}
    out = subprocess.run([sys.executable, "-m", "genco_data.cli", "verify", str(broken)], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("genco verify: error: "), out.stderr


def test_genco_progress_forces_the_bar_on_a_pipe(release):
    out = subprocess.run([sys.executable, "-m", "genco_data.cli", "verify", str(release)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "GENCO_PROGRESS": "1"})
    assert out.returncode == 0 and "verify" in out.stderr
