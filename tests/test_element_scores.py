"""benchmarks/element_scores.py: the within-pool agreement of element scores with the planted qualities."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genco_data.format.components import COMPONENTS
from genco_data.release import Release
from tests.lb_factories import simulated_release

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import element_scores  # noqa: E402


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return simulated_release(tmp_path_factory.mktemp("elem"), train_rows=3000, test_rows=1500)


def _scores(release: Path, sign: float) -> Path:
    """A predictions file whose scores are sign * θ of every candidate (no truncation: every candidate scored)."""
    world = np.load(release / "world" / "world.npz")
    test = pa.concat_tables(pq.read_table(f) for f in Release.open(release).data_files("impressions", "test"))
    cols = {"impression_id": test["impression_id"]}
    for j, c in enumerate(COMPONENTS):
        order = np.argsort(world[f"elem{j}_id"])
        ids, theta = world[f"elem{j}_id"][order], world[f"elem{j}_quality"][order]
        cand = test[f"{c}_candidates"].combine_chunks()
        vals = sign * theta[np.searchsorted(ids, cand.values.to_numpy())]
        cols[f"{c}_scores"] = pa.ListArray.from_arrays(cand.offsets, pa.array(vals, pa.float32()), mask=cand.is_null())
    out = release.parent / f"scores{sign:+.0f}.parquet"
    pq.write_table(pa.table(cols), out)
    return out


def test_oracle_scores_agree_fully_and_negated_scores_disagree_fully(release):
    for sign, want in ((1.0, 1.0), (-1.0, -1.0)):
        recs = element_scores.agreement(release, _scores(release, sign), with_logit=False)
        assert [r["component"] for r in recs] == list(COMPONENTS)
        scored = [r for r in recs if r["pairs"] >= element_scores.MIN_PAIRS]
        assert scored, "the small release has pools of >= 2 candidates"
        for r in scored:
            assert r["corr"] == pytest.approx(want, abs=1e-4), r["component"]


def test_exposure_counts_are_the_times_each_element_was_shown(release):
    train = pa.concat_tables(pq.read_table(f) for f in Release.open(release).data_files("impressions", "train"))
    c = COMPONENTS[1]
    ids, counts = element_scores.exposures(train, c)
    rows = train.select([f"{c}_candidates", f"{c}_exposed"]).to_pylist()
    shown = [r[f"{c}_candidates"][r[f"{c}_exposed"]] for r in rows if r[f"{c}_exposed"] is not None]
    want_ids, want_counts = np.unique(np.array(shown, dtype=np.int64), return_counts=True)
    assert np.array_equal(ids, want_ids) and np.array_equal(counts, want_counts)
    assert counts.sum() == len(shown)


def test_predictions_of_another_split_are_refused(release, tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pq.read_table(_scores(release, 1.0)).slice(1), bad)
    with pytest.raises(SystemExit, match="impression ids"):
        element_scores.agreement(release, bad, with_logit=False)
