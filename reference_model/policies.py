"""The policy behind each training method: build it untrained (:func:`build_policy`), its saved config, its
parameter count, DCO's statistics as named arrays (what the checkpoint stores), and the training loss as a
module (:class:`Objective`, what DDP wraps).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genco_data.load import Batch
from reference_model.baselines import DCOPolicy, MLPPolicy
from reference_model.config import GenCOConfig
from reference_model.losses import genco_loss
from reference_model.model import GenCO
from reference_model.train_config import GENCO_METHODS, TrainConfig, sparse_auto

__all__ = ["build_policy", "init_output_bias", "start_heads", "n_parameters", "Objective"]


def build_policy(method: str, vocab_sizes: dict[str, int], cfg: TrainConfig, model_config: dict[str, Any] | None = None):
    """The untrained policy of ``method``: a GenCO (variant) or MLP ``nn.Module``, a DCOPolicy, or None
    (uniform). Initial weights come from ``cfg.seed`` (the global RNG is left untouched).
    ``model_config`` (a saved GenCOConfig dict) overrides the variant's config (used when loading)."""
    if method in GENCO_METHODS:
        if model_config is not None:
            gcfg = GenCOConfig.from_dict(model_config)
        else:
            sparse = cfg.sparse_embeddings if cfg.sparse_embeddings is not None else sparse_auto(cfg.optimizer, vocab_sizes)
            options = {**({"emb_dim": cfg.emb_dim} if cfg.emb_dim is not None else {}), **cfg.genco_options}
            gcfg = GenCOConfig.variant(method, vocab_sizes, packed=cfg.packed, sparse_embeddings=sparse, **options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return GenCO(gcfg)
    if method == "mlp":
        kw = model_config or {"vocab_sizes": vocab_sizes, "cap": cfg.mlp_cap}
        return MLPPolicy(kw["vocab_sizes"], cap=kw["cap"], seed=cfg.seed)
    if method == "dco":
        return DCOPolicy(delta=cfg.dco_delta, prior_strength=cfg.dco_prior)
    return None


def init_output_bias(policy: Any, ctr: float | None) -> float | None:
    """Start the output bias of a fresh GenCO's CTR head(s) at logit(``ctr``) (φ, and the w/o-MIL combination MLP) when
    ``config.output_bias_init``. Returns the bias set, or None when nothing was set (another method, the option off,
    or no CTR strictly between 0 and 1)."""
    if ctr is None or not 0.0 < ctr < 1.0:
        return None
    if not (isinstance(policy, GenCO) and policy.config.output_bias_init):
        return None
    heads = [policy.phi] + ([policy.comb_mlp] if hasattr(policy, "comb_mlp") else [])
    bias = math.log(ctr / (1.0 - ctr))
    with torch.no_grad():
        for head in heads:
            head[-1].bias.fill_(bias)
    return bias


def start_heads(policy: Any, stats: dict[str, Any] | None) -> dict[str, Any]:
    """A fresh run's init: the CTR heads at the train split's base rate (the manifest's ``stats.ctr``) where the
    policy asks for it; returns config.json's ``init`` record."""
    ctr = (stats or {}).get("ctr")
    return {"output_bias": init_output_bias(policy, ctr), "train_ctr": ctr}


def _model_config(method: str, policy: Any) -> dict[str, Any] | None:
    if method in GENCO_METHODS:
        return policy.config.to_dict()
    if method == "mlp":
        return {"vocab_sizes": dict(policy.vocab_sizes), "cap": policy.cap}
    return None


def n_parameters(policy: Any) -> int:
    if isinstance(policy, nn.Module):
        return int(sum(p.numel() for p in policy.parameters()))
    if isinstance(policy, DCOPolicy) and policy._keys is not None:
        return int(sum(a.size for a in _dco_arrays(policy).values()))
    return 0


_DCO_FIELDS = ("_keys", "_n", "_c", "_ekeys", "_en", "_ec", "_ctr_comp")


def _dco_arrays(policy: DCOPolicy) -> dict[str, np.ndarray]:
    out = {name.lstrip("_"): np.ascontiguousarray(getattr(policy, name)) for name in _DCO_FIELDS}
    out["n_elem"] = np.asarray([policy._n_elem], dtype=np.int64)
    return out


def _dco_from_arrays(policy: DCOPolicy, arrays: dict[str, np.ndarray]) -> DCOPolicy:
    for name in _DCO_FIELDS:
        setattr(policy, name, arrays[name.lstrip("_")])
    policy._n_elem = int(arrays["n_elem"][0])
    return policy


class Objective(nn.Module):
    """The training loss as a module (what DDP wraps, so that ``find_unused_parameters`` sees exactly the
    parameters the loss reaches). ``forward(batch, generator) -> (total, parts)``; parts (P,) detached."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        if isinstance(policy, GenCO):
            self.part_names: tuple[str, ...] = ("loss", "comb", "ele", "rl") + (("bc",) if policy.config.bc_weight > 0 else ())
        else:
            self.part_names = ("loss",)

    def forward(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.policy
        if isinstance(p, GenCO):
            out = p(batch, generator=generator)
            lb = genco_loss(out, batch, p.config)
            parts = [lb.total.detach(), lb.comb, lb.ele, lb.rl] + ([lb.bc] if p.config.bc_weight > 0 else [])
            return lb.total, torch.stack(parts)
        s = p.score(batch, batch.exposed.unsqueeze(1)).squeeze(1)  # MLP: logit of the logged combination
        loss = F.binary_cross_entropy_with_logits(s, batch.click.to(s.dtype))
        return loss, loss.detach()[None]
