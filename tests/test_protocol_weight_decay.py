"""``weight_decay`` (ours): an L2 prior on the fused id table only, as the ridge of benchmarks/learnable.py's logit —
the other parameters are never decayed; the value is a protocol setting, recorded in config.json, checked strictly.

Uses test_train's session release (4 k train rows over 33 days + 1 k test rows)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import load_file  # noqa: E402

from genco_data.cli import main as genco  # noqa: E402
from genco_data.errors import InvalidInputError  # noqa: E402
from reference_model.checkpoint import load_run, read_run_config  # noqa: E402
from reference_model.train import _param_groups, train  # noqa: E402
from reference_model.train_config import PROTOCOLS, TrainConfig  # noqa: E402

from test_train import release  # noqa: E402,F401  (the session fixture)


def _weights(run) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def test_weight_decay_shrinks_the_id_table_and_nothing_else(release, tmp_path):
    kw = dict(data=str(release), protocol="paper", optimizer="sgd", lr=1e-2, max_rows=1024, batch_size=256, quiet=True,
              save_every=0, seed=3)
    assert train(TrainConfig(out=str(tmp_path / "a"), weight_decay=0.0, **kw))["steps"] == 4
    assert train(TrainConfig(out=str(tmp_path / "b"), weight_decay=5.0, **kw))["steps"] == 4
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    (table,) = [k for k in a if k.endswith("ids.table.weight")]
    # 4 SGD steps, each multiplying the table by (1 - lr * 5) = 0.95 on top of (nearly) the same gradients
    assert b[table].norm() < 0.9 * a[table].norm()
    # the optimizer's groups: the table alone carries the decay, every other parameter is in the undecayed group
    model = load_run(tmp_path / "b")[0]
    named = list(model.named_parameters())
    groups = _param_groups(model, 5.0)
    assert [g.get("weight_decay", 0.0) for g in groups] == [0.0, 5.0]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for n, p in named if n.endswith("ids.table.weight")] != []
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for _, p in named)
    assert len(_param_groups(model, 0.0)) == 1


def test_weight_decay_is_a_protocol_setting_recorded_and_checked(release, tmp_path):
    assert PROTOCOLS["paper"]["weight_decay"] == 0.0
    cfg = TrainConfig(data=str(release), out=str(tmp_path / "r"))
    assert cfg.weight_decay == PROTOCOLS["reference"]["weight_decay"]
    assert TrainConfig(data=str(release), out=str(tmp_path / "r"), weight_decay=0.25).weight_decay == 0.25
    train(TrainConfig(data=str(release), out=str(tmp_path / "r"), protocol="paper", weight_decay=0.5, max_rows=512,
                      batch_size=256, quiet=True, save_every=0))
    assert read_run_config(tmp_path / "r")["train"]["weight_decay"] == 0.5
    for bad in (-1.0, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(InvalidInputError, match="--weight-decay must be a number >= 0"):
            TrainConfig(data=str(release), out=str(tmp_path / "x"), weight_decay=bad)


def test_the_cli_refuses_a_negative_weight_decay_in_one_line(release, tmp_path, capsys):
    code = genco(["train", "--data", str(release), "--out", str(tmp_path / "r"), "--weight-decay", "-0.5", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--weight-decay must be a number >= 0" in err
    assert not (tmp_path / "r" / "config.json").exists()
