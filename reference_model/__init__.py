"""Reference models for the GenCO dataset: GenCO itself (model, losses) and the Table 2 baselines.

Needs torch (``pip install genco-data[torch]``); ``import genco_data`` never imports this package.

Modules, lowest first:

- GenCO: ``config`` (GenCOConfig, VARIANTS), ``inputs`` (the batch and its checks), ``layers`` (MLPs,
  embeddings), ``attention`` (cross-component attention), ``selection`` (sampling, greedy, enumeration),
  ``model`` (GenCO); ``losses``; ``baselines``;
- training: ``train_config`` (methods, protocols, TrainConfig), ``validation`` (the last train days, their
  calibrated-sCTR score, early stopping), ``policies`` (a method's policy and objective), ``data``
  (a split as one table), ``distributed`` (DDP, sharding), ``checkpoint`` (the run folder, load_run),
  ``train`` (the loop and ``main``, ``python -m reference_model.train``); ``predict``;
- ``reproduce_config`` (methods, settings), ``results`` (tables), ``figures`` (PNGs), ``reproduce``; ``demo``;
  ``entry`` (the ``genco`` verbs).
"""
from __future__ import annotations

from reference_model.baselines import DCOPolicy, GenCOPolicy, MLPPolicy, Policy, UniformPolicy
from reference_model.losses import LossBreakdown, genco_loss, train_step
from reference_model.config import VARIANTS, GenCOConfig
from reference_model.inputs import check_batch
from reference_model.model import GenCO, GenCOOutput
from reference_model.selection import Selection, enumerate_combinations, greedy_slots, sample_slots, slots_to_original

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
