"""Issue #15 (3): the card says where the truth is — kept by the maintainer, pinned by the manifest, scored with
``genco leaderboard verify --world``, and anyone's own worlds come from ``genco synth --seed N`` — and the rules
page says who gets what."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from factories import TSD, make_impressions, write_parquet, write_world
from genco_data import BuildConfig, build_release
from genco_data.leaderboard.board import HEADER

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ("The ground truth (`world/`) is kept by the maintainer; the published `manifest.json` pins its sha256; "
         "entries are scored against it with `genco leaderboard verify --world`; make your own worlds with "
         "`genco synth --seed N`.")
#: What the card said before: the truth travels with the release.
OLD_CLAIMS = ("ground truth in `world/`", "which the release carries in `world/`", "the true CTR from `world/`")


def _card(tmp_path: Path, synthetic: bool) -> str:
    src = tmp_path / "src"
    write_parquet(make_impressions(300, seed=2), src / "part-0.parquet")
    if synthetic:
        write_world(src / "world", TSD)
    out = tmp_path / "rel"
    build_release(BuildConfig(sources=[src], out=out, version="1.0.0", sample_rows=40,
                              test_start_day=None if synthetic else TSD), progress=False)
    return (out / "README.md").read_text(encoding="utf-8")


def _source_row(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("| source |"))


def test_a_synthetic_card_says_the_maintainer_keeps_the_truth(tmp_path):
    text = _card(tmp_path, synthetic=True)
    assert text.count(TRUTH) == 1
    assert not [c for c in OLD_CLAIMS if c in text]
    assert "kept by the maintainer" in _source_row(text) and "manifest.json" in _source_row(text)
    provenance = text.split("## Provenance", 1)[1].split("\n## ", 1)[0]
    assert "kept by the maintainer" in provenance and "--include-world" in provenance


def test_a_raw_card_claims_no_truth(tmp_path):
    text = _card(tmp_path, synthetic=False)
    assert TRUTH not in text and "kept by the maintainer" not in text
    assert _source_row(text).startswith("| source | raw exports")


def test_the_default_card_says_where_the_truth_is():
    text = (ROOT / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert TRUTH in text and not [c for c in OLD_CLAIMS if c in text]


def test_the_rules_say_who_gets_what():
    rules = re.sub(r"\s+", " ", (ROOT / "cards" / "LEADERBOARD_RULES.md").read_text(encoding="utf-8"))
    assert "Participants get the logs; the maintainer keeps the world." in rules
    assert "published without its ground truth (`world/`)" in rules and "genco leaderboard verify --world PATH" in rules
    assert "`genco synth --seed N` (any seed but the release's)" in rules
    board = " ".join(HEADER)
    assert "the maintainer keeps" in board and "LEADERBOARD_RULES.md" in board
