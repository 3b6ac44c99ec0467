"""Cross-component attention (Eq. 13) on the padded (B, 90, 90) grid and on the packed layout.

The packed path embeds only the N ≈ 27 % real candidates (gathered with ``mask.nonzero``, :func:`_build_layout`)
and runs the attention on rows re-packed densely, grouped by their number of candidates so that the
(rows, L, L) score tensors stay small; :class:`_BlockAttention` is its hand-written forward/backward.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from genco_data.format.components import N_COMPONENTS, PAD_TO
from reference_model.config import N_SLOTS

__all__ = ["CrossComponentAttention"]


@dataclass
class _Layout:
    """Where the N real candidates of a (B, 6, 15) mask live; computed once per batch, no gradient."""

    flat_idx: Tensor  # (N,) position in the B·90 grid, row-major
    row: Tensor  # (N,) row b
    comp: Tensor  # (N,) component j
    slot_to_flat: Tensor  # (B·90,) index into the N list; N (a zero row) at padding
    # dense attention blocks: rows sorted by candidate count, cut in chunks; per chunk
    # (element ids into the N list, position of each in the flattened (rows·L) block, blocked keys (rows, L, L))
    chunks: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)
    inv_perm: Tensor | None = None  # (N,) undoes the chunk order


def _build_layout(mask: Tensor, n_chunks: int, with_attention: bool) -> _Layout:
    B = mask.shape[0]
    m = mask.reshape(B, N_SLOTS)  # (B, 90)
    flat_idx = m.reshape(-1).nonzero().squeeze(1)  # (N,)
    N = flat_idx.numel()
    row = flat_idx // N_SLOTS
    comp = (flat_idx % N_SLOTS) // PAD_TO
    slot_to_flat = torch.full((B * N_SLOTS,), N, dtype=torch.int64, device=mask.device)
    slot_to_flat[flat_idx] = torch.arange(N, device=mask.device)
    layout = _Layout(flat_idx, row, comp, slot_to_flat)
    if not with_attention or N == 0:
        return layout
    counts = m.sum(1)  # (B,)
    order = torch.argsort(counts, stable=True)  # rows by ascending candidate count
    perm = slot_to_flat.view(B, N_SLOTS)[order][m[order]]  # (N,) element ids, grouped by sorted row
    counts_sorted = counts[order]
    bounds = [round(i * B / n_chunks) for i in range(n_chunks + 1)]
    ends = counts_sorted.cumsum(0)
    host = torch.stack([counts_sorted, ends]).tolist()  # one host sync for every chunk's size
    chunks = []
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        if r1 <= r0:
            continue
        L = host[0][r1 - 1]  # sorted ascending: the last row of the chunk is the longest
        if L == 0:
            continue
        L = max(L, 16)  # CPU softmax over a last dim < 16 is ~9x slower per element than over 16
        e0 = host[1][r0 - 1] if r0 > 0 else 0
        e1 = host[1][r1 - 1]
        ids = perm[e0:e1]  # (n_el,)
        kv = torch.arange(L, device=mask.device)[None, :] < counts_sorted[r0:r1, None]  # (rows, L)
        pos = kv.reshape(-1).nonzero().squeeze(1)  # (n_el,) in (rows·L), row-major = the order of ids
        compc = torch.full(((r1 - r0) * L,), -1, dtype=torch.int8, device=mask.device)
        compc[pos] = comp[ids].to(torch.int8)
        compc = compc.view(r1 - r0, L)
        # blocked[r, q, k]: key k is padding or of the query's own component, unless k == q (itself; padded
        # queries too, so that their row stays finite)
        blocked = (compc[:, :, None] == compc[:, None, :]) | ~kv[:, None, :]  # (rows, L, L)
        blocked.diagonal(dim1=1, dim2=2).fill_(False)
        chunks.append((ids, pos, blocked))
    layout.chunks = chunks
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(N, device=mask.device)
    layout.inv_perm = inv
    return layout


# -------------------------------------------------------------------------------- cross-component attention
class CrossComponentAttention(nn.Module):
    """Eq. 13, single head of dim a (the paper's hidden dim 4), no output projection::

        q = W_q emb(e_k^j),  K/V = W_{k,v} emb(e_l^{j'}) over keys {(j, k)} ∪ {(j', l): j' ≠ j, l valid}
        z_k^j = Σ_keys softmax(q·K / √a) V                                     (B, 6, 15, a)

    Padding is never a key; every slot may attend to itself (so padded queries stay finite; their output
    is discarded).
    """

    def __init__(self, emb_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.attn_dim = attn_dim
        self.qkv = nn.Linear(emb_dim, 3 * attn_dim, bias=False)
        self.scale = attn_dim**-0.5
        comp = torch.arange(N_SLOTS) // PAD_TO
        self.register_buffer("other_component", comp[:, None] != comp[None, :], persistent=False)  # (90, 90)

    def padded(self, e: Tensor, mask: Tensor) -> Tensor:
        """Reference path. e (B, 6, 15, d), mask (B, 6, 15) -> z (B, 6, 15, a)."""
        B = e.shape[0]
        a = self.attn_dim
        q, k, v = self.qkv(e.reshape(B, N_SLOTS, -1)).split(a, dim=-1)  # 3 × (B, 90, a)
        m = mask.reshape(B, N_SLOTS)
        eye = torch.eye(N_SLOTS, dtype=torch.bool, device=e.device)
        allowed = (m[:, None, :] & self.other_component) | eye  # (B, 90, 90) query × key
        att = (q @ k.transpose(1, 2)) * self.scale  # (B, 90, 90)
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        return (att @ v).reshape(B, N_COMPONENTS, PAD_TO, a)  # (B, 6, 15, a)

    def packed(self, e: Tensor, layout: _Layout) -> Tensor:
        """Fast path. e (N, d) real candidates -> z (N, a). Rows are re-packed into dense blocks
        (rows, L, ·) with L = the block's largest candidate count; same keys and masks as :meth:`padded`."""
        a = self.attn_dim
        if e.shape[0] == 0:
            return e.new_zeros(0, a)
        qkv = self.qkv(e)  # (N, 3a)
        outs = []
        for ids, pos, blocked in layout.chunks:
            rows, L = blocked.shape[0], blocked.shape[1]
            x = qkv.new_zeros(rows * L, 3 * a).index_copy(0, pos, qkv.index_select(0, ids))
            q, k, v = x.view(rows, L, 3 * a).split(a, dim=-1)  # 3 × (rows, L, a)
            z = _BlockAttention.apply(q, k, v, blocked, self.scale)  # (rows, L, a)
            outs.append(z.reshape(rows * L, a).index_select(0, pos))  # (n_el, a)
        return torch.cat(outs).index_select(0, layout.inv_perm)  # (N, a)


class _BlockAttention(torch.autograd.Function):
    """z = softmax(q kᵀ·scale, blocked keys -inf) v for (R, L, a) blocks with a tiny head dim a, every
    product written so that the matmul's output is the wide (·, L) side: CPU batched GEMMs whose output has
    4 columns run ~4x slower than their transposes. Math identical to the plain expression (tested)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, blocked: Tensor, scale: float) -> Tensor:
        s = torch.bmm(q * scale, k.transpose(1, 2)).masked_fill_(blocked, float("-inf"))  # (R, L, L)
        p = s.softmax(dim=-1)
        ctx.save_for_backward(q, k, v, p)
        ctx.scale = scale
        return (v.transpose(1, 2) @ p.transpose(1, 2)).transpose(1, 2)  # (R, L, a) = p v

    @staticmethod
    def backward(ctx, gz: Tensor):
        q, k, v, p = ctx.saved_tensors
        gz_t = gz.transpose(1, 2)  # (R, a, L)
        gp = gz @ v.transpose(1, 2)  # (R, L, L)
        gv = (gz_t @ p).transpose(1, 2)  # pᵀ gz, (R, L, a)
        gs = torch._softmax_backward_data(gp, p, -1, p.dtype) * ctx.scale  # p ⊙ (gp − Σ gp·p), (R, L, L)
        gq = (k.transpose(1, 2) @ gs.transpose(1, 2)).transpose(1, 2)  # gs k
        gk = (q.transpose(1, 2) @ gs).transpose(1, 2)  # gsᵀ q
        return gq, gk, gv, None, None
