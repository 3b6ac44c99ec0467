"""Reference models for the GenCO dataset: GenCO itself (model, losses) and the Table 2 baselines.

Needs torch (``pip install genco-data[torch]``); ``import genco_data`` never imports this package.
"""
from __future__ import annotations

from reference_model.baselines import DCOPolicy, GenCOPolicy, MLPPolicy, Policy, UniformPolicy
from reference_model.losses import LossBreakdown, genco_loss, train_step
from reference_model.model import (
    VARIANTS,
    GenCO,
    GenCOConfig,
    GenCOOutput,
    Selection,
    check_batch,
    enumerate_combinations,
    greedy_slots,
    sample_slots,
    slots_to_original,
)

__all__ = [
    "GenCO",
    "GenCOConfig",
    "GenCOOutput",
    "VARIANTS",
    "Selection",
    "check_batch",
    "sample_slots",
    "greedy_slots",
    "enumerate_combinations",
    "slots_to_original",
    "LossBreakdown",
    "genco_loss",
    "train_step",
    "Policy",
    "UniformPolicy",
    "MLPPolicy",
    "DCOPolicy",
    "GenCOPolicy",
]
