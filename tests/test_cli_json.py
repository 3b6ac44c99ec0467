"""`--json` means JSON, always (issue #17, Build 2): every verb's failure is the envelope
{"error", "kind", "exit_code"} on stdout with a non-zero exit, argument errors included; the README's
"JSON output" section is the generated one, and its keys are those of real runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from genco_data import json_output
from genco_data.cli import main

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = ("regenerate it: python -c \"from genco_data.json_output import write_readme_section; "
              "write_readme_section('README.md')\"")


def _run(capsys, argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_the_readme_section_is_the_generated_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert json_output.START in text and json_output.END in text, REGENERATE
    section = json_output.START + text.split(json_output.START, 1)[1].split(json_output.END, 1)[0] + json_output.END
    assert section == json_output.readme_section(), REGENERATE


@pytest.mark.parametrize("argv", [
    ["evaluate", "--json"],                                   # a required option missing
    ["bogus", "--json"],                                      # an unknown verb
    ["evaluate", "p.parquet", "--data", "x", "--bootstrap", "many", "--json"],  # a bad type
    ["leaderboard", "render", "--bogus", "--json"],           # an unknown option of a sub-action
    ["train", "--json", "--epochs", "x"],                     # a reference verb (registered lazily)
])
def test_usage_errors_under_json_are_the_envelope(capsys, argv):
    code, out = _run(capsys, argv)
    assert code == 2 and out["exit_code"] == 2 and out["kind"] == "usage" and out["error"] and "\n" not in out["error"]


def test_usage_errors_without_json_keep_argparse_text(capsys):
    assert main(["evaluate"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.startswith("usage: genco evaluate") and "required: --data" in cap.err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny synthetic release made through the CLI (its --json outputs kept), and a predictions file."""
    root = tmp_path_factory.mktemp("cli_json")
    outputs = {}
    for verb, argv in (("synth", ["synth", "--out", str(root / "raw"), "--train-rows", "400", "--test-rows", "300", "--seed", "1"]),
                       ("build", ["build", str(root / "raw"), "--out", str(root / "rel"), "--version", "1.0.0"])):
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main([*argv, "--json", "--quiet"]) == 0
        outputs[verb] = json.loads(buf.getvalue())
    test = pq.read_table(sorted((root / "rel" / "data" / "impressions").glob("test-*.parquet"))[0])
    import pyarrow as pa
    import pyarrow.compute as pc

    from genco_data.format.components import COMPONENTS

    cols = {"impression_id": test.column("impression_id")}
    for c in COMPONENTS:
        n = pc.fill_null(pc.list_value_length(test.column(f"{c}_candidates")), 0).to_numpy()
        cols[f"{c}_choice"] = pa.array(np.zeros(len(n), np.int16), mask=n == 0, type=pa.int16())
    pq.write_table(pa.table(cols), root / "preds.parquet")
    return root, outputs


def test_documented_keys_are_the_keys_of_real_runs(tiny, capsys, tmp_path):
    root, outputs = tiny
    rel = root / "rel"
    runs = dict(outputs)
    for verb, argv in (("evaluate", ["evaluate", str(root / "preds.parquet"), "--data", str(rel)]),
                       ("card", ["card", str(rel), "--repo", "org/name"]),  # publish refuses a card naming another repo
                       ("leaderboard render", ["leaderboard", "render", "--html", str(tmp_path / "space")]),
                       ("publish", ["publish", str(rel), "--repo", "org/name", "--dry-run"])):
        code, runs[verb] = _run(capsys, [*argv, "--json", "--quiet"])
        assert code == 0, (verb, runs[verb])
    from genco_data.build.stats import release_stats
    from genco_data.release import verify_release

    runs["verify"] = verify_release(rel)
    runs["stats"] = release_stats(rel)
    for verb, payload in runs.items():
        assert set(payload) == json_output.documented_keys(verb), verb
    cell = runs["evaluate"]["combination"]
    assert set(cell) | {"buckets"} == json_output.documented_keys("evaluate (cell)")
    assert set(cell["calibrated_sctr"]) == json_output.documented_keys("evaluate (estimate)")
    assert {v.verb for v in json_output.VERBS if v.live} <= set(runs)


def test_every_verb_fails_as_json(tiny, capsys, tmp_path):
    root, _ = tiny
    missing = str(tmp_path / "missing")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    cases = [
        ["synth", "--out", str(tmp_path / "s"), "--train-rows", "-5"],
        ["build", missing, "--out", str(tmp_path / "b"), "--version", "1.0.0"],
        ["verify", missing],
        ["stats", missing],
        ["evaluate", str(tmp_path / "bad.parquet"), "--data", str(root / "rel")],
        ["leaderboard", "verify", missing, "--data", str(root / "rel")],
        ["leaderboard", "render", "--entries", missing, "--html", str(tmp_path / "h")],
        ["card", missing],
        ["publish", str(root / "rel"), "--repo", "not a repo", "--dry-run"],
        ["pull", "not a repo", "--revision", "v1.0.0", "--out", str(tmp_path / "p")],
        ["reproduce", "--data", str(root / "rel"), "--out", str(tmp_path / "r"), "--seeds", "0"],
        ["predict", "--model", missing, "--data", str(root / "rel"), "--out", str(tmp_path / "p.parquet")],
        ["train", "--data", missing, "--out", str(tmp_path / "t")],
        ["demo", "--out", str(tmp_path / "bad.parquet")],
    ]
    for argv in cases:
        code, out = _run(capsys, [*argv, "--json", "--quiet"])
        assert code == 2 and set(out) == {"error", "kind", "exit_code"} and out["exit_code"] == 2, argv
        assert out["kind"] not in ("usage", "internal") and "\n" not in out["error"], (argv, out)
