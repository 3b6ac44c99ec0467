"""GenCO (arXiv 2508.09730): non-autoregressive generation of a creative combination + multi-instance reward.

For one impression row (ad A_i, request q, candidate pools S_{i,1..6}, padded to 15 slots each)::

    h        = Enc(A_i, q, stat(S_i))                                    context, (B, 8)        [Eq. 14]
    z_k^j    = Attn(emb(e_k^j), {emb(e_k^j)} ∪ ⋃_{j'≠j} {emb(e_l^{j'})}_l)  cross-component, (B, 6, 15, 4) [Eq. 13]
    f_e      = (emb(e), emb(C_j), z)                                     element feature, 12       [Eq. 16]
    p_k^j    = φ(h, f_e)                                                 element logit, (B, 6, 15) [Eq. 15, 19]
    π(e_k^j) = softmax_{k valid} p^j                                     one categorical per component [Eq. 14-15]
    f_c      = Σ_j w_j · f_e(c_j),  w = softmax_{j present}(⟨W_q h, W_k f_e(c_j)⟩ / √4)   [Eq. 17]
    s        = φ(h, f_c)                                                 combination logit          [Eq. 18]

φ = π_θ is one MLP [64, 32, 8] → 1 (ReLU) shared by elements and combinations. Inference (Eq. 24-25): draw K
combinations from π in parallel, score each with s, keep the argmax.

Two numerically equivalent execution paths (``GenCOConfig.packed``):

- padded (the readable reference): attention over the full (B, 90, 90) grid and φ on all B·6·15 slots;
- packed (the fast one, default): only the N ≈ 27 % real candidates are embedded and scored (gathered with
  ``mask.nonzero`` and scattered back), and the attention runs on rows re-packed densely, grouped by their
  number of candidates so that the (rows, L, L) score tensors stay small.

Where the paper is silent we chose (all documented at the field of :class:`GenCOConfig`): the encoder's input,
the attention's single head without output projection, the MIL weight parametrization, the "without MIL"
ablation, the predicted-reward policy-gradient term, the off-policy correction of the logged term, the
embedding init.

This module assembles GenCO (:class:`GenCO`: element pass, combination score, training forward, selection);
its parts: ``config.py`` (:class:`GenCOConfig`, :data:`VARIANTS`), ``inputs.py`` (the batch and its checks),
``layers.py`` (MLPs, embeddings), ``attention.py`` (cross-component attention, packed layout) and
``selection.py`` (sampling, greedy, enumeration). Their public names are importable from here too.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from genco_data.format.components import N_COMPONENTS, PAD_TO
from genco_data.errors import InvalidInputError
from reference_model.attention import CrossComponentAttention, _build_layout
from reference_model.config import INFERENCE_MODES, N_SLOTS, VARIANTS, VOCAB_KEYS, GenCOConfig, InferenceMode
from reference_model.inputs import BatchLike, _check_shapes, check_batch
from reference_model.layers import FusedIdEmbeddings, _mlp, _neg, embed
from reference_model.selection import (
    Selection,
    _gather_log_probs,
    _log_softmax,
    enumerate_combinations,
    greedy_slots,
    sample_slots,
    slots_to_original,
)

# The model's public names, its parts' included: ``reference_model.model`` stays the one address of GenCO.
__all__ = [
    "GenCOConfig",
    "GenCO",
    "GenCOOutput",
    "Selection",
    "BatchLike",
    "VARIANTS",
    "VOCAB_KEYS",
    "check_batch",
    "sample_slots",
    "greedy_slots",
    "enumerate_combinations",
    "slots_to_original",
]

#: Combinations scored per call at inference (rows × candidates): keeps select's temporaries to a few MB.
SCORE_CHUNK_COMBINATIONS = 65_536


class GenCOOutput(NamedTuple):
    """Everything the losses need from one forward pass (B rows, K sampled combinations)."""

    h: Tensor  # (B, 8) context embedding
    logits: Tensor  # (B, 6, 15) element logits p = φ(h, f_e); most-negative float at padding
    log_probs: Tensor  # (B, 6, 15) log π(e | h, S_j); 0 at padding and for absent components
    present: Tensor  # bool (B, 6) the logged row shows this component
    p_exposed: Tensor  # (B, 6) logit p of the shown element; 0 where absent
    logp_exposed: Tensor  # (B, 6) log π of the shown element; 0 where absent
    s: Tensor  # (B,) combination logit of the logged combination
    w: Tensor | None  # (B, 6) MIL weights of the logged combination (None without MIL)
    sampled: Tensor | None  # int64 (B, K, 6) slots drawn from π (detached draw), -1 absent
    logp_sampled: Tensor | None  # (B, K) Σ_j log π(sampled_j), with gradient
    s_sampled: Tensor | None  # (B, K) combination logit of the sampled combinations, no gradient


class _Elements(NamedTuple):
    logits: Tensor  # (B, 6, 15)
    log_probs: Tensor  # (B, 6, 15)
    feats: Tensor  # (M + 1, F) element features f_e; the last row is zeros (absent components)
    index: Tensor  # (B, 6, 15) slot -> row of feats


class GenCO(nn.Module):
    """The GenCO policy π_θ and its combination reward head (see the module docstring for the math).

    ``use_mil=False`` ("w/o MIL", our reading of a silent paper): bag and instances are no longer tied —
    no attention pooling and no shared π_θ for the combination. The combination reward is an ordinary CTR
    MLP (φ's widths) on concat(h, f_e of each shown element or zeros, presence flags), trained by L_comb;
    elements keep L_ele with the bag's click copied to every instance. Inference is unchanged.
    """

    def __init__(self, config: GenCOConfig) -> None:
        super().__init__()
        self.config = c = config
        d, F_ = c.emb_dim, c.feature_dim
        self.ids = FusedIdEmbeddings(c.vocab_sizes, d, sparse=c.sparse_embeddings)  # every id table, one lookup
        self.component_type = nn.Embedding(N_COMPONENTS, d)  # emb(C_j)
        if c.emb_init_std != 1.0:  # 1.0 keeps torch's own N(0, 1) draw
            with torch.no_grad():
                self.ids.table.weight.normal_(0.0, c.emb_init_std)
        self._register_load_state_dict_pre_hook(self._from_separate_tables)
        enc_in = self.ids.out_dim + 2 * N_COMPONENTS + (N_COMPONENTS * d if c.pool_context else 0)
        self.encoder = _mlp([enc_in, *c.encoder_dims], batchnorm=True)  # -> h, last layer Linear+BN
        self.attention = CrossComponentAttention(d, c.attn_dim)
        self.phi = _mlp([c.h_dim + F_, *c.phi_dims, 1])  # shared φ = π_θ
        if c.use_mil:
            self.mil_query = nn.Linear(c.h_dim, c.attn_dim)  # context -> query of the MIL attention
            self.mil_key = nn.Linear(F_, c.attn_dim, bias=False)  # element feature -> key
        else:
            self.comb_mlp = _mlp([c.h_dim + N_COMPONENTS * (F_ + 1), *c.phi_dims, 1])

    def _from_separate_tables(self, state_dict: dict, prefix: str, *args) -> None:
        """Checkpoints written before the fused table (``context.tables.<name>.weight`` + ``elements.table.weight``)
        load into it: the rows are the same, concatenated in the fused order."""
        old = prefix + "elements.table.weight"
        if old not in state_dict:
            return
        ctx = {k[len(prefix + "context.tables.") : -len(".weight")]: state_dict.pop(k)
               for k in [k for k in state_dict if k.startswith(prefix + "context.tables.")]}
        state_dict[prefix + "ids.table.weight"] = self.ids.old_layout_weight(ctx, state_dict.pop(old))

    # -- building blocks -----------------------------------------------------------------------------------
    def encode(self, batch: BatchLike, ctx: Tensor, pool_mean: Tensor | None) -> Tensor:
        """h = Enc(context, stat(S)) -> (B, 8). ctx (B, 7d) context embeddings; pool_mean (B, 6, d) masked mean
        candidate embedding."""
        present = batch.mask.any(-1).to(torch.float32)  # (B, 6)
        log_n = torch.log1p(batch.n_candidates.to(torch.float32))  # (B, 6) full pool size
        parts = [ctx, log_n, present]
        if self.config.pool_context:
            parts.append(pool_mean.flatten(1))  # (B, 6d)
        return self.encoder(torch.cat(parts, dim=-1))  # (B, 8)

    def _elements_padded(self, batch: BatchLike) -> tuple[Tensor, _Elements]:
        c = self.config
        B = batch.candidates.shape[0]
        mask = batch.mask
        ctx, e = self.ids(batch, self.ids.candidate_rows(batch.candidates))  # (B, 7d), (B, 6, 15, d)
        m = mask.unsqueeze(-1).to(e.dtype)  # (B, 6, 15, 1)
        pool_mean = (e * m).sum(2) / m.sum(2).clamp(min=1.0)  # (B, 6, d)
        h = self.encode(batch, ctx, pool_mean)  # (B, 8)
        if c.use_cross_attention:
            z = self.attention.padded(e, mask)  # (B, 6, 15, a)
        else:
            z = e.new_zeros(B, N_COMPONENTS, PAD_TO, c.attn_dim)
        t = self.component_type.weight[None, :, None, :].expand(B, -1, PAD_TO, -1)  # (B, 6, 15, d)
        f = torch.cat([e, t, z], dim=-1)  # (B, 6, 15, F) = f_e
        hx = h[:, None, None, :].expand(-1, N_COMPONENTS, PAD_TO, -1)  # (B, 6, 15, 8)
        logits = self.phi(torch.cat([hx, f], dim=-1)).squeeze(-1)  # (B, 6, 15)
        logits = logits.masked_fill(~mask, _neg(logits.dtype))
        feats = torch.cat([f.reshape(B * N_SLOTS, -1), f.new_zeros(1, f.shape[-1])])  # (B·90 + 1, F)
        index = torch.arange(B * N_SLOTS, device=mask.device).view(B, N_COMPONENTS, PAD_TO)
        return h, _Elements(logits, _log_softmax(logits, mask), feats, index)

    def _elements_packed(self, batch: BatchLike) -> tuple[Tensor, _Elements]:
        c = self.config
        B = batch.candidates.shape[0]
        mask = batch.mask
        lay = _build_layout(mask, c.attn_chunks, with_attention=c.use_cross_attention)
        rows = self.ids.candidate_rows(batch.candidates).reshape(-1)[lay.flat_idx]  # (N,)
        ctx, e = self.ids(batch, rows)  # (B, 7d), (N, d): one lookup for every id column
        d = e.shape[-1]
        seg = lay.row * N_COMPONENTS + lay.comp  # (N,) which (row, component)
        sums = e.new_zeros(B * N_COMPONENTS, d).index_add(0, seg, e)  # (B·6, d)
        cnt = mask.sum(-1).reshape(-1, 1).to(e.dtype).clamp(min=1.0)  # (B·6, 1)
        h = self.encode(batch, ctx, (sums / cnt).view(B, N_COMPONENTS, d))  # (B, 8)
        z = self.attention.packed(e, lay) if c.use_cross_attention else e.new_zeros(e.shape[0], c.attn_dim)
        f = torch.cat([e, embed(self.component_type, lay.comp), z], dim=-1)  # (N, F)
        p = self.phi(torch.cat([h.index_select(0, lay.row), f], dim=-1)).squeeze(-1)  # (N,)
        logits = p.new_full((B * N_SLOTS,), _neg(p.dtype)).index_put((lay.flat_idx,), p)
        logits = logits.view(B, N_COMPONENTS, PAD_TO)  # (B, 6, 15)
        feats = torch.cat([f, f.new_zeros(1, f.shape[-1])])  # (N + 1, F)
        index = lay.slot_to_flat.view(B, N_COMPONENTS, PAD_TO)
        return h, _Elements(logits, _log_softmax(logits, mask), feats, index)

    def _element_pass(self, batch: BatchLike) -> tuple[Tensor, _Elements]:
        return self._elements_packed(batch) if self.config.packed else self._elements_padded(batch)

    def combination_score(self, h: Tensor, el: _Elements, choices: Tensor) -> tuple[Tensor, Tensor | None]:
        """s = π_θ(h, f_c) for combinations ``choices`` (B, K, 6) of slots (-1 absent) -> (s (B, K), w (B, K, 6)).

        MIL (Eq. 17): w_j = softmax over present j of ⟨W_q h, W_k f_e(c_j)⟩ / √a, zero where absent;
        f_c = Σ_j w_j f_e(c_j). Without MIL, w is None and s = comb_mlp(h, f_e(c_1..6), presence).
        """
        B, K, _ = choices.shape
        present = choices >= 0  # (B, K, 6)
        fidx = el.index.gather(2, choices.clamp(min=0).transpose(1, 2)).transpose(1, 2)  # (B, K, 6)
        fidx = torch.where(present, fidx, el.feats.shape[0] - 1)  # absent -> the zero row
        f = el.feats.index_select(0, fidx.reshape(-1)).view(B, K, N_COMPONENTS, -1)  # (B, K, 6, F); backward = index_add
        hk = h[:, None, :].expand(-1, K, -1)  # (B, K, 8)
        if not self.config.use_mil:
            x = torch.cat([hk, f.flatten(2), present.to(f.dtype)], dim=-1)  # (B, K, 8 + 6(F+1))
            return self.comb_mlp(x).squeeze(-1), None
        q = self.mil_query(h)[:, None, None, :]  # (B, 1, 1, a)
        score = (self.mil_key(f) * q).sum(-1) * self.config.attn_dim**-0.5  # (B, K, 6)
        score = score.masked_fill(~present, _neg(score.dtype))
        w = (score - score.amax(-1, keepdim=True)).exp() * present  # masked softmax over components (by
        w = w / w.sum(-1, keepdim=True).clamp(min=1e-30)  # hand: faster than softmax over a dim of 6 on CPU)
        fc = (w.unsqueeze(-1) * f).sum(2)  # (B, K, F)
        return self.phi(torch.cat([hk, fc], dim=-1)).squeeze(-1), w  # (B, K), (B, K, 6)

    def _chunked_scores(self, h: Tensor, el: _Elements, cand: Tensor) -> Tensor:
        """s of the candidates ``cand`` (B, K, 6), a few candidates per row at a time: the same draws and scores as
        one call, but no (B·K, ...) temporaries of hundreds of MB, whose page faults cost more CPU than the
        arithmetic (8192 rows × 65 candidates: 9.5 → 8.3 s per 65 k test rows on one thread; the binary search
        of ``sample_slots`` took it on to 5.9 s)."""
        step = max(1, SCORE_CHUNK_COMBINATIONS // max(1, cand.shape[0]))
        return torch.cat([self.combination_score(h, el, cand[:, k:k + step])[0] for k in range(0, cand.shape[1], step)], dim=1)

    # -- public entry points -------------------------------------------------------------------------------
    def forward(self, batch: BatchLike, *, generator: torch.Generator | None = None, rl_samples: int | None = None) -> GenCOOutput:
        """One pass for training: element distribution, the logged combination's s / w / p, and (if the
        predicted-reward PG term is on) ``rl_samples`` combinations drawn from π with their detached s.

        ``rl_samples`` defaults to ``config.rl_samples`` when ``config.use_rl``, else 0. Draws use ``generator``
        (on the batch's device). Shapes are checked here; index ranges by :func:`check_batch`.
        """
        _check_shapes(batch)
        c = self.config
        if rl_samples is None:
            rl_samples = c.rl_samples if c.use_rl else 0
        h, el = self._element_pass(batch)
        exposed = batch.exposed  # (B, 6)
        present = exposed >= 0
        slot = exposed.clamp(min=0).unsqueeze(-1)  # (B, 6, 1)
        p_exp = el.logits.gather(2, slot).squeeze(-1).masked_fill(~present, 0.0)  # (B, 6)
        lp_exp = el.log_probs.gather(2, slot).squeeze(-1).masked_fill(~present, 0.0)  # (B, 6)
        s, w = self.combination_score(h, el, exposed.unsqueeze(1))  # (B, 1), (B, 1, 6)
        sampled = lp_s = s_s = None
        if rl_samples > 0:
            sampled = sample_slots(el.logits.detach(), batch.mask, rl_samples, generator)  # (B, K, 6)
            lp_s = _gather_log_probs(el.log_probs, sampled)  # (B, K)
            with torch.no_grad():
                s_s = self.combination_score(h, el, sampled)[0]  # (B, K)
        return GenCOOutput(
            h, el.logits, el.log_probs, present, p_exp, lp_exp, s.squeeze(1),
            None if w is None else w.squeeze(1), sampled, lp_s, s_s,
        )

    @torch.no_grad()
    def select(
        self,
        batch: BatchLike,
        mode: InferenceMode | None = None,
        K: int | None = None,
        generator: torch.Generator | None = None,
        include_greedy: bool | None = None,
    ) -> Selection:
        """Choose one combination per row (Eq. 24-25), in eval mode (BatchNorm running stats).

        - ``sample``: draw K combinations from π (:func:`sample_slots`, ``generator``), score each with s, keep the argmax;
          ``include_greedy`` (None = ``config.include_greedy``) adds the per-component argmax as one more candidate
          (not in the paper);
        - ``greedy``: per-component argmax of π;
        - ``enumerate``: score every combination (or ``enumerate_cap`` uniform draws when there are more).

        Returns slot choices (B, 6) (-1 absent) and the element logits (B, 6, 15), -inf at padding.
        """
        check_batch(batch, self.config)
        mode = mode or self.config.inference
        if mode not in INFERENCE_MODES:
            raise InvalidInputError(f"GenCO.select: mode must be one of {INFERENCE_MODES}; got {mode!r}")
        K = self.config.inference_samples if K is None else K
        if K < 1:
            raise InvalidInputError(f"GenCO.select: K must be >= 1; got {K}")
        was_training = self.training
        self.eval()
        try:
            h, el = self._element_pass(batch)
            greedy = greedy_slots(el.logits, batch.mask)  # (B, 6)
            if mode == "greedy":
                choices = greedy
            else:
                if mode == "sample":
                    cand = sample_slots(el.logits, batch.mask, K, generator)  # (B, K, 6)
                    valid = torch.ones(cand.shape[:2], dtype=torch.bool, device=cand.device)
                else:
                    cand, valid = enumerate_combinations(batch.mask, self.config.enumerate_cap, generator)
                if self.config.include_greedy if include_greedy is None else include_greedy:
                    cand = torch.cat([greedy[:, None], cand], dim=1)
                    valid = torch.cat([valid.new_ones(valid.shape[0], 1), valid], dim=1)
                s = self._chunked_scores(h, el, cand).masked_fill(~valid, float("-inf"))  # (B, K)
                best = s.argmax(1)  # (B,)
                choices = cand[torch.arange(cand.shape[0], device=cand.device), best]  # (B, 6)
            scores = el.logits.masked_fill(~batch.mask, float("-inf"))
        finally:
            self.train(was_training)
        return Selection(choices, scores)

    @torch.no_grad()
    def mil_weights(self, batch: BatchLike) -> Tensor:
        """MIL weights w (B, 6) of the logged combinations (eval mode): 0 for absent components, rows sum to 1.
        The paper's Figure 3 averages these by product category."""
        if not self.config.use_mil:
            raise InvalidInputError("GenCO.mil_weights: this model was built with use_mil=False (no MIL weights)")
        was_training = self.training
        self.eval()
        try:
            out = self.forward(batch, rl_samples=0)
        finally:
            self.train(was_training)
        return out.w
