"""GenCO's building blocks: MLPs, hashed-id embedding lookups (the context features and the fused
per-component element tables) and the masking constant.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from genco_data.format.components import COMPONENTS
from reference_model.config import CONTEXT_VOCABS
from reference_model.inputs import BatchLike

__all__ = ["ContextFeatures", "ElementEmbeddings", "FusedIdEmbeddings", "embed"]


def _mlp(dims: list[int], batchnorm: bool = False) -> nn.Sequential:
    """Linear layers dims[0] -> … -> dims[-1]; BatchNorm after every Linear if ``batchnorm`` (the last one
    included: h is batch-normalised); ReLU after every Linear but the last."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if batchnorm:
            layers.append(nn.BatchNorm1d(dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def embed(table: nn.Embedding, idx: Tensor) -> Tensor:
    """``table(idx)`` -> (*idx.shape, d). Dense tables go through ``index_select``, whose backward is one
    ``index_add`` (4-5x faster on CPU than ``embedding_dense_backward``, same gradient); sparse tables keep
    ``nn.Embedding`` (sparse gradients)."""
    if table.sparse:
        return table(idx)
    return table.weight.index_select(0, idx.reshape(-1)).view(*idx.shape, table.embedding_dim)


def _neg(dtype: torch.dtype) -> float:
    """The most negative finite value: a masked logit whose softmax weight is exactly 0, never NaN."""
    return torch.finfo(dtype).min


class ContextFeatures(nn.Module):
    """Request/ad embeddings: user, ad, query, masked mean of the query segments, age, gender, category.

    ``forward(batch) -> (B, 7·d)``.
    """

    def __init__(self, vocab_sizes: dict[str, int], emb_dim: int, sparse: bool = False) -> None:
        super().__init__()
        self.tables = nn.ModuleDict({k: nn.Embedding(vocab_sizes[k], emb_dim, sparse=sparse) for k in CONTEXT_VOCABS})
        self.out_dim = len(CONTEXT_VOCABS) * emb_dim

    def forward(self, batch: BatchLike) -> Tensor:
        t = self.tables
        seg = embed(t["query_segments"], batch.query_segments)  # (B, S, d)
        m = batch.query_segments_mask.unsqueeze(-1).to(seg.dtype)  # (B, S, 1)
        seg = (seg * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, d); zeros when the query has no segment
        parts = [
            embed(t["user_id"], batch.user_id),
            embed(t["ad_id"], batch.ad_id),
            embed(t["query_id"], batch.query_id),
            seg,
            embed(t["user_age"], batch.user_age),
            embed(t["user_gender"], batch.user_gender),
            embed(t["category"], batch.category),
        ]
        return torch.cat(parts, dim=-1)  # (B, 7d)


class ElementEmbeddings(nn.Module):
    """One hashed-id table per component, stored as one concatenated table with per-component row offsets
    (identical to six ``nn.Embedding`` but one lookup). ``forward(candidates (…, 6, 15)) -> (…, 6, 15, d)``."""

    def __init__(self, vocab_sizes: dict[str, int], emb_dim: int, sparse: bool = False) -> None:
        super().__init__()
        sizes = [vocab_sizes[c] for c in COMPONENTS]
        self.table = nn.Embedding(sum(sizes), emb_dim, sparse=sparse)
        offsets = torch.tensor([0] + sizes[:-1], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)  # (6,) derived from the config

    def global_ids(self, candidates: Tensor) -> Tensor:
        """(…, 6, 15) component-local indices -> (…, 6, 15) rows of the concatenated table."""
        return candidates + self.offsets[:, None]

    def forward(self, candidates: Tensor) -> Tensor:
        return embed(self.table, self.global_ids(candidates))


#: Context ids looked up one per row, in the encoder's input order (query_segments, a bag, sits after query_id).
_SINGLE_IDS: tuple[str, ...] = ("user_id", "ad_id", "query_id", "user_age", "user_gender", "category")


class FusedIdEmbeddings(nn.Module):
    """Every id table of GenCO in ONE table with per-table row offsets (torchrec ``EmbeddingBagCollection`` /
    fbgemm's layout): table ``k`` holds rows ``offset[k] .. offset[k] + size[k]`` in :data:`FUSED_ORDER`
    (the six components, then the context ids), so a batch's ids of all columns are embedded by one
    ``index_select`` and their gradient is one ``index_add`` (or one sparse gradient).

    ``forward(batch, candidate_rows)`` -> ``(ctx (B, 7d), e (*candidate_rows.shape, d))``: ``ctx`` = user, ad,
    query, masked mean of the query segments, age, gender, category embeddings (the order of
    :class:`ContextFeatures`); ``candidate_rows`` = global rows of candidates (:meth:`candidate_rows`)."""

    def __init__(self, vocab_sizes: dict[str, int], emb_dim: int, sparse: bool = False) -> None:
        super().__init__()
        sizes = [int(vocab_sizes[k]) for k in FUSED_ORDER]
        self.table = nn.Embedding(sum(sizes), emb_dim, sparse=sparse)
        starts = torch.tensor([0] + sizes[:-1], dtype=torch.int64).cumsum(0)
        self.offset = {k: int(v) for k, v in zip(FUSED_ORDER, starts.tolist())}
        self.register_buffer("component_offsets", starts[: len(COMPONENTS)].clone(), persistent=False)  # (6,)
        self.register_buffer("single_offsets", torch.tensor([self.offset[k] for k in _SINGLE_IDS]), persistent=False)  # (6,)
        self.out_dim = len(CONTEXT_VOCABS) * emb_dim

    def candidate_rows(self, candidates: Tensor) -> Tensor:
        """(…, 6, 15) component-local indices -> (…, 6, 15) rows of the fused table."""
        return candidates + self.component_offsets[:, None]

    def forward(self, batch: BatchLike, candidate_rows: Tensor) -> tuple[Tensor, Tensor]:
        B, S = batch.query_segments.shape
        single = torch.stack([getattr(batch, k) for k in _SINGLE_IDS], dim=1) + self.single_offsets  # (B, 6)
        seg = batch.query_segments + self.offset["query_segments"]  # (B, S)
        ids = torch.cat([single.reshape(-1), seg.reshape(-1), candidate_rows.reshape(-1)])
        rows = embed(self.table, ids)  # (B·6 + B·S + N, d): the one lookup
        d = rows.shape[-1]
        one, segs, e = rows.split([B * len(_SINGLE_IDS), B * S, candidate_rows.numel()])
        one = one.view(B, len(_SINGLE_IDS), d)
        m = batch.query_segments_mask.unsqueeze(-1).to(rows.dtype)  # (B, S, 1)
        seg_mean = (segs.view(B, S, d) * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, d); zeros without segments
        ctx = torch.cat([one[:, :3], seg_mean[:, None], one[:, 3:]], dim=1).reshape(B, -1)  # (B, 7d)
        return ctx, e.view(*candidate_rows.shape, d)

    def old_layout_weight(self, context: dict[str, Tensor], elements: Tensor) -> Tensor:
        """The fused weight of a checkpoint written with separate tables (``context.tables.<name>.weight`` and
        the six components' ``elements.table.weight``)."""
        return torch.cat([elements, *(context[k] for k in CONTEXT_VOCABS)])


#: Table order of :class:`FusedIdEmbeddings`.
FUSED_ORDER: tuple[str, ...] = (*COMPONENTS, *CONTEXT_VOCABS)  # = the names of VOCAB_KEYS, components first
