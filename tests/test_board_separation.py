"""benchmarks/board.py: the CI-separation figures of a board, read from its verified entries."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from genco_data.format.components import COMPONENTS
from genco_data.leaderboard.entries import load_entries

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "cards" / "leaderboard"
sys.path.insert(0, str(ROOT / "benchmarks"))
import board  # noqa: E402


@pytest.fixture(scope="module")
def summary() -> dict:
    return board.summarize(COMMITTED, None, "GenCO")


def test_every_committed_entry_is_summarized_with_its_own_headroom(summary):
    entries = load_entries(COMMITTED)
    got = {m: r for s in summary.values() for m, r in s["methods"].items()}
    assert sorted(got) == sorted(e.submission.method for e in entries)
    for e in entries:
        assert got[e.submission.method]["headroom_mean"] == pytest.approx(100 * e.metrics["headroom_captured"].mean)


def test_above_zero_counts_the_intervals_whose_lower_end_is_positive(summary):
    for e in load_entries(COMMITTED):
        row = summary[e.submission.dataset_version]["methods"][e.submission.method]
        expected = [sum(d["components"][c]["lift"]["ci_low"] > 0 for c in COMPONENTS) for d in e.per_seed]
        assert [p["above_0"] for p in row["per_seed"]] == expected


def test_uniform_never_lies_above_its_own_interval(summary):
    for s in summary.values():
        uniform = next(r for m, r in s["methods"].items() if m.startswith("Uniform"))
        assert [p["above_uniform"] for p in uniform["per_seed"]] == [0] * len(uniform["per_seed"])


def test_rows_to_separate_follow_the_standard_error_scaling(summary):
    for s in summary.values():
        test_rows = next(iter(s["methods"].values()))["test_rows"]
        for c, r in s["components"].items():
            if r["true_lift"] > 0:  # the 95 % interval at `rows` has half-width 1.96 · se · sqrt(test_rows / rows)
                assert board.Z95 * r["se"] * (test_rows / r["rows_to_separate"]) ** 0.5 == pytest.approx(r["true_lift"])
            else:
                assert r["rows_to_separate"] is None


def test_an_absent_version_is_one_line(capsys):
    with pytest.raises(SystemExit, match=r"no entry of version 9\.9\.9 in"):
        board.main(["--entries", str(COMMITTED), "--version", "9.9.9"])


def test_orderings_are_paired_differences_with_a_verdict_from_their_interval(summary):
    by = {e.submission.method.split(" (")[0]: e for e in load_entries(COMMITTED)}
    checked = 0
    for s in summary.values():
        for o in s["orderings"]:
            a, b = by[o["above"]].metrics["headroom_captured"].per_seed, by[o["below"]].metrics["headroom_captured"].per_seed
            assert o["diff"] == pytest.approx(100 * sum(x - y for x, y in zip(a, b)) / len(a))
            assert o["ci_low"] <= o["diff"] <= o["ci_high"]
            want = "reproduced" if o["ci_low"] > 0 else "refuted" if o["ci_high"] < 0 else "unresolved"
            assert o["verdict"] == want
            checked += 1
    assert checked >= 10  # every claim of board.PAPER_ORDERINGS whose two methods are on the board


def test_a_deterministic_gap_is_reproduced_and_a_reversed_one_refuted():
    from types import SimpleNamespace as NS
    def entry(method, per_seed):
        return NS(submission=NS(method=method), seeds=[0, 1, 2], metrics={"headroom_captured": NS(per_seed=per_seed)})
    got = {(o["above"], o["below"]): o["verdict"] for o in board.orderings(
        [entry("DCO (x)", [0.2, 0.2, 0.2]), entry("Uniform (x)", [0.0, 0.01, -0.01]), entry("MLP (x)", [-0.3, -0.31, -0.29])])}
    assert got[("DCO", "Uniform")] == "reproduced" and got[("MLP", "Uniform")] == "refuted"
