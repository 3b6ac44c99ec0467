"""What ``genco reproduce`` runs: the methods in Table 2 order and their display labels, the ablations of
Table 3, the training settings (:data:`SETTINGS`: the paper's protocol — batch 1024, chronological order, no
scheduler, λ = 0.15, rewards 1 / −0.1 — with the choices the paper leaves open stated there) and
:class:`ReproduceConfig`. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genco_data.errors import InvalidInputError

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

#: Training settings of reproduce (and the demo). Paper: SGD, lr 5e-3, batch 1024, chronological, no
#: scheduler. Ours (the paper is silent or its setting does not train here, see benchmarks/TRAIN.md):
#: Adam at lr 1e-3 — paper SGD at 5e-3 barely moves in a few epochs on 200 k rows, Adam at >= 1e-2 lets the
#: logged policy-gradient term (negative reward for most rows, unbounded below) run away; epochs: what fits
#: the 30-minute budget on 2 CPU cores. DCO and uniform have nothing to tune but DCO's (delta, prior).
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"optimizer": "adam", "lr": 1e-3, "epochs": 3, "max_rows": None},
    "quick": {"optimizer": "adam", "lr": 1e-3, "epochs": 1, "max_rows": 50_000},
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
        if self.device not in ("cpu", "cuda", "auto"):
            raise InvalidInputError(f"--device must be cpu, cuda or auto; got {self.device!r}")

    @property
    def n_seeds(self) -> int:
        return min(self.seeds, QUICK_SEEDS) if self.quick else self.seeds

    def settings(self) -> dict[str, Any]:
        return {**SETTINGS["quick" if self.quick else "full"], **self.overrides, "genco_options": dict(self.genco_options)}
