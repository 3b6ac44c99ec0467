"""GenCO's building blocks: MLPs, hashed-id embedding lookups (the context features and the fused
per-component element tables) and the masking constant.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from genco_data.format.components import COMPONENTS
from reference_model.config import CONTEXT_VOCABS
from reference_model.inputs import BatchLike

__all__ = ["ContextFeatures", "ElementEmbeddings", "embed"]


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
