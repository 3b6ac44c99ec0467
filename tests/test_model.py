"""Reference model: GenCO (padded ≡ packed, masking, MIL, losses, ablations, inference) and the baselines.

Batches are built here with the fields of genco_data.load.Batch (issue #3), so these tests do not
depend on the adapters.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

from genco_data.format.components import COMPONENTS, PAD_TO  # noqa: E402
from genco_data.errors import InvalidInputError, SchemaError  # noqa: E402
from reference_model import (  # noqa: E402
    VARIANTS,
    DCOPolicy,
    GenCO,
    GenCOConfig,
    GenCOPolicy,
    MLPPolicy,
    UniformPolicy,
    check_batch,
    enumerate_combinations,
    genco_loss,
    sample_slots,
    slots_to_original,
    train_step,
)
from reference_model.losses import logged_baseline, logged_policy_gradient, sampled_policy_gradient  # noqa: E402

# Table 1: average pool size and coverage per component.
AVG = (6.3, 3.4, 2.2, 7.0, 2.3, 8.1)
COVERAGE = (1.0, 1.0, 0.39, 0.956, 0.583, 0.678)


@dataclasses.dataclass
class FakeBatch:
    candidates: torch.Tensor
    mask: torch.Tensor
    exposed: torch.Tensor
    n_candidates: torch.Tensor
    original_index: torch.Tensor
    propensity: torch.Tensor
    click: torch.Tensor
    user_id: torch.Tensor
    ad_id: torch.Tensor
    query_id: torch.Tensor
    user_age: torch.Tensor
    user_gender: torch.Tensor
    category: torch.Tensor
    query_segments: torch.Tensor
    query_segments_mask: torch.Tensor

    def replace(self, **kw) -> "FakeBatch":
        return dataclasses.replace(self, **kw)


def vocab(n: int = 50) -> dict[str, int]:
    v = {c: n for c in COMPONENTS}
    v.update(user_id=n, ad_id=n, query_id=n, query_segments=n, category=6, user_age=5, user_gender=3)
    return v


def make_batch(B: int, vs: dict[str, int], seed: int = 0, n: torch.Tensor | None = None) -> FakeBatch:
    """Table-1-shaped random rows: geometric pool sizes, some pools longer than 15 (truncated), uniform logging."""
    g = torch.Generator().manual_seed(seed)
    if n is None:
        n = torch.zeros(B, 6, dtype=torch.int64)
        for j, (a, cov) in enumerate(zip(AVG, COVERAGE)):
            u = torch.rand(B, generator=g).clamp(min=1e-6)
            size = (torch.log(u) / torch.log(torch.tensor(1 - 1 / a))).floor().long() + 1
            n[:, j] = torch.where(torch.rand(B, generator=g) < cov, size, 0)
    k = n.clamp(max=PAD_TO)
    mask = torch.arange(PAD_TO)[None, None, :] < k[:, :, None]
    cand = torch.randint(2, vs["title"], (B, 6, PAD_TO), generator=g) * mask
    exposed = torch.where(k > 0, (torch.rand(B, 6, generator=g) * k).long(), -1)
    seg = torch.randint(1, vs["query_segments"], (B, 4), generator=g)
    segm = torch.rand(B, 4, generator=g) < 0.6
    orig = torch.randperm(PAD_TO, generator=g).to(torch.int16).expand(B, 6, PAD_TO).clone()
    return FakeBatch(
        candidates=cand,
        mask=mask,
        exposed=exposed,
        n_candidates=n,
        original_index=orig,
        propensity=torch.where(k > 0, 1.0 / n.clamp(min=1), 0.0).float(),
        click=(torch.rand(B, generator=g) < 0.3).float(),
        user_id=torch.randint(0, vs["user_id"], (B,), generator=g),
        ad_id=torch.randint(0, vs["ad_id"], (B,), generator=g),
        query_id=torch.randint(0, vs["query_id"], (B,), generator=g),
        user_age=torch.randint(0, vs["user_age"], (B,), generator=g),
        user_gender=torch.randint(0, vs["user_gender"], (B,), generator=g),
        category=torch.randint(0, vs["category"], (B,), generator=g),
        query_segments=seg * segm,
        query_segments_mask=segm,
    )


def build(seed: int = 0, **overrides) -> GenCO:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GenCO(GenCOConfig(vocab_sizes=vocab(), **overrides))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP spin-waiting makes 2 threads ~20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch() -> FakeBatch:
    return make_batch(96, vocab(), seed=1)


# ------------------------------------------------------------------------------------------------ config
def test_config_defaults_are_the_papers():
    c = GenCOConfig(vocab_sizes=vocab())
    assert (c.emb_dim, c.encoder_dims, c.attn_dim, c.phi_dims, c.pad_to) == (4, (32, 16, 8), 4, (64, 32, 8), 15)
    assert (c.rl_lambda, c.reward_click, c.reward_no_click) == (0.15, 1.0, -0.1)
    assert c.use_mil and c.use_rl and c.use_cross_attention and c.packed
    assert c.h_dim == 8 and c.feature_dim == 12


def test_config_round_trips_through_json():
    c = GenCOConfig.variant("wo_all", vocab(), inference_samples=7)
    again = GenCOConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c and not again.use_mil and again.inference_samples == 7


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        ({"vocab_sizes": {"title": 5}}, "lacks"),
        ({"vocab_sizes": {**vocab(), "ad_id": 1}}, ">= 2"),
        ({"inference": "beam"}, "inference must be one of"),
        ({"pad_to": 10}, "PAD_TO"),
        ({"rl_lambda": -1.0}, ">= 0"),
        ({"ele_loss": False, "comb_loss": False, "use_rl": False}, "trains nothing"),
        ({"comb_loss": False}, "combination head is untrained"),
        ({"emb_dim": 0}, "emb_dim must be >= 1"),
        ({"off_policy_clip": -1.0}, "off_policy_clip >= 0"),
        ({"emb_init_std": 0.0}, "emb_init_std > 0"),
    ],
)
def test_config_rejects_bad_values(overrides, pattern):
    kw = {"vocab_sizes": vocab(), **overrides}
    with pytest.raises(InvalidInputError, match=pattern):
        GenCOConfig(**kw)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(InvalidInputError, match="unknown keys"):
        GenCOConfig.from_dict({"vocab_sizes": vocab(), "emb_dimension": 4})
    with pytest.raises(InvalidInputError, match="unknown GenCO variant"):
        GenCOConfig.variant("wo_everything", vocab())


# ------------------------------------------------------------------------------------------------ forward
def test_forward_shapes(batch):
    B = batch.candidates.shape[0]
    out = build()(batch, generator=torch.Generator().manual_seed(0))
    assert out.h.shape == (B, 8)
    assert out.logits.shape == out.log_probs.shape == (B, 6, PAD_TO)
    assert out.p_exposed.shape == out.logp_exposed.shape == out.present.shape == (B, 6)
    assert out.s.shape == (B,) and out.w.shape == (B, 6)
    assert out.sampled.shape == (B, 4, 6) and out.logp_sampled.shape == out.s_sampled.shape == (B, 4)
    assert not out.s_sampled.requires_grad and out.logp_sampled.requires_grad


@pytest.mark.parametrize("variant", ["genco", "wo_mil", "wo_context", "f_comb"])
def test_packed_path_equals_padded_reference(batch, variant):
    """Same outputs, same loss, same gradient for every parameter, whichever path computes them."""
    results = []
    for packed in (False, True):
        model = build(seed=3, **{**VARIANTS[variant], "packed": packed})
        out = model(batch, generator=torch.Generator().manual_seed(5))
        loss = genco_loss(out, batch, model.config)
        loss.total.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, loss, grads))
    (o1, l1, g1), (o2, l2, g2) = results
    m = batch.mask
    torch.testing.assert_close(o1.logits[m], o2.logits[m], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(o1.log_probs, o2.log_probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(o1.s, o2.s, rtol=1e-5, atol=1e-6)
    if o1.sampled is not None:
        assert torch.equal(o1.sampled, o2.sampled)
    torch.testing.assert_close(l1.total, l2.total, rtol=1e-5, atol=1e-6)
    assert all(torch.isfinite(t) for t in l1)
    assert g1.keys() == g2.keys() and len(g1) > 10
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-4, atol=1e-7, msg=name)


def test_block_attention_gradients_match_finite_differences():
    from reference_model.attention import _BlockAttention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    blocked = torch.rand(3, 5, 5, generator=g) < 0.4
    blocked.diagonal(dim1=1, dim2=2).fill_(False)
    assert torch.autograd.gradcheck(lambda q, k, v: _BlockAttention.apply(q, k, v, blocked, 0.5), (q, k, v))
    plain = ((q @ k.transpose(1, 2)) * 0.5).masked_fill(blocked, float("-inf")).softmax(-1) @ v
    torch.testing.assert_close(_BlockAttention.apply(q, k, v, blocked, 0.5), plain)


def test_packed_attention_does_not_depend_on_chunking(batch):
    outs = [build(seed=2, attn_chunks=k)(batch, rl_samples=0).logits for k in (1, 3, 200)]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])


@pytest.mark.parametrize("packed", [False, True])
def test_padded_slot_ids_do_not_change_outputs(batch, packed):
    model = build(packed=packed).eval()
    noisy = batch.candidates.clone()
    noisy[~batch.mask] = torch.randint(2, 50, (int((~batch.mask).sum()),))
    a = model(batch, rl_samples=0)
    b = model(batch.replace(candidates=noisy), rl_samples=0)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.s, b.s)


def test_softmax_sums_to_one_over_valid_slots(batch):
    out = build()(batch, rl_samples=0)
    probs = out.log_probs.exp() * batch.mask
    present = batch.mask.any(-1)
    torch.testing.assert_close(probs.sum(-1)[present], torch.ones(int(present.sum())))
    assert (probs.sum(-1)[~present] == 0).all()
    assert (out.log_probs[~batch.mask] == 0).all()


def test_mil_weights_are_zero_for_absent_components_and_sum_to_one(batch):
    w = build().mil_weights(batch)
    present = batch.exposed >= 0
    assert (w[~present] == 0).all() and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]))


def test_no_component_present_gives_finite_outputs():
    vs = vocab()
    n = torch.zeros(4, 6, dtype=torch.int64)
    n[:2, 0] = 3  # two rows with one title pool, two rows with nothing at all
    b = make_batch(4, vs, n=n)
    for packed in (False, True):
        model = build(packed=packed)
        out = model(b, generator=torch.Generator().manual_seed(0))
        loss = genco_loss(out, b, model.config).total
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        assert (model.select(b).choices[2:] == -1).all()


# ----------------------------------------------------------------------------------------------- ablations
def test_cross_attention_makes_elements_depend_on_other_components(batch):
    """Without pool statistics in the encoder, a component's logits see other pools only through z."""
    other = batch.candidates.clone()
    other[:, 1:] = torch.where(batch.mask[:, 1:], torch.randint(2, 50, other[:, 1:].shape), 0)
    changed = batch.replace(candidates=other)
    for attention, expect_change in ((True, True), (False, False)):
        model = build(use_cross_attention=attention, pool_context=False).eval()
        a, b = model(batch, rl_samples=0).logits[:, 0], model(changed, rl_samples=0).logits[:, 0]
        assert (not torch.allclose(a, b)) == expect_change


