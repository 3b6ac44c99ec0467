"""benchmarks/anchor_gap.py: the headroom a submission loses against the fixed-effect logit anchor, per component."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genco_data.format.components import COMPONENTS
from tests.lb_factories import simulated_release

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anchor_gap  # noqa: E402


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return simulated_release(tmp_path_factory.mktemp("gap"), train_rows=6000, test_rows=1500)


def _write(folder: Path, name: str, ids: pa.Array, choices: np.ndarray) -> None:
    folder.mkdir(exist_ok=True)
    cols = {"impression_id": ids}
    for j, c in enumerate(COMPONENTS):
        cols[f"{c}_choice"] = pa.array(np.where(choices[:, j] < 0, None, choices[:, j]), pa.int16())
    pq.write_table(pa.table(cols), folder / f"{name}.parquet")


def _anchor_and_test(release: Path) -> tuple[np.ndarray, pa.Table]:
    train, test = anchor_gap._split(release, "train"), anchor_gap._split(release, "test")
    return anchor_gap._anchor_choices(anchor_gap.split_last_days(train, 2)[0], test), test


def test_the_anchors_own_choices_lose_nothing_and_agree_everywhere(release, tmp_path):
    anchor, test = _anchor_and_test(release)
    _write(tmp_path / "sub", "seed0", test["impression_id"], anchor)
    r = anchor_gap.measure(release, tmp_path / "sub", validation_days=2)
    row = r["seeds"]["seed0"]
    assert row["captured"] == pytest.approx(r["anchor"])
    for c in COMPONENTS:
        assert row["components"][c]["loss"] == pytest.approx(0.0, abs=1e-9)
        assert row["components"][c]["agreement"] == 1.0


def test_a_policy_differing_on_one_component_loses_only_there(release, tmp_path):
    anchor, test = _anchor_and_test(release)
    other = anchor.copy()
    j = COMPONENTS.index("title")
    other[:, j] = np.where(anchor[:, j] >= 0, 0, -1)  # the first candidate instead of the anchor's
    _write(tmp_path / "sub", "seed0", test["impression_id"], other)
    row = anchor_gap.measure(release, tmp_path / "sub", validation_days=2)["seeds"]["seed0"]
    assert row["components"]["title"]["agreement"] < 1.0
    for c in COMPONENTS:
        if c != "title":
            assert row["components"][c]["loss"] == pytest.approx(0.0, abs=1e-9)


def test_predictions_of_another_split_are_refused_naming_the_file(release, tmp_path):
    anchor, test = _anchor_and_test(release)
    ids = pa.array([f"x{i}" for i in range(len(test))])
    _write(tmp_path / "sub", "seed0", ids, anchor)
    with pytest.raises(SystemExit, match=r"seed0\.parquet: column 'impression_id': every test impression must appear exactly once"):
        anchor_gap.measure(release, tmp_path / "sub", validation_days=2)


def test_holding_out_every_train_day_is_refused_naming_the_release(release, tmp_path):
    with pytest.raises(SystemExit, match=r"the train split has \d+ day\(s\); --validation-days 999 leaves none to fit on"):
        anchor_gap.measure(release, tmp_path, validation_days=999)
