"""``emb_dim`` is a protocol setting: the reference protocol's GenCO uses 2-dim id embeddings (chosen on seeds 100-103,
benchmarks/README.md "Reference protocol"), ``--paper-defaults`` the paper's 4; ``--emb-dim`` and ``--genco-set
emb_dim=`` override it (the latter wins); the value is recorded in config.json and checked strictly.

Uses test_train's session release (4 k train rows over 33 days + 1 k test rows)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from genco_data.cli import main as genco  # noqa: E402
from genco_data.errors import InvalidInputError  # noqa: E402
from reference_model.checkpoint import load_run, read_run_config  # noqa: E402
from reference_model.train import train  # noqa: E402
from reference_model.train_config import PROTOCOLS, TrainConfig  # noqa: E402

from test_train import release  # noqa: E402,F401  (the session fixture)


def _dim(run) -> int:
    model = load_run(run)[0]
    return model.ids.table.weight.shape[1]


@pytest.mark.parametrize("argv, want", [([], PROTOCOLS["reference"]["emb_dim"]), (["--paper-defaults"], 4),
                                        (["--emb-dim", "3"], 3), (["--emb-dim", "3", "--genco-set", "emb_dim=5"], 5)])
def test_genco_train_builds_the_protocols_embedding_dim(release, tmp_path, argv, want):
    out = tmp_path / "r"
    code = genco(["train", "--data", str(release), "--out", str(out), "--max-rows", "512", "--batch-size", "256",
                  "--epochs", "1", "--validation-days", "0", "--quiet", *argv])
    assert code == 0 and _dim(out) == want
    cfg = read_run_config(out)
    assert cfg["model"]["emb_dim"] == want
    assert cfg["train"]["emb_dim"] == (3 if "--emb-dim" in argv else PROTOCOLS[cfg["train"]["protocol"]]["emb_dim"])


def test_emb_dim_is_2_in_the_reference_protocol_and_4_in_the_papers():
    assert (PROTOCOLS["reference"]["emb_dim"], PROTOCOLS["paper"]["emb_dim"]) == (2, 4)
    assert TrainConfig(data="rel").emb_dim == 2 and TrainConfig(data="rel", protocol="paper").emb_dim == 4


def test_a_run_config_written_before_the_fields_reads_with_their_old_values(release, tmp_path):
    out = tmp_path / "old"
    train(TrainConfig(data=str(release), out=str(out), max_rows=512, batch_size=256, epochs=1, validation_days=0,
                      quiet=True, save_every=0, emb_dim=4))
    old = TrainConfig.from_dict({k: v for k, v in read_run_config(out)["train"].items() if k not in ("emb_dim", "min_epochs")})
    assert (old.emb_dim, old.min_epochs) == (4, 0)


@pytest.mark.parametrize("bad", ["0", "-2"])
def test_the_cli_refuses_a_bad_emb_dim_in_one_line(release, tmp_path, capsys, bad):
    code = genco(["train", "--data", str(release), "--out", str(tmp_path / "r"), "--emb-dim", bad, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--emb-dim" in err
    assert not (tmp_path / "r" / "config.json").exists()


def test_library_refuses_a_bad_emb_dim():
    for bad in (0, -1, 2.5, True, "2"):
        with pytest.raises(InvalidInputError, match="--emb-dim must be an integer >= 1"):
            TrainConfig(data="rel", emb_dim=bad)