def test_ablation_flags_change_the_computation(batch):
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    full = build(**VARIANTS["genco"])
    out = full(batch, generator=gen())
    losses = genco_loss(out, batch, full.config)
    assert losses.rl != 0 and out.sampled is not None

    wo_rl = build(**VARIANTS["wo_rl"])
    out_rl = wo_rl(batch, generator=gen())
    l_rl = genco_loss(out_rl, batch, wo_rl.config)
    assert out_rl.sampled is None and l_rl.rl == 0
    torch.testing.assert_close(l_rl.total, l_rl.comb + l_rl.ele)

    wo_mil = build(**VARIANTS["wo_mil"])
    assert wo_mil(batch, generator=gen()).w is None and hasattr(wo_mil, "comb_mlp") and not hasattr(wo_mil, "mil_key")
    with pytest.raises(InvalidInputError, match="use_mil=False"):
        wo_mil.mil_weights(batch)

    f_ele = build(**VARIANTS["f_ele"])
    l_ele = genco_loss(f_ele(batch), batch, f_ele.config)
    assert l_ele.comb == 0 and l_ele.rl == 0 and l_ele.ele > 0
    f_comb = build(**VARIANTS["f_comb"])
    l_comb = genco_loss(f_comb(batch), batch, f_comb.config)
    assert l_comb.ele == 0 and l_comb.comb > 0


