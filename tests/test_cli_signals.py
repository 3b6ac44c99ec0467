"""A build stopped by SIGTERM or SIGHUP (``kill``, ``timeout``, Slurm, Kubernetes, a closed terminal) cleans up as
on Ctrl-C: one line, exit 128 + the signal's number, no temporary folder, no worker process left running.

Python's default for both signals kills the process on the spot, which left the build's temporary folder (the
spill: GBs at scale) and its pool's worker processes behind, still running."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factories import TSD, make_impressions, write_parquet
from genco_data import cli

ROOT = Path(__file__).resolve().parents[1]

# The build runs in a child process with a pool even for small data and a pause after each task's result (in the
# build process, not the workers), so the signal lands while the workers are alive and a pass is half done.
_CHILD = """
import sys, time
import genco_data.build.engines.local as local_engine
import genco_data.build.ingest as ingest
local_engine.PARALLEL_MIN_ROWS = 0
ingest.TASK_ROWS = 400
real_map = local_engine.LocalEngine.map
def slow_map(self, fn, jobs, *args):
    for result in real_map(self, fn, jobs, *args):
        time.sleep(0.25)
        yield result
local_engine.LocalEngine.map = slow_map
from genco_data.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("raw")
    t = make_impressions(4000, seed=3)
    write_parquet(t, src / "part-0.parquet", row_group_size=400)
    return src


def _stop_a_build(raw: Path, out: Path, signum: int, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-c", _CHILD, "build", str(raw), "--out", str(out), "--version", "1.0.0",
           "--test-start-day", TSD.isoformat(), "--workers", "2", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not list(out.parent.glob(f".{out.name}.tmp-*")):  # the build has started writing
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the build never created its temporary folder"
        time.sleep(0.05)
    time.sleep(1.0)  # into the first pass: the pool's workers are up
    assert child.poll() is None, "the build finished before it could be stopped; slow it down more"
    t0 = time.monotonic()
    child.send_signal(signum)
    # The workers inherit the build's stdout and stderr: the pipes close only once every process of the build has
    # exited, so communicate() returning proves none was left running.
    stdout, stderr = child.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, child.returncode, stdout, stderr), time.monotonic() - t0


@pytest.mark.parametrize("signum, name", [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")])
def test_a_build_stopped_by_a_termination_signal_cleans_up_and_says_so(raw, tmp_path, signum, name):
    out = tmp_path / "rel"
    before = {p: p.read_bytes() for p in raw.iterdir()}
    done, seconds = _stop_a_build(raw, out, signum)
    assert done.returncode == 128 + signum
    assert done.stderr == f"genco build: terminated ({name})\n"
    assert seconds < 30
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rel.tmp-")] == []
    assert {p: p.read_bytes() for p in raw.iterdir()} == before  # the input is untouched
    # and the same build, rerun, completes
    rerun = subprocess.run([sys.executable, "-m", "genco_data.cli", "build", str(raw), "--out", str(out), "--version",
                            "1.0.0", "--test-start-day", TSD.isoformat(), "--workers", "1", "--quiet"],
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "manifest.json").is_file()


def test_json_mode_reports_a_termination_in_the_envelope(raw, tmp_path):
    done, _ = _stop_a_build(raw, tmp_path / "rel", signal.SIGTERM, "--json")
    assert done.returncode == 143
    assert json.loads(done.stdout) == {"error": "terminated (SIGTERM)", "kind": "Terminated", "exit_code": 143}


def test_the_handlers_are_restored_after_a_verb_and_an_ignored_signal_stays_ignored(monkeypatch):
    seen = {}

    def verb(args):
        seen["term"] = signal.getsignal(signal.SIGTERM)
        seen["hup"] = signal.getsignal(signal.SIGHUP)

    monkeypatch.setitem(cli.VERBS, "verify", verb)
    previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert cli.main(["verify", "somewhere"]) == 0
        assert seen["term"] is cli._raise_terminated  # the verb ran with the handler
        assert seen["hup"] is signal.SIG_IGN  # nohup's choice is kept
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # and put back afterwards
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous_hup)
        signal.signal(signal.SIGTERM, previous_term)


def test_a_termination_inside_a_verb_is_one_line_and_its_exit_status(monkeypatch, capsys):
    def verb(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not interrupt the verb")

    monkeypatch.setitem(cli.VERBS, "verify", verb)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process
    try:
        t0 = time.monotonic()
        assert cli.main(["verify", "somewhere"]) == 143
        assert time.monotonic() - t0 < 4
        assert capsys.readouterr().err == "genco verify: terminated (SIGTERM)\n"
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the one-shot's SIG_IGN is undone too
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_keeps_its_line_and_exit_status(monkeypatch, capsys):
    def verb(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.VERBS, "verify", verb)
    assert cli.main(["verify", "somewhere"]) == 130
    assert capsys.readouterr().err == "genco verify: interrupted\n"
