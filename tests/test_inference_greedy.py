"""``GenCOConfig.include_greedy`` (ours, default True): in ``sample`` mode the per-component argmax of π is one more
candidate that the combination head scores; ``GenCO.select`` keeps whichever s prefers. Configs saved before the
field read it as False (the inference those runs used)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from reference_model import GenCOConfig, greedy_slots  # noqa: E402

from test_model import build, make_batch, vocab  # noqa: E402


def _s(model, batch, choices):
    h, el = model._element_pass(batch)
    return model.combination_score(h, el, choices[:, None, :])[0][:, 0]


def test_select_keeps_the_greedy_combination_when_s_prefers_it():
    torch.set_num_threads(1)
    model = build(3).eval()
    batch = make_batch(256, vocab(), seed=5)
    with torch.no_grad():
        greedy = greedy_slots(model._element_pass(batch)[1].logits, batch.mask)
        plain = model.select(batch, "sample", K=1, generator=torch.Generator().manual_seed(0), include_greedy=False).choices
        with_g = model.select(batch, "sample", K=1, generator=torch.Generator().manual_seed(0)).choices  # config: True
        s_plain, s_greedy, s_with = _s(model, batch, plain), _s(model, batch, greedy), _s(model, batch, with_g)
    assert model.config.include_greedy
    # every row keeps the better of its one draw and the greedy combination, by s
    torch.testing.assert_close(s_with, torch.maximum(s_plain, s_greedy))
    picked_greedy = (with_g == greedy).all(1)
    assert 0 < int(picked_greedy.sum()) < batch.click.shape[0]  # s decides row by row: some rows keep the draw
    assert ((with_g == plain).all(1) | picked_greedy).all()


def test_include_greedy_false_is_the_papers_inference_and_old_configs_read_as_false():
    cfg = GenCOConfig(vocab_sizes=vocab())
    assert cfg.include_greedy and cfg.inference_samples == 64
    saved = cfg.to_dict()
    del saved["include_greedy"]
    assert GenCOConfig.from_dict(saved).include_greedy is False
    assert GenCOConfig.from_dict(cfg.to_dict()).include_greedy is True