def test_policy_gradient_terms_match_their_formulas():
    logp = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]], requires_grad=True)
    click = torch.tensor([1.0, 0.0])
    # mean_i −r_i Σ_j log π = −(1·(−3) + (−0.1)·(−0.5)) / 2
    torch.testing.assert_close(logged_policy_gradient(logp, click, 1.0, -0.1), torch.tensor((3.0 - 0.05) / 2))
    s = torch.tensor([[0.0, 0.0]])  # equal predicted rewards: the leave-one-out baseline cancels them
    lp = torch.tensor([[-1.0, -2.0]])
    assert sampled_policy_gradient(lp, s, 1.0, -0.1) == 0
    r = torch.sigmoid(torch.tensor(0.0)) * 1.1 - 0.1  # K = 1: no baseline
    torch.testing.assert_close(sampled_policy_gradient(lp[:, :1], s[:, :1], 1.0, -0.1), r * 1.0)



def test_off_policy_correction_removes_the_pull_of_a_constant_reward():
    """Rows logged by μ = (0.5, 0.25, 0.25) in exact proportion, every one a non-click (r = −0.1). Read literally,
    Eq. 22 pushes π away from what μ showed most; with ρ = π/μ the expected gradient of a constant reward is 0."""
    logits = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    mu = torch.tensor([0.5, 0.25, 0.25])
    shown = torch.tensor([0, 0, 1, 2])  # frequencies = μ
    click = torch.zeros(4)

    def grad(clip: float) -> torch.Tensor:
        logits.grad = None
        logp = torch.log_softmax(logits, 0)[shown]
        lp = torch.stack([logp, torch.zeros(4)], 1)  # a second, absent component contributes nothing
        prop = torch.stack([mu[shown], torch.zeros(4)], 1)
        logged_policy_gradient(lp, click, 1.0, -0.1, prop, clip).backward()
        return logits.grad.clone()

    literal = grad(0.0)
    assert literal[0] > 0 and literal[1:].sum() < 0, "gradient descent lowers the logit production showed most"
    torch.testing.assert_close(grad(10.0), torch.zeros(3), atol=1e-7, rtol=0)
    # a click still counts: with ρ the clicked element's logit rises
    click = torch.tensor([0.0, 0.0, 1.0, 0.0])
    assert grad(10.0)[1] < 0
    # on a finite batch a constant reward still pulls once the weights are clipped; the baseline removes it exactly
    click = torch.zeros(4)
    logits.data = torch.tensor([3.0, -2.0, 0.0])  # π far from μ: ρ of the rare elements is clipped at 1.5
    assert grad(1.5).abs().max() > 1e-3

    def grad_baseline(clip: float) -> torch.Tensor:
        logits.grad = None
        logp = torch.log_softmax(logits, 0)[shown]
        lp = torch.stack([logp, torch.zeros(4)], 1)
        prop = torch.stack([mu[shown], torch.zeros(4)], 1)
        logged_policy_gradient(lp, click, 1.0, -0.1, prop, clip, logged_baseline("batch", click, None, 1.0, -0.1)).backward()
        return logits.grad.clone()

    torch.testing.assert_close(grad_baseline(1.5), torch.zeros(3), atol=1e-7, rtol=0)
    torch.testing.assert_close(grad_baseline(0.0), torch.zeros(3), atol=1e-7, rtol=0)


