"""GenCO's hyper-parameters: :class:`GenCOConfig` (the paper's values, and ours where it is silent), the
Table 2/3 rows as :data:`VARIANTS` of it, ``--genco-set NAME=VALUE`` parsing; and the conventions they rest
on (vocabulary keys and indices, inference modes, the slot grid). Torch-free.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from genco_data.format.components import COMPONENTS, N_COMPONENTS, PAD_TO, REWARD_CLICK, REWARD_NO_CLICK
from genco_data.errors import InvalidInputError
from genco_data.overrides import parse_overrides

#: Vocabulary conventions of :mod:`genco_data.load`: index 0 = padding / missing, 1 = out of vocabulary.
PAD_INDEX = 0
OOV_INDEX = 1
#: Context vocabularies (besides one per component) that the model embeds.
# Names = genco_data.load.VOCAB_NAMES (the column names), so Vocabularies.sizes() plugs in directly.
CONTEXT_VOCABS: tuple[str, ...] = ("user_id", "ad_id", "query_id", "query_segments", "user_age", "user_gender", "category")
VOCAB_KEYS: tuple[str, ...] = CONTEXT_VOCABS + COMPONENTS
INFERENCE_MODES: tuple[str, ...] = ("sample", "greedy", "enumerate")
InferenceMode = Literal["sample", "greedy", "enumerate"]
#: Grid of slots per row: 6 components × 15 candidates.
N_SLOTS = N_COMPONENTS * PAD_TO

__all__ = [
    "GenCOConfig",
    "VARIANTS",
    "VOCAB_KEYS",
    "CONTEXT_VOCABS",
    "INFERENCE_MODES",
    "InferenceMode",
    "LOGGED_BASELINES",
    "PAD_INDEX",
    "OOV_INDEX",
    "N_SLOTS",
]


LOGGED_BASELINES: tuple[str, ...] = ("none", "batch", "value")
#: GenCOConfig fields that GenCOConfig.parse_options (genco train/reproduce --genco-set) does not set.
_NOT_SETTABLE = frozenset({"vocab_sizes", "pad_to", "packed", "sparse_embeddings", "encoder_dims", "phi_dims"})

VARIANTS: dict[str, dict[str, Any]] = {
    # Table 2 / Table 3 rows as config overrides of the full model.
    "genco": {},
    "wo_mil": {"use_mil": False},
    "wo_rl": {"use_rl": False},
    "wo_context": {"use_cross_attention": False},
    "wo_all": {"use_mil": False, "use_rl": False, "use_cross_attention": False},
    # f_ele only: the context-aware generation function alone, trained with L_ele, greedy per component.
    "f_ele": {"comb_loss": False, "use_rl": False, "inference": "greedy"},
    # f_comb only: the combination reward head alone, trained with L_comb, choosing among enumerated
    # combinations (all of them, or a uniform sample of `enumerate_cap` when the product is larger).
    "f_comb": {"ele_loss": False, "use_rl": False, "inference": "enumerate"},
    # Not in the paper (ours, see bc_weight): GenCO plus a behaviour-cloning prior on the logged combinations,
    # greedy per component: what imitating the logging policy's knowledge adds to learning from clicks.
    "genco_bc": {"bc_weight": 1.0, "inference": "greedy"},
    # The paper's Eq. 22 read literally on our production-logged train split: no importance weight, no baseline.
    # Shown to document why GenCO corrects it (benchmarks/README.md): it pushes π away from the logger's choices.
    "genco_literal": {"off_policy_clip": 0.0, "logged_baseline": "none"},
}


@dataclass
class GenCOConfig:
    """Every hyper-parameter of :class:`GenCO`; defaults = the paper's Implementation Details where it gives them,
    ours where it is silent (marked "ours"; the measurements behind them are in benchmarks/README.md)."""

    vocab_sizes: dict[str, int]  # name -> table size, for VOCAB_KEYS (from the train Vocabularies)
    emb_dim: int = 4  # hashed-id embeddings of dim 4 (paper)
    encoder_dims: tuple[int, ...] = (32, 16, 8)  # context encoder MLP with BatchNorm; last = dim of h (paper)
    attn_dim: int = 4  # cross-component attention hidden dim = dim of z (paper); one head, no output proj (ours)
    phi_dims: tuple[int, ...] = (64, 32, 8)  # shared φ / π_θ hidden layers, then -> 1 (paper)
    pad_to: int = PAD_TO  # candidates per component after pad/truncate (paper); fixed by the data contract
    # Enc input (paper: "ad, request, stat(S)"; the exact statistics are ours): user, ad, query, mean segment,
    # age, gender, category embeddings; per component log(1+n) and presence; and, if pool_context, the mean
    # candidate embedding of each component — off by default: it lets the element embeddings serve as context, and
    # every element-level learner did better without it (benchmarks/README.md).
    pool_context: bool = False
    # Std of the normal init of every id-embedding table (the paper is silent; ours). torch's N(0, 1) gives
    # each element a random score offset of a few tenths of a logit, larger than the planted creative
    # effects, and the few exposures of an element cannot wash it out; small-std init (common in CTR models)
    # starts every element equal, so differences in its score are learned from clicks (benchmarks/README.md).
    emb_init_std: float = 0.01
    # φ's output bias (and the w/o-MIL combination MLP's) starts at logit(train CTR) instead of 0 (ours; the paper is
    # silent). Why: from 0 every row's loss first pulls the logit down towards the base rate, and through φ's ReLUs
    # that pull can switch every unit off for good — the id table then decays to 0 and the policy stays uniform
    # (1 of 9 seeds at 400 k train rows; benchmarks/README.md, "Model selection"). Runs saved before the field read it
    # as False.
    output_bias_init: bool = True
    use_mil: bool = True  # False = "w/o MIL": separate combination MLP on concatenated features (see GenCO)
    use_rl: bool = True  # False = "w/o RL" (λ = 0)
    use_cross_attention: bool = True  # False = "w/o context": z ≡ 0
    ele_loss: bool = True  # train with L_ele (False for the "f_comb only" row)
    comb_loss: bool = True  # train with L_comb (False for the "f_ele only" row)
    rl_lambda: float = 0.15  # λ in L = L_MIL + λ·L_RL (paper)
    reward_click: float = REWARD_CLICK  # 1 (paper)
    reward_no_click: float = REWARD_NO_CLICK  # -0.1 (paper)
    # Predicted-reward policy gradient (ours: the paper names "observed or predicted rewards"): per row,
    # rl_samples combinations drawn from π, rewarded by the expected reward under the detached combination
    # CTR σ(s), with a leave-one-out baseline. 0 = logged combinations only.
    rl_samples: int = 4
    # Off-policy correction of the logged policy-gradient term (ours; the paper trains on rows its own policy
    # sampled and is silent here): importance weight min(π/μ, clip) per shown element, μ = the logged
    # propensity. 0 = off (Eq. 22 read literally, the genco_literal variant; on production-logged rows it pushes
    # π away from production's choices). 100: clip 10 biased it back (benchmarks/README.md).
    off_policy_clip: float = 100.0
    # Baseline of the logged term (ours; "none" = the paper's Eq. 22). "batch": rewards minus their batch mean,
    # so a reward shift changes nothing; with off_policy_clip this is the gradient of self-normalised IPS
    # (translation-invariant, unlike plain IPS, which with mostly negative rewards still learns to avoid whatever
    # the logger showed: "propensity overfitting", Swaminathan & Joachims 2015). "value": minus the current
    # policy's predicted reward in the row's context (mean of r̂ over its rl_samples draws, detached) — an
    # advantage, which also removes the ad's appeal that a raw reward credits to whatever the ad showed.
    logged_baseline: str = "value"
    # Behaviour cloning of the logging policy (ours, NOT in the paper; 0 = the paper's loss): adds
    # bc_weight · mean_i −Σ_j log π(c_ij) over the logged combinations, i.e. the logged REINFORCE term with a
    # constant reward of 1, which pulls π towards what the production policy showed (its knowledge).
    bc_weight: float = 0.0
    inference: InferenceMode = "sample"  # default mode of GenCO.select
    # K in Eq. 24 (paper: "K", value unstated; ours). 64, not 16: once π is informative (2-dim embeddings), more draws
    # put better combinations before s — on tuning seeds 100-102 at epoch 3, +16.6 % of the headroom against +13.0 %
    # with 16 (benchmarks/README.md, "Reference protocol"); runs saved with another K keep theirs.
    inference_samples: int = 64
    # "sample" mode: the greedy combination (per-component argmax of π) is one more candidate that s scores (ours, not
    # in the paper's Eq. 24-25; s then mostly keeps it). Tuning seeds 100-102, epoch 4: +15.7 % of the headroom
    # against +14.6 % without it (greedy alone +15.8 %). Runs saved before the field read it as False.
    include_greedy: bool = True
    enumerate_cap: int = 64  # "enumerate" mode: all combinations if at most this many, else a uniform sample
    packed: bool = True  # compute on real candidates only (fast); False = padded reference path
    attn_chunks: int = 8  # packed attention: rows grouped by candidate count into this many dense blocks
    # Sparse gradients for the hashed-id tables (optimizer must accept them: SGD does). Off by default; with
    # large vocabularies the dense [V, d] gradient and update of every table dominate a CPU step.
    sparse_embeddings: bool = False

    def __post_init__(self) -> None:
        self.encoder_dims = tuple(int(d) for d in self.encoder_dims)
        self.phi_dims = tuple(int(d) for d in self.phi_dims)
        self.vocab_sizes = {str(k): int(v) for k, v in dict(self.vocab_sizes).items()}
        missing = [k for k in VOCAB_KEYS if k not in self.vocab_sizes]
        if missing:
            raise InvalidInputError(f"GenCOConfig.vocab_sizes lacks {missing}; expected keys {list(VOCAB_KEYS)}")
        small = {k: v for k, v in self.vocab_sizes.items() if k in VOCAB_KEYS and v < 2}
        if small:
            raise InvalidInputError(f"GenCOConfig.vocab_sizes must be >= 2 (padding + OOV); got {small}")
        for name in ("emb_dim", "attn_dim", "pad_to", "inference_samples", "enumerate_cap", "attn_chunks"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"GenCOConfig.{name} must be >= 1; got {getattr(self, name)}")
        if not self.encoder_dims or not self.phi_dims or min(self.encoder_dims + self.phi_dims) < 1:
            raise InvalidInputError(f"GenCOConfig layer dims must be positive; got {self.encoder_dims}, {self.phi_dims}")
        if self.pad_to != PAD_TO:
            raise InvalidInputError(f"GenCOConfig.pad_to must equal the data contract's PAD_TO={PAD_TO}; got {self.pad_to}")
        if self.inference not in INFERENCE_MODES:
            raise InvalidInputError(f"GenCOConfig.inference must be one of {INFERENCE_MODES}; got {self.inference!r}")
        if self.logged_baseline not in LOGGED_BASELINES:
            raise InvalidInputError(f"GenCOConfig.logged_baseline must be one of {LOGGED_BASELINES}; got {self.logged_baseline!r}")
        if self.logged_baseline == "value" and self.use_rl and self.rl_samples < 1:
            raise InvalidInputError("GenCOConfig: logged_baseline 'value' needs rl_samples >= 1 (the draws it averages)")
        if not (self.off_policy_clip >= 0 and 0 < self.emb_init_std < math.inf):
            raise InvalidInputError(f"GenCOConfig: need off_policy_clip >= 0 and emb_init_std > 0; got {self.off_policy_clip}, {self.emb_init_std}")
        if self.bc_weight < 0:
            raise InvalidInputError(f"GenCOConfig.bc_weight must be >= 0; got {self.bc_weight}")
        if self.rl_lambda < 0 or self.rl_samples < 0:
            raise InvalidInputError(f"GenCOConfig.rl_lambda and rl_samples must be >= 0; got {self.rl_lambda}, {self.rl_samples}")
        if not (self.ele_loss or self.comb_loss or self.use_rl):
            raise InvalidInputError("GenCOConfig trains nothing: ele_loss, comb_loss and use_rl are all False")
        if not self.comb_loss and (self.inference != "greedy" or (self.use_rl and self.rl_samples > 0)):
            raise InvalidInputError(
                "GenCOConfig: without comb_loss the combination head is untrained, so inference must be 'greedy' "
                f"and rl_samples 0 or use_rl False; got inference={self.inference!r}, rl_samples={self.rl_samples}"
            )

    @property
    def h_dim(self) -> int:
        return self.encoder_dims[-1]

    @property
    def feature_dim(self) -> int:
        """Dim of f_e = (emb(e), emb(C_j), z)."""
        return 2 * self.emb_dim + self.attn_dim

    @classmethod
    def parse_options(cls, items: list[str], flag: str = "--genco-set") -> dict[str, Any]:
        """``NAME=VALUE`` strings -> config overrides, each value parsed as its field's type (bool: true/false).
        Settable: the scalar fields other than vocab_sizes, pad_to, packed and sparse_embeddings (those belong
        to the data contract or have their own train options). Values are checked when a config is built."""
        return parse_overrides(cls, items, flag, exclude=_NOT_SETTABLE)

    @classmethod
    def variant(cls, name: str, vocab_sizes: dict[str, int], **overrides: Any) -> "GenCOConfig":
        """The config of a named Table 2/3 row (:data:`VARIANTS`), with further ``overrides``."""
        if name not in VARIANTS:
            raise InvalidInputError(f"unknown GenCO variant {name!r}; expected one of {sorted(VARIANTS)}")
        return cls(vocab_sizes=vocab_sizes, **{**VARIANTS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GenCOConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInputError(f"GenCOConfig.from_dict: unknown keys {unknown}; expected a subset of {sorted(known)}")
        # a config saved before a field: the inference / init it was run with
        return cls(**{"include_greedy": False, "output_bias_init": False, **d})
