"""With ``output_bias_init`` the CTR heads of a fresh GenCO run start at the train split's base rate: φ's output bias
(and the w/o-MIL combination MLP's) is logit(manifest ``stats.ctr``), recorded in config.json's ``init``; a resumed
run keeps what it started with; with the option off nothing is set; a config saved before the option reads it as
off.

Uses test_train's session release (4 k train rows over 33 days + 1 k test rows)."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from genco_data.release import Release  # noqa: E402
from reference_model.checkpoint import read_run_config  # noqa: E402
from reference_model.config import VOCAB_KEYS, GenCOConfig  # noqa: E402
from reference_model.policies import build_policy, init_output_bias  # noqa: E402
from reference_model.train import train  # noqa: E402
from reference_model.train_config import TrainConfig  # noqa: E402

from test_train import release  # noqa: E402,F401  (the session fixture)

SIZES = {k: 50 for k in VOCAB_KEYS}


def _policy(method: str, **options):
    return build_policy(method, SIZES, TrainConfig(data="rel", method=method, genco_options=options))


@pytest.mark.parametrize("method, heads", [("genco", ["phi"]), ("wo_mil", ["phi", "comb_mlp"]), ("f_ele", ["phi"])])
def test_the_ctr_heads_start_at_the_logit_of_the_base_rate(method, heads):
    policy = _policy(method, output_bias_init=True)
    bias = init_output_bias(policy, 0.05)
    assert bias == pytest.approx(math.log(0.05 / 0.95))
    for name in heads:
        assert torch.allclose(getattr(policy, name)[-1].bias, torch.full((1,), bias))


def test_nothing_is_set_without_a_usable_rate_or_with_the_option_off():
    policy = _policy("genco", output_bias_init=True)
    before = policy.phi[-1].bias.clone()
    for ctr in (None, 0.0, 1.0, float("nan")):
        assert init_output_bias(policy, ctr) is None
    off = _policy("genco", output_bias_init=False)
    before_off = off.phi[-1].bias.clone()
    assert init_output_bias(off, 0.05) is None and torch.equal(off.phi[-1].bias, before_off)
    assert torch.equal(policy.phi[-1].bias, before)
    assert init_output_bias(_policy("dco"), 0.05) is None and init_output_bias(_policy("mlp"), 0.05) is None


def test_a_config_saved_before_the_option_reads_it_as_off():
    saved = GenCOConfig(vocab_sizes=SIZES).to_dict()
    saved.pop("output_bias_init")
    assert GenCOConfig.from_dict(saved).output_bias_init is False
    assert GenCOConfig(vocab_sizes=SIZES).output_bias_init is True  # the default


def test_a_run_records_the_init_from_the_manifests_ctr_and_a_resume_keeps_it(release, tmp_path):
    ctr = Release.open(release).manifest.stats["ctr"]
    out = tmp_path / "r"
    train(TrainConfig(data=str(release), out=str(out), max_rows=1024, batch_size=256, epochs=1, validation_days=0,
                      quiet=True, save_every=0))
    init = read_run_config(out)["init"]
    assert init == {"output_bias": pytest.approx(math.log(ctr / (1 - ctr))), "train_ctr": ctr}
    train(TrainConfig(out=str(out), resume=True, epochs=2, quiet=True, save_every=0))
    assert read_run_config(out)["init"] == init


def test_without_the_option_a_run_records_no_init(release, tmp_path):
    out = tmp_path / "r"
    train(TrainConfig(data=str(release), out=str(out), max_rows=1024, batch_size=256, epochs=1, validation_days=0,
                      quiet=True, save_every=0, genco_options={"output_bias_init": False}))
    cfg = read_run_config(out)
    assert cfg["init"]["output_bias"] is None and cfg["model"]["output_bias_init"] is False
