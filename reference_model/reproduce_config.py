"""What ``genco reproduce`` runs: the methods in Table 2 order and their display labels, the ablations of
Table 3, the training settings (:data:`SETTINGS`: the paper's protocol — batch 1024, chronological order, no
scheduler, λ = 0.15, rewards 1 / −0.1 — with the choices the paper leaves open stated there) and
:class:`ReproduceConfig`. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genco_data.errors import InvalidInputError
from reference_model.train_config import PROTOCOL_FIELDS, PROTOCOLS

__all__ = ["METHOD_ORDER", "ABLATIONS", "LABELS", "DEFAULT_SEEDS", "DETERMINISTIC", "SETTINGS", "QUICK_SEEDS", "ReproduceConfig"]

#: Table 2 rows in display order; the ablations of Table 3.
METHOD_ORDER: tuple[str, ...] = ("uniform", "dco", "mlp", "f_ele", "f_comb", "genco", "wo_mil", "wo_rl", "wo_context", "wo_all",
                                 "genco_literal", "genco_bc")
ABLATIONS: tuple[str, ...] = ("wo_mil", "wo_rl", "wo_context", "wo_all")
LABELS: dict[str, str] = {
    "uniform": "Uniform", "dco": "DCO", "mlp": "MLP", "f_ele": "f_ele only", "f_comb": "f_comb only", "genco": "GenCO",
    "wo_mil": "GenCO w/o MIL", "wo_rl": "GenCO w/o RL", "wo_context": "GenCO w/o context", "wo_all": "GenCO w/o all",
    "genco_literal": "GenCO, Eq. 22 literal (no off-policy correction)",
    "genco_bc": "GenCO + logging prior (ours)",
}
DEFAULT_SEEDS = 5
#: Methods whose predictions do not depend on the seed (DCO counts and ranks deterministically).
DETERMINISTIC: frozenset[str] = frozenset({"dco"})

#: Training settings of reproduce (and the demo): the reference protocol of ``genco train`` (train_config.PROTOCOLS:
#: Adam lr 1e-3 — paper SGD at 5e-3 barely moves on 200-300 k rows, Adam at >= 1e-2 lets the logged policy-gradient
#: term run away; validation on the last train days with early stopping and model selection), so each seed of the
#: board is exactly ``genco train --method M --seed k`` with no tuning flag. Quick: one epoch on fewer rows.
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"protocol": "reference", **{k: PROTOCOLS["reference"][k] for k in PROTOCOL_FIELDS}, "max_rows": None},
    "quick": {"protocol": "reference", **{k: PROTOCOLS["reference"][k] for k in PROTOCOL_FIELDS}, "epochs": 1, "max_rows": 50_000},
}
QUICK_SEEDS = 2


@dataclass
class ReproduceConfig:
    data: str  # release folder
    out: str  # output folder
    seeds: int = DEFAULT_SEEDS  # seeds 0..seeds-1 per method
    quick: bool = False  # SETTINGS["quick"] and at most QUICK_SEEDS seeds
    methods: tuple[str, ...] | None = None  # subset of METHOD_ORDER (default all)
    jobs: int | None = None  # parallel runs (default min(cpu count, 4); 1 on cuda)
    device: str = "cpu"
    quiet: bool = False
    # seed of every run's prediction draws (GenCO's K samples, MLP's capped sample). None (default): each run's own
    # training seed, so every seed's predictions differ (the board's rule). An int: the same draws for every training
    # seed, so the spread over seeds is the training noise alone. Uniform, which has no training, always draws with
    # its seed k (identical files for two seeds would be refused by the leaderboard).
    prediction_seed: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1} (tests)
    genco_options: dict[str, Any] = field(default_factory=dict)  # GenCOConfig overrides for every GenCO variant

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise InvalidInputError(f"--seeds must be an integer >= 1; got {self.seeds!r}")
        methods = self.methods or METHOD_ORDER
        unknown = [m for m in methods if m not in METHOD_ORDER]
        if unknown:
            raise InvalidInputError(f"--methods: unknown {', '.join(unknown)}; expected a subset of {', '.join(METHOD_ORDER)}")
        self.methods = tuple(m for m in METHOD_ORDER if m in methods)
        if self.jobs is not None and self.jobs < 1:
            raise InvalidInputError(f"--jobs must be >= 1; got {self.jobs}")
        if self.prediction_seed is not None and (isinstance(self.prediction_seed, bool) or not isinstance(self.prediction_seed, int)
                                                 or self.prediction_seed < 0):
            raise InvalidInputError(f"--prediction-seed must be an integer >= 0; got {self.prediction_seed!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise InvalidInputError(f"--device must be cpu, cuda or auto; got {self.device!r}")

    @property
    def n_seeds(self) -> int:
        return min(self.seeds, QUICK_SEEDS) if self.quick else self.seeds

    def settings(self) -> dict[str, Any]:
        return {**SETTINGS["quick" if self.quick else "full"], **self.overrides, "genco_options": dict(self.genco_options),
                "prediction_seed": self.prediction_seed}
