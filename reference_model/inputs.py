"""The batch GenCO and the baselines read: its fields (:class:`BatchLike`, those of
:class:`genco_data.load.Batch`) and the checks of shapes and index ranges against a :class:`GenCOConfig`.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from genco_data.format.components import COMPONENTS, N_COMPONENTS, PAD_TO
from genco_data.errors import InvalidInputError, SchemaError
from reference_model.config import CONTEXT_VOCABS, GenCOConfig

__all__ = ["BatchLike", "check_batch"]


class BatchLike(Protocol):
    """The fields of :class:`genco_data.load.Batch` the models read (B rows, S query segments)."""

    candidates: Tensor  # int64 (B, 6, 15) vocabulary index per slot, 0 = padding, 1 = OOV
    mask: Tensor  # bool (B, 6, 15) slot holds a real candidate
    exposed: Tensor  # int64 (B, 6) slot of the shown element, -1 when the component is absent
    n_candidates: Tensor  # int64 (B, 6) full pool size (before truncation to 15)
    original_index: Tensor  # int16 (B, 6, 15) slot -> index in the original pool
    click: Tensor  # float (B,)
    user_id: Tensor  # int64 (B,)
    ad_id: Tensor  # int64 (B,)
    query_id: Tensor  # int64 (B,)
    user_age: Tensor  # int64 (B,)
    user_gender: Tensor  # int64 (B,)
    category: Tensor  # int64 (B,)
    query_segments: Tensor  # int64 (B, S)
    query_segments_mask: Tensor  # bool (B, S)


def _check_shapes(batch: BatchLike) -> None:
    cand = batch.candidates
    if cand.dim() != 3 or tuple(cand.shape[1:]) != (N_COMPONENTS, PAD_TO):
        raise SchemaError(f"batch.candidates must have shape (B, {N_COMPONENTS}, {PAD_TO}); got {tuple(cand.shape)}")
    B = cand.shape[0]
    expect = {
        "mask": (B, N_COMPONENTS, PAD_TO),
        "exposed": (B, N_COMPONENTS),
        "n_candidates": (B, N_COMPONENTS),
        "click": (B,),
        "user_id": (B,),
        "ad_id": (B,),
        "query_id": (B,),
        "user_age": (B,),
        "user_gender": (B,),
        "category": (B,),
    }
    for name, shape in expect.items():
        got = tuple(getattr(batch, name).shape)
        if got != shape:
            raise SchemaError(f"batch.{name} must have shape {shape}; got {got}")
    if batch.mask.dtype != torch.bool:
        raise SchemaError(f"batch.mask must be bool; got {batch.mask.dtype}")
    if tuple(batch.query_segments.shape) != tuple(batch.query_segments_mask.shape) or batch.query_segments.shape[0] != B:
        raise SchemaError(
            f"batch.query_segments {tuple(batch.query_segments.shape)} and query_segments_mask "
            f"{tuple(batch.query_segments_mask.shape)} must both be (B={B}, S)"
        )


def check_batch(batch: BatchLike, config: GenCOConfig) -> None:
    """Shapes plus index ranges against ``config.vocab_sizes`` and the exposed slot being a real candidate.
    Costs a host sync: call it once per data source (``select`` calls it), not per training step."""
    _check_shapes(batch)
    vs = config.vocab_sizes
    if batch.candidates.numel():
        lo = batch.candidates.amin(dim=(0, 2)).tolist()
        hi = batch.candidates.amax(dim=(0, 2)).tolist()
        for c, a, b in zip(COMPONENTS, lo, hi):
            if a < 0 or b >= vs[c]:
                raise InvalidInputError(f"batch.candidates[{c}] holds indices outside [0, {vs[c]}); got [{a}, {b}]")
    for name in CONTEXT_VOCABS:
        key = name
        x = getattr(batch, name)
        if x.numel() and (int(x.max()) >= vs[key] or int(x.min()) < 0):
            raise InvalidInputError(f"batch.{name} holds indices outside [0, {vs[key]}); got [{int(x.min())}, {int(x.max())}]")
    ex = batch.exposed
    bad = (ex >= PAD_TO) | (ex < -1)
    present = ex >= 0
    shown = batch.mask.gather(2, ex.clamp(0, PAD_TO - 1).unsqueeze(-1)).squeeze(-1)
    bad |= present & ~shown
    bad |= ~present & batch.mask.any(-1)
    if bool(bad.any()):
        r, j = (int(v) for v in bad.nonzero()[0])
        raise InvalidInputError(
            f"batch row {r}, {COMPONENTS[j]}: exposed slot {int(ex[r, j])} is not a real candidate "
            f"(candidates in slots {batch.mask[r, j].nonzero().squeeze(1).tolist()}); -1 iff the pool is empty"
        )
