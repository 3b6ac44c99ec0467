"""The fused id table: one lookup equals the separate per-column tables, and old checkpoints load into it."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from genco_data.format.components import COMPONENTS  # noqa: E402
from reference_model.config import CONTEXT_VOCABS, GenCOConfig  # noqa: E402
from reference_model.layers import ContextFeatures, ElementEmbeddings  # noqa: E402
from reference_model.model import GenCO  # noqa: E402
from test_model import make_batch, vocab  # noqa: E402


def _separate_tables(model: GenCO, vs: dict[str, int]) -> tuple[ContextFeatures, ElementEmbeddings]:
    """The pre-fusion modules holding the same rows as the model's fused table."""
    ctx, el = ContextFeatures(vs, 4), ElementEmbeddings(vs, 4)
    w = model.ids.table.weight.detach()
    with torch.no_grad():
        el.table.weight.copy_(w[: sum(vs[c] for c in COMPONENTS)])
        for k in CONTEXT_VOCABS:
            o = model.ids.offset[k]
            ctx.tables[k].weight.copy_(w[o : o + vs[k]])
    return ctx, el


def test_one_fused_lookup_equals_the_separate_tables():
    vs = {**vocab(50), "user_id": 97, "query_segments": 13, "category": 5}
    model = GenCO(GenCOConfig(vocab_sizes=vs, emb_init_std=1.0))
    batch = make_batch(64, vs, seed=3)
    ctx_ref, el_ref = _separate_tables(model, vs)
    ctx, e = model.ids(batch, model.ids.candidate_rows(batch.candidates))
    torch.testing.assert_close(ctx, ctx_ref(batch), rtol=0, atol=0)
    torch.testing.assert_close(e, el_ref(batch.candidates), rtol=0, atol=0)
    # the gradient of the one table is the separate tables' gradients, row for row
    (ctx.square().sum() + e.sum()).backward()
    (ctx_ref(batch).square().sum() + el_ref(batch.candidates).sum()).backward()
    g = model.ids.table.weight.grad
    torch.testing.assert_close(g[: el_ref.table.weight.shape[0]], el_ref.table.weight.grad)
    o = model.ids.offset["user_id"]
    torch.testing.assert_close(g[o : o + vs["user_id"]], ctx_ref.tables["user_id"].weight.grad)


def test_a_checkpoint_with_separate_tables_loads_into_the_fused_table():
    vs = vocab(40)
    model = GenCO(GenCOConfig(vocab_sizes=vs, emb_init_std=1.0))
    ctx_ref, el_ref = _separate_tables(model, vs)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("ids.")}
    old["elements.table.weight"] = el_ref.table.weight.detach().clone()
    old.update({f"context.tables.{k}.weight": t.weight.detach().clone() for k, t in ctx_ref.tables.items()})
    fresh = GenCO(GenCOConfig(vocab_sizes=vs, emb_init_std=1e-3))
    fresh.load_state_dict(old)
    assert torch.equal(fresh.ids.table.weight, model.ids.table.weight)
    batch = make_batch(16, vs, seed=1)
    model.eval(), fresh.eval()
    torch.testing.assert_close(fresh(batch, rl_samples=0).logits, model(batch, rl_samples=0).logits)
