"""Model selection by a significant improvement (``min_delta_se``): a later epoch replaces the selected one only when
its validation score is higher by more than ``min_delta_se`` standard errors of the difference; the reference
protocol sets it, ``--paper-defaults`` and runs from before the field mean 0 (the plain maximum). The score's
standard error comes from the evaluator's per-component delta-method errors.

Uses test_train's session release (4 k train rows over 33 days + 1 k test rows)."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from genco_data.cli import main as genco  # noqa: E402
from genco_data.errors import InvalidInputError  # noqa: E402
from reference_model import validation  # noqa: E402
from reference_model.checkpoint import read_run_config  # noqa: E402
from reference_model.train import train  # noqa: E402
from reference_model.train_config import PROTOCOLS, TrainConfig  # noqa: E402

from test_train import release  # noqa: E402,F401  (the session fixture)


def _rec(epoch: int, score: float, se: float | None) -> dict:
    return {"epoch": epoch, "score": score, "score_se": se}


def test_a_later_epoch_is_selected_only_when_it_beats_the_best_by_the_margin():
    stopper = validation.EarlyStopping(0, min_delta_se=2.0)
    stopper.update(_rec(1, 0.00, 0.03))
    # +0.08 against a margin of 2·√(0.03² + 0.03²) = 0.085: not significant, epoch 1 stays selected
    assert not stopper.update(_rec(2, 0.08, 0.03)) and stopper.best["epoch"] == 1
    # +0.09 > 0.085: epoch 3 is selected; later epochs are compared with it, not with epoch 1
    assert stopper.update(_rec(3, 0.09, 0.03)) and stopper.best["epoch"] == 3
    assert not stopper.update(_rec(4, 0.16, 0.03)) and stopper.best["epoch"] == 3
    assert stopper.to_dict()["min_delta_se"] == 2.0 and stopper.to_dict()["best_epoch"] == 3


def test_without_min_delta_se_the_plain_maximum_is_selected():
    stopper = validation.EarlyStopping(0)
    for e, s in enumerate([0.0, 0.08, 0.05], start=1):
        stopper.update(_rec(e, s, 0.03))
    assert stopper.best["epoch"] == 2


def test_patience_counts_epochs_without_a_significant_improvement():
    stopper = validation.EarlyStopping(2, min_delta_se=1.0, min_epochs=3)
    for e, s in [(1, 0.5), (2, 0.4), (3, 0.0), (4, 0.01)]:
        stopper.update(_rec(e, s, 0.05))
        assert not stopper.stop
    stopper.update(_rec(5, 0.06, 0.05))  # +0.06 < 1·√2·0.05 = 0.071 above epoch 3: no improvement, patience runs out
    assert stopper.stop and stopper.best["epoch"] == 3


def test_a_record_without_a_standard_error_compares_plainly():
    stopper = validation.EarlyStopping(0, min_delta_se=3.0)
    stopper.update(_rec(1, 0.0, None))
    assert stopper.update(_rec(2, 0.01, float("nan"))) and stopper.best["epoch"] == 2


def test_the_score_se_combines_the_component_errors():
    rec = {"score": 0.0, "components": {"a": {"lift": 0.1, "lift_se": 0.3}, "b": {"lift": -0.1, "lift_se": 0.4},
                                         "c": {"lift": None, "lift_se": None}}}
    assert validation.score_se(rec) == pytest.approx(math.sqrt(0.3 ** 2 + 0.4 ** 2) / 2)
    rec["components"]["b"]["lift_se"] = None
    assert math.isnan(validation.score_se(rec))


def test_the_reference_protocol_selects_by_significance_the_paper_does_not_and_old_runs_read_0():
    assert PROTOCOLS["reference"]["min_delta_se"] == 2.0 and PROTOCOLS["paper"]["min_delta_se"] == 0
    assert PROTOCOLS["reference"]["min_epochs"] == 2
    assert TrainConfig(data="rel").min_delta_se == PROTOCOLS["reference"]["min_delta_se"]
    assert TrainConfig(data="rel", min_delta_se=1.5).min_delta_se == 1.5
    assert TrainConfig.from_dict({"data": "rel", "protocol": "reference"}).min_delta_se == 0.0  # a run from before the field


def test_a_run_records_the_margin_and_each_epochs_standard_error(release, tmp_path):
    out = tmp_path / "r"
    code = genco(["train", "--data", str(release), "--out", str(out), "--max-rows", "2048", "--batch-size", "256",
                  "--epochs", "2", "--min-epochs", "0", "--min-delta-se", "1.5", "--quiet"])
    assert code == 0
    cfg = read_run_config(out)
    assert cfg["train"]["min_delta_se"] == 1.5 and cfg["validation"]["min_delta_se"] == 1.5
    for rec in cfg["validation"]["curve"]:
        assert rec["score_se"] == pytest.approx(validation.score_se(rec)) and rec["score_se"] > 0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "2"])
def test_a_bad_min_delta_se_is_refused(bad):
    with pytest.raises(InvalidInputError, match="--min-delta-se must be a number >= 0"):
        TrainConfig(data="rel", min_delta_se=bad)


def test_the_cli_refuses_a_negative_min_delta_se_in_one_line(release, tmp_path, capsys):
    code = genco(["train", "--data", str(release), "--out", str(tmp_path / "r"), "--min-delta-se", "-1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--min-delta-se must be a number >= 0" in err
    assert not (tmp_path / "r" / "config.json").exists()
