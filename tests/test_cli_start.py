"""`genco --version` / `genco --help` start fast: they import no heavy library, and the reference model's options
are registered only when one of its verbs is the one asked for (issue #17, Build 1)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pyarrow", "pydantic", "datasets", "torch", "numpy", "pandas", "matplotlib", "huggingface_hub", "tqdm", "yaml",
         "reference_model", "genco_data.format", "genco_data.release")

_PROBE = """
import contextlib, io, json, sys
from genco_data.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
heavy = [m for m in json.loads(sys.stdin.read()) if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy, "out": out.getvalue()}))
"""


def _probe(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], input=json.dumps(HEAVY), capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["evaluate", "--help"], ["card", "--help"],
                                  ["leaderboard", "render", "--help"], ["evaluate", "--json"]])
def test_the_fast_paths_import_nothing_heavy(argv):
    r = _probe(*argv)
    assert r["heavy"] == [], f"genco {' '.join(argv)} imported {r['heavy']}"
    if argv == ["--version"]:
        assert r["code"] == 0 and r["out"].startswith("genco-data ")
    if argv == ["--help"]:
        for verb in ("synth", "build", "evaluate", "leaderboard", "train", "predict", "reproduce", "demo"):
            assert verb in r["out"]
    if argv == ["evaluate", "--json"]:  # a usage error under --json: the envelope, still nothing heavy
        assert r["code"] == 2 and json.loads(r["out"])["kind"] == "usage"


def test_reference_verbs_register_their_options_when_asked_for(capsys):
    pytest.importorskip("torch", reason="the reference model needs torch")
    from genco_data.cli import build_parser, main

    for verb, options in (("train", ("--method", "--epochs")), ("reproduce", ("--quick", "smoke run")), ("predict", ("--model",))):
        with pytest.raises(SystemExit) as exc:
            main([verb, "--help"])
        out = capsys.readouterr().out
        assert exc.value.code == 0 and all(o in out for o in options), verb
    # without the hint, the reference verbs are placeholders: their options are not registered
    placeholder = build_parser("evaluate")._subparsers._group_actions[0].choices["train"]
    assert "--method" not in placeholder.format_help()
