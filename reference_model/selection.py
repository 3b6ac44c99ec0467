"""Choosing combinations from element logits (policy-level helpers): the masked (log-)softmax over each
component's valid slots, K draws from π (Eq. 24), the per-component argmax, enumeration of a row's
combinations, and slot choices mapped back to indices in the original pools.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from genco_data.format.components import N_COMPONENTS, PAD_TO
from reference_model.layers import _neg

__all__ = ["Selection", "sample_slots", "greedy_slots", "enumerate_combinations", "slots_to_original"]


class Selection(NamedTuple):
    """What a policy returns for a batch."""

    choices: Tensor  # int64 (B, 6): chosen slot per component, -1 where the component is absent
    scores: Tensor | None  # float (B, 6, 15): per-slot score (GenCO: element logit p), -inf at padding


def _softmax_pad(x: Tensor) -> Tensor:
    """(…, 15) -> (…, 16) with one extra most-negative column. PyTorch's CPU (log_)softmax is ~15x slower
    over a last dim of 15 than of 16 (no vectorized tail); the extra slot gets probability exactly 0."""
    return F.pad(x, (0, 1), value=_neg(x.dtype))


def _log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """log softmax over the valid slots of each component; (B, 6, 15), 0 at padding / absent components."""
    x = _softmax_pad(logits.masked_fill(~mask, _neg(logits.dtype)))  # (B, 6, 16)
    return torch.log_softmax(x, dim=-1)[..., :PAD_TO].masked_fill(~mask, 0.0)


def _gather_log_probs(log_probs: Tensor, choices: Tensor) -> Tensor:
    """Σ_j log π(choices_j): log_probs (B, 6, 15), choices (B, K, 6) -> (B, K); absent components add 0."""
    lp = log_probs.gather(2, choices.clamp(min=0).transpose(1, 2)).transpose(1, 2)  # (B, K, 6)
    return (lp * (choices >= 0)).sum(-1)


def sample_slots(logits: Tensor, mask: Tensor, K: int, generator: torch.Generator | None = None) -> Tensor:
    """K independent draws per row from softmax(logits) over valid slots, per component (inverse CDF).

    logits (B, 6, 15), mask (B, 6, 15) -> slots int64 (B, K, 6), -1 where the component has no candidate.
    With u ~ U[0, 1)·Σπ the slot is the first one whose cumulative probability exceeds u (so a slot of
    probability 0, padding included, is never drawn). Deterministic for a given ``generator`` state (a
    generator on ``logits.device``); 6·K uniforms per row.
    """
    B = logits.shape[0]
    x = logits.detach().masked_fill(~mask, _neg(logits.dtype))
    probs = torch.softmax(_softmax_pad(x), dim=-1)[..., :PAD_TO] * mask  # (B, 6, 15); 0 for an absent component
    cdf = probs.cumsum(-1)  # (B, 6, 15)
    u = torch.rand((B, K, N_COMPONENTS), generator=generator, device=logits.device, dtype=probs.dtype)
    u = u * cdf[:, None, :, -1]  # (B, K, 6) in [0, Σπ)
    # first slot with cdf > u = the number of cdf entries <= u (cdf is non-decreasing): a binary search instead of
    # a (B, K, 6, 15) comparison, whose temporaries dominated inference time at K = 64
    choice = torch.searchsorted(cdf.contiguous(), u.transpose(1, 2).contiguous(), right=True).transpose(1, 2)  # (B, K, 6)
    return torch.where(mask.any(-1).unsqueeze(1), choice, -1)


def greedy_slots(logits: Tensor, mask: Tensor) -> Tensor:
    """Per-component argmax over valid slots: (B, 6, 15) -> (B, 6), -1 for absent components."""
    choice = logits.masked_fill(~mask, float("-inf")).argmax(-1)
    return torch.where(mask.any(-1), choice, -1)


def enumerate_combinations(mask: Tensor, cap: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Candidate combinations for exhaustive scoring: every combination when a row has at most ``cap``
    (mixed-radix enumeration), else ``cap`` uniform draws (with replacement).

    mask (B, 6, 15) -> (choices int64 (B, cap, 6) slots, -1 absent; valid bool (B, cap)).
    """
    B = mask.shape[0]
    dev = mask.device
    n = mask.sum(-1)  # (B, 6)
    radix = n.clamp(min=1)
    total = radix.prod(-1)  # (B,) number of combinations (≤ 15^6)
    t = torch.arange(cap, device=dev).expand(B, cap)
    digits = []
    rem = t
    for j in range(N_COMPONENTS):
        digits.append(rem % radix[:, j : j + 1])
        rem = rem // radix[:, j : j + 1]
    enum = torch.stack(digits, dim=-1)  # (B, cap, 6)
    u = torch.rand((B, cap, N_COMPONENTS), generator=generator, device=dev)
    rand = torch.minimum((u * radix[:, None, :]).long(), radix[:, None, :] - 1)  # (B, cap, 6)
    full = (total <= cap)[:, None]  # (B, 1)
    digit = torch.where(full[..., None], enum, rand)  # rank among the valid slots
    valid = torch.where(full, t < total[:, None], torch.ones_like(t, dtype=torch.bool))
    slot_of_rank = torch.sort((~mask).to(torch.int8), dim=-1, stable=True).indices  # valid slots first
    choices = slot_of_rank.unsqueeze(1).expand(-1, cap, -1, -1).gather(3, digit.unsqueeze(-1)).squeeze(-1)
    return torch.where(n[:, None, :] > 0, choices, -1), valid


def slots_to_original(choices: Tensor, original_index: Tensor) -> Tensor:
    """Map slot choices (B, 6) (-1 absent) to indices in the original pools via ``original_index``
    (B, 6, 15) -> int64 (B, 6), -1 absent: what the predictions file's ``<c>_choice`` holds."""
    orig = original_index.to(torch.int64).gather(2, choices.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(choices >= 0, orig, -1)