def test_logged_baselines():
    click = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert logged_baseline("none", click, None, 1.0, -0.1) is None
    torch.testing.assert_close(logged_baseline("batch", click, None, 1.0, -0.1), torch.tensor((1.0 - 0.3) / 4))
    # "value": per row, the mean predicted reward of the policy's draws (σ(0) = 0.5 -> 0.45; σ(-inf) -> -0.1)
    s = torch.tensor([[0.0, 0.0], [-1e9, -1e9], [0.0, -1e9], [0.0, 0.0]], requires_grad=True)
    v = logged_baseline("value", click, s, 1.0, -0.1)
    torch.testing.assert_close(v, torch.tensor([0.45, -0.1, 0.175, 0.45]))
    assert not v.requires_grad
    # the advantage moves the logged term: a row whose draws are predicted as good as the click adds nothing
    lp = torch.tensor([[-1.0], [-1.0], [-1.0], [-1.0]])
    with_value = logged_policy_gradient(lp, click, 1.0, -0.1, baseline=v)
    expected = -((1 - 0.45) * -1 + (-0.1 + 0.1) * -1 + (-0.1 - 0.175) * -1 + (-0.1 - 0.45) * -1) / 4
    torch.testing.assert_close(with_value, torch.tensor(expected))
    with pytest.raises(ValueError, match="needs the sampled"):
        logged_baseline("value", click, None, 1.0, -0.1)
    with pytest.raises(InvalidInputError, match="logged_baseline must be one of"):
        GenCOConfig(vocab_sizes=vocab(), logged_baseline="mean")
    with pytest.raises(InvalidInputError, match="needs rl_samples >= 1"):
        GenCOConfig(vocab_sizes=vocab(), logged_baseline="value", rl_samples=0)
    # the weight is clipped and detached (the correction does not change the formula of the literal term)
    big = torch.tensor([[-0.01]], requires_grad=True)
    loss = logged_policy_gradient(big, torch.tensor([1.0]), 1.0, -0.1, torch.tensor([[1e-4]]), 3.0)
    torch.testing.assert_close(loss, torch.tensor(3.0 * 0.01))


def test_embedding_init_std_is_applied_to_id_tables_only():
    small = GenCO(GenCOConfig(vocab_sizes=vocab(), emb_init_std=1e-3))
    assert float(small.ids.table.weight.detach().abs().max()) < 0.01  # the fused table holds every id table
    assert float(small.component_type.weight.detach().abs().max()) > 0.01  # not an id table: torch's init
    assert GenCOConfig(vocab_sizes=vocab()).emb_init_std == 0.01  # the default (ours)
    assert float(GenCO(GenCOConfig(vocab_sizes=vocab(), emb_init_std=1.0)).ids.table.weight.detach().std()) > 0.5  # torch's N(0, 1)


# ------------------------------------------------------------------------------------------------ learning
def _good_element_world(B: int, seed: int, good: int = 7) -> FakeBatch:
    """Uniformly logged rows; a click is likely (0.6) iff the shown image is element `good`, else 0.05."""
    vs = vocab(20)
    b = make_batch(B, vs, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    cand = b.candidates.clone()
    has = b.mask[:, 1].sum(-1) >= 2
    slot = (torch.rand(B, generator=g) * b.mask[:, 1].sum(-1)).long()
    rows = torch.arange(B)[has]
    cand[rows, 1] = torch.where(b.mask[rows, 1] & (cand[rows, 1] == good), 3, cand[rows, 1])  # one copy only
    cand[rows, 1, slot[has]] = good
    shown_good = cand[torch.arange(B), 1, b.exposed[:, 1]] == good
    p = torch.where(shown_good, 0.6, 0.05)
    click = (torch.rand(B, generator=g) < p).float()
    return b.replace(candidates=cand, click=click)


@pytest.mark.parametrize("variant", ["genco", "f_ele"])
def test_genco_learns_to_pick_the_good_element(variant):
    vs = vocab(20)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GenCO(GenCOConfig.variant(variant, vs))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    held_out = _good_element_world(512, seed=99)
    loss = lambda: float(genco_loss(model(held_out, generator=gen), held_out, model.config).total.detach())  # noqa: E731
    before = loss()
    for step in range(100):
        train_step(model, _good_element_world(256, seed=step), opt, gen)
    assert loss() < before
    has = held_out.mask[:, 1].sum(-1) >= 2  # rows where the choice matters
    chance = (1.0 / held_out.mask[has, 1].sum(-1)).mean()
    for mode in ("greedy", "sample") if model.config.comb_loss else ("greedy",):
        choice = model.select(held_out, mode=mode, generator=torch.Generator().manual_seed(1)).choices
        picked = held_out.candidates[torch.arange(512), 1, choice[:, 1].clamp(min=0)] == 7
        assert chance < 0.5 and picked[has].float().mean() > 0.9, (mode, picked[has].float().mean())


# ----------------------------------------------------------------------------------------------- inference
@pytest.mark.parametrize("mode", ["sample", "greedy", "enumerate"])
def test_select_never_chooses_padding_and_marks_absent(batch, mode):
    sel = build().select(batch, mode=mode, generator=torch.Generator().manual_seed(0))
    present = batch.mask.any(-1)
    assert sel.choices.dtype == torch.int64 and sel.choices.shape == (batch.mask.shape[0], 6)
    assert (sel.choices[~present] == -1).all()
    picked = batch.mask.gather(2, sel.choices.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    assert picked[present].all()
    assert torch.isinf(sel.scores[~batch.mask]).all() and torch.isfinite(sel.scores[batch.mask]).all()


def test_select_sample_is_deterministic_given_the_generator(batch):
    model = build()
    pick = lambda seed: model.select(batch, mode="sample", K=4, generator=torch.Generator().manual_seed(seed)).choices  # noqa: E731
    assert torch.equal(pick(11), pick(11))
    assert not torch.equal(pick(11), pick(12))
    assert model.training  # select restores the mode it found


def test_sample_slots_follows_the_softmax():
    logits = torch.tensor([2.0, 0.0, 1.0, 9.0] + [0.0] * 11).expand(1, 6, PAD_TO).clone()
    mask = torch.zeros(1, 6, PAD_TO, dtype=torch.bool)
    mask[:, :, :3] = True
    mask[:, 5] = False
    draws = sample_slots(logits, mask, 20000, torch.Generator().manual_seed(0))  # (1, K, 6)
    assert (draws[0, :, 5] == -1).all() and (draws[0, :, :5] < 3).all()
    freq = torch.bincount(draws[0, :, 0], minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.softmax(torch.tensor([2.0, 0.0, 1.0]), 0), atol=0.015, rtol=0)


def test_enumerate_combinations_lists_every_combination_once():
    n = torch.tensor([[2, 3, 0, 1, 2, 1], [15, 15, 2, 7, 3, 9]])
    b = make_batch(2, vocab(), n=n)
    choices, valid = enumerate_combinations(b.mask, 64, torch.Generator().manual_seed(0))
    assert choices.shape == (2, 64, 6) and int(valid[0].sum()) == 12 and valid[1].all()
    combos = {tuple(c) for c in choices[0][valid[0]].tolist()}
    assert len(combos) == 12 and all(c[2] == -1 and c[3] == 0 for c in combos)
    assert (choices[1] >= 0).all() and (choices[1] < n[1].clamp(max=15)).all()


def test_slots_to_original():
    orig = torch.arange(PAD_TO, dtype=torch.int16).flip(0).expand(2, 6, PAD_TO).clone()
    choices = torch.tensor([[0, 3, -1, 14, 1, -1], [2, 2, 2, 2, 2, 2]])
    out = slots_to_original(choices, orig)
    assert out.dtype == torch.int64
    assert out.tolist() == [[14, 11, -1, 0, 13, -1], [12] * 6]


# ------------------------------------------------------------------------------------------------ checking
def test_check_batch_names_the_problem(batch):
    cfg = GenCOConfig(vocab_sizes=vocab())
    check_batch(batch, cfg)
    with pytest.raises(SchemaError, match="candidates must have shape"):
        check_batch(batch.replace(candidates=batch.candidates[:, :5]), cfg)
    with pytest.raises(InvalidInputError, match=r"candidates\[image\] holds indices outside"):
        bad = batch.candidates.clone()
        bad[0, 1, 0] = 50
        check_batch(batch.replace(candidates=bad), cfg)
    with pytest.raises(InvalidInputError, match="batch.ad_id holds indices outside"):
        check_batch(batch.replace(ad_id=batch.ad_id + 100), cfg)
    with pytest.raises(InvalidInputError, match="is not a real candidate"):
        ex = batch.exposed.clone()
        ex[0, 0] = 14 if not batch.mask[0, 0, 14] else -1
        check_batch(batch.replace(exposed=ex), cfg)


def test_state_dict_reloads_through_safetensors(tmp_path, batch):
    st = pytest.importorskip("safetensors.torch")
    model = build(seed=4).eval()
    st.save_file(model.state_dict(), tmp_path / "model.safetensors")
    again = GenCO(GenCOConfig.from_dict(json.loads(json.dumps(model.config.to_dict()))))
    again.load_state_dict(st.load_file(tmp_path / "model.safetensors"))
    again.eval()
    torch.testing.assert_close(model(batch, rl_samples=0).logits, again(batch, rl_samples=0).logits)


def test_sparse_embeddings_train_with_sgd(batch):
    model = build(sparse_embeddings=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.ids.table.weight.detach().clone()
    train_step(model, batch, opt, torch.Generator().manual_seed(0))
    assert model.ids.table.weight.grad.is_sparse
    assert not torch.equal(before, model.ids.table.weight)


# ----------------------------------------------------------------------------------------------- baselines
def test_uniform_policy_is_uniform_and_seeded(batch):
    a, b = UniformPolicy(seed=3).fit([]), UniformPolicy(seed=3)
    ca, cb = a.select(batch).choices, b.select(batch).choices
    assert torch.equal(ca, cb)
    present = batch.mask.any(-1)
    assert (ca[~present] == -1).all() and batch.mask.gather(2, ca.clamp(min=0).unsqueeze(-1)).squeeze(-1)[present].all()
    big = make_batch(4000, vocab(), seed=5, n=torch.tensor([[3, 3, 3, 3, 3, 3]]).expand(4000, 6))
    freq = torch.bincount(UniformPolicy(seed=0).select(big).choices.flatten(), minlength=3).float() / (4000 * 6)
    torch.testing.assert_close(freq, torch.full((3,), 1 / 3), atol=0.02, rtol=0)


def test_mlp_policy_fits_and_selects(batch):
    policy = MLPPolicy(vocab(), cap=16, epochs=2, optimizer="adam", lr=1e-2).fit([batch, batch])
    sel = policy.select(batch)
    present = batch.mask.any(-1)
    assert sel.choices.shape == (batch.mask.shape[0], 6) and (sel.choices[~present] == -1).all()
    assert batch.mask.gather(2, sel.choices.clamp(min=0).unsqueeze(-1)).squeeze(-1)[present].all()
    with pytest.raises(InvalidInputError, match="optimizer"):
        MLPPolicy(vocab(), optimizer="lbfgs")


def test_mlp_policy_learns_the_good_element():
    policy = MLPPolicy(vocab(20), optimizer="adam", lr=1e-2, seed=0)
    policy.fit(_good_element_world(256, seed=s) for s in range(100))
    test = _good_element_world(512, seed=99)
    has = test.mask[:, 1].sum(-1) >= 2
    choice = policy.select(test).choices
    assert (test.candidates[torch.arange(512), 1, choice[:, 1].clamp(min=0)] == 7)[has].float().mean() > 0.8


def test_dco_prefers_a_clearly_better_element():
    """One ad, image pool {A, B}: A clicked 40 % of 400 shows, B 2 % of 400 -> B is eliminated, A chosen."""
    vs = vocab()
    n = torch.tensor([[1, 2, 0, 0, 0, 0]]).expand(800, 6)
    b = make_batch(800, vs, seed=0, n=n)
    cand = b.candidates.clone()
    cand[:, 1, 0], cand[:, 1, 1] = 11, 12  # A, B
    exposed = b.exposed.clone()
    exposed[:, 1] = torch.arange(800) % 2  # A on even rows, B on odd rows
    g = torch.Generator().manual_seed(0)
    ctr = torch.where(exposed[:, 1] == 0, 0.4, 0.02)
    click = (torch.rand(800, generator=g) < ctr).float()
    train = b.replace(candidates=cand, exposed=exposed, click=click, ad_id=torch.full((800,), 5))
    dco = DCOPolicy().fit([train])
    test = FakeBatch(**{f.name: getattr(train, f.name)[:4] for f in dataclasses.fields(FakeBatch)})
    swapped = test.candidates.clone()
    swapped[:, 1, 0], swapped[:, 1, 1] = 12, 11  # B in slot 0, A in slot 1
    sel = dco.select(test.replace(candidates=swapped))
    assert (sel.choices[:, 1] == 1).all()
    assert torch.isinf(sel.scores[:, 1, 0]).all()  # B eliminated
    # an unknown ad (OOV) falls back to the element's CTR over all ads: still A
    sel2 = dco.select(test.replace(candidates=swapped, ad_id=torch.ones(4, dtype=torch.int64)))
    assert (sel2.choices[:, 1] == 1).all()
    with pytest.raises(InvalidInputError, match="fit"):
        DCOPolicy().select(test)


@pytest.mark.parametrize("variant", ["f_ele", "f_comb", "wo_all"])
def test_genco_variants_behind_the_policy_interface(batch, variant):
    policy = GenCOPolicy(GenCOConfig.variant(variant, vocab()), seed=0).fit([batch, batch])
    sel = policy.select(batch)
    present = batch.mask.any(-1)
    assert (sel.choices[~present] == -1).all()
    assert batch.mask.gather(2, sel.choices.clamp(min=0).unsqueeze(-1)).squeeze(-1)[present].all()
