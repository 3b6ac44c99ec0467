"""What one training run is: the methods ``genco train`` knows, the two protocols (:data:`PROTOCOLS`) and
:class:`TrainConfig` (checked when built). Torch-free.

Protocols. ``reference`` (the default: the settings behind the leaderboard) — Adam, lr 1e-3, validation on the
last train days, early stopping and model selection on the validation calibrated sCTR (``reference_model.validation``),
up to enough epochs to converge. ``paper`` (``--paper-defaults``) — the paper's literal Implementation Details: SGD,
lr 5e-3, one pass, every train day trained on, no validation. A tuning option given explicitly (``--epochs``,
``--lr``, ...) overrides the protocol's value; ``config.json`` records the protocol and the resolved values.

Methods: the GenCO rows of Tables 2/3 (``reference_model.model.VARIANTS``) and the baselines ``mlp`` (a
combination-CTR MLP trained by BCE with the same optimizer loop), ``dco`` (one pass of counting; its
statistics are stored as safetensors) and ``uniform`` (nothing to learn).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from genco_data.errors import InvalidInputError
from reference_model.config import VARIANTS, VOCAB_KEYS, GenCOConfig

GENCO_METHODS: tuple[str, ...] = tuple(VARIANTS)  # genco, wo_mil, wo_rl, wo_context, wo_all, f_ele, f_comb, genco_bc
GRADIENT_METHODS: tuple[str, ...] = GENCO_METHODS + ("mlp",)
METHODS: tuple[str, ...] = GRADIENT_METHODS + ("dco", "uniform")
Method = Literal["genco", "wo_mil", "wo_rl", "wo_context", "wo_all", "f_ele", "f_comb", "genco_bc", "mlp", "dco", "uniform"]
#: TrainConfig fields a --resume may change (None = keep the run's); everything else comes from the run.
RESUME_OVERRIDABLE: tuple[str, ...] = ("epochs", "quiet", "device", "threads", "log_every", "save_every", "stream", "memory_budget_gb")
VOCAB_KINDS: tuple[str, ...] = ("hashed", "exact")
#: The tuning settings of each protocol (module docstring); a TrainConfig field left None takes its protocol's value.
#: reference: tuned on seeds 100-103 of a 300 k-row default release (benchmarks/README.md, "Reference protocol"); never
#: on a reported seed.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "reference": {"optimizer": "adam", "lr": 1e-3, "epochs": 20, "validation_days": 2, "patience": 2, "min_epochs": 2,
                  "min_delta_se": 2.0, "weight_decay": 3e-4, "emb_dim": 2},
    "paper": {"optimizer": "sgd", "lr": 5e-3, "epochs": 1, "validation_days": 0, "patience": 0, "min_epochs": 0,
              "min_delta_se": 0.0, "weight_decay": 0.0, "emb_dim": 4},
}
PROTOCOL_FIELDS: tuple[str, ...] = ("optimizer", "lr", "epochs", "validation_days", "patience", "min_epochs", "min_delta_se",
                                     "weight_decay", "emb_dim")
#: What a run's config.json written before a protocol field existed meant by it (the then-fixed value), so that
#: --resume and the readers of old runs keep their meaning.
PROTOCOL_FIELDS_BEFORE: dict[str, Any] = {"min_epochs": 0, "min_delta_se": 0.0, "emb_dim": 4}
#: Fused id-table rows above which the auto choice is a sparse gradient. Measured (1 thread, 47k rows touched per
#: step): the update alone, dense 2.6 / 14 / 71 / 671 ms, sparse 5 / 13 / 15 / 34 ms at 50k / 578k / 4M / 40M rows;
#: a whole GenCO step (benchmarks/train.py): equal at 58k rows, sparse 12 % faster at 578k.
SPARSE_TABLE_ROWS = 1 << 19


def sparse_auto(optimizer: str, vocab_sizes: dict[str, int], ddp_on_gpu: bool = False) -> bool:
    """The auto choice of a sparse id-table gradient (see TrainConfig.sparse_embeddings)."""
    return optimizer == "sgd" and not ddp_on_gpu and sum(vocab_sizes.values()) > SPARSE_TABLE_ROWS
STREAM_MODES: tuple[str, ...] = ("auto", "always", "never")

__all__ = ["PROTOCOLS", "PROTOCOL_FIELDS", "PROTOCOL_FIELDS_BEFORE", "METHODS", "GENCO_METHODS", "GRADIENT_METHODS", "Method", "RESUME_OVERRIDABLE", "VOCAB_KINDS", "STREAM_MODES", "SPARSE_TABLE_ROWS", "sparse_auto", "TrainConfig"]


@dataclass
class TrainConfig:
    """One training run. The tuning fields (PROTOCOL_FIELDS) default to None = the ``protocol``'s value
    (:data:`PROTOCOLS`, filled in when built); fields marked *ours* are where the paper is silent."""

    data: str | None = None  # release folder (its impressions/train split); None only with resume
    out: str = "runs/genco"  # run folder (created; must be empty or absent unless resume)
    method: Method = "genco"  # a Table 2/3 row, see METHODS
    # "reference" (default, the board's settings) or "paper" (the paper's literal ones); see PROTOCOLS
    protocol: Literal["reference", "paper"] = "reference"
    # at most this many passes over the train rows (paper: trains daily on 33 days, count unstated; reference: an
    # upper bound, early stopping ends the run when the validation score stops improving)
    epochs: int | None = None
    batch_size: int = 1024  # global batch (paper); each DDP rank steps on batch_size / world_size rows
    optimizer: Literal["sgd", "adam"] | None = None  # paper: SGD on all parameters; reference: Adam
    lr: float | None = None  # paper: fixed 5e-3, no scheduler; reference: 1e-3
    # the last N distinct train days are the validation rows (never trained on, never the test split); 0 = none (paper)
    validation_days: int | None = None
    patience: int | None = None  # stop after this many epochs without a better validation score; 0 = never stop early
    # epochs before this one are validated and recorded but neither selected nor counted for patience (reference: 2)
    min_epochs: int | None = None
    # a later epoch is selected only when its validation score beats the best by this many standard errors of the
    # difference (ours; reference_model.validation.EarlyStopping says why); 0 = the plain maximum (paper: no selection)
    min_delta_se: float | None = None
    # ours: L2 on the fused id table only (the ridge prior of benchmarks/learnable.py's logit: rarely shown ids shrink
    # towards 0 instead of winning the argmax on noise); 0 = none (paper)
    weight_decay: float | None = None
    # id-embedding dim of the GenCO methods (paper: 4; reference: 2, chosen on seeds 100-103: with 4 dims the element
    # scores of widely shown titles rank against their quality, benchmarks/README.md). --genco-set emb_dim wins.
    emb_dim: int | None = None
    seed: int = 0  # initial weights, policy-gradient draws (per rank), validation draws
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    bf16: bool = False  # bf16 autocast of the forward pass (GPU; works on CPU but is rarely faster)
    threads: int = 1  # CPU intra-op threads (ours: reproduce runs one 1-thread job per core; a lone run on an idle
    # 2-core box gains 1.4x from 2 threads, a busy one thrashes — benchmarks/TRAIN.md)
    max_rows: int | None = None  # keep only the most recent max_rows train rows (quick runs, tests)
    resume: bool = False  # continue the run in `out` from its last checkpoint
    packed: bool = True  # GenCO's fast path (real candidates only); False = the padded reference path
    # sparse gradient of the fused id table (only the rows a batch touches are updated: a dense [V, d] gradient and
    # update per step grows with the tables, 1e9 rows at the paper's scale). None = auto (sparse_auto): sparse with SGD
    # once the table exceeds SPARSE_TABLE_ROWS rows, except DDP on GPUs (NCCL has no sparse all-reduce); dense with Adam
    sparse_embeddings: bool | None = None
    # id tables (reference_model/train_data.py): "hashed" = the paper's hash embeddings, sized by the manifest's
    # distinct-id counts x hash_size_factor (no pass over the data); "exact" = one vocabulary pass over the train rows
    vocab: Literal["hashed", "exact"] = "hashed"
    hash_size_factor: float = 1.0  # buckets per distinct id (paper: "determined by the number of its distinct ids")
    # train rows: "auto" streams from the shards when the padded split exceeds memory_budget_gb, else pads it once
    # (device-resident on a GPU when it fits); "always" / "never" force one path. Batches are the same either way.
    stream: Literal["auto", "always", "never"] = "auto"
    memory_budget_gb: float | None = None  # None = half of the available memory, shared by this machine's processes
    # GenCOConfig overrides on top of the method's variant (`--genco-set NAME=VALUE`), e.g. the options where the
    # paper is silent: off_policy_clip, logged_baseline, emb_init_std, pool_context (GENCO methods only)
    genco_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    log_every: int = 50  # steps between metrics.jsonl lines (and progress-bar updates)
    save_every: int = 100  # steps between checkpoints (0 = only at epoch ends); every epoch end saves too
    quiet: bool = False  # no progress bar, no per-epoch lines
    # baselines
    mlp_cap: int = 64  # MLP: score every combination, or this many uniform draws when there are more
    dco_delta: float = 0.05  # DCO: confidence of the successive-elimination radius
    dco_prior: float = 10.0  # DCO: strength of the element-level prior (pseudo-impressions)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise InvalidInputError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {self.protocol!r}")
        for name in PROTOCOL_FIELDS:  # None = the protocol's (under --resume, None = the run's: filled by train)
            if getattr(self, name) is None and not (self.resume and name in RESUME_OVERRIDABLE):
                setattr(self, name, PROTOCOLS[self.protocol][name])
        for name in ("weight_decay", "min_delta_se"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf")):
                raise InvalidInputError(f"--{name.replace('_', '-')} must be a number >= 0; got {v!r}")
        for name in ("validation_days", "patience", "min_epochs"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InvalidInputError(f"--{name.replace('_', '-')} must be an integer >= 0; got {v!r}")
        ed = self.emb_dim
        if ed is not None and (isinstance(ed, bool) or not isinstance(ed, int) or ed < 1):
            raise InvalidInputError(f"--emb-dim must be an integer >= 1; got {ed!r}")
        if self.method not in METHODS:
            raise InvalidInputError(f"--method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.optimizer not in ("sgd", "adam") and not (self.optimizer is None and self.resume):
            raise InvalidInputError(f"--optimizer must be 'sgd' or 'adam'; got {self.optimizer!r}")
        if self.device not in ("auto", "cpu", "cuda") and not (self.device is None and self.resume):
            raise InvalidInputError(f"--device must be auto, cpu or cuda; got {self.device!r}")
        for name in ("epochs", "batch_size", "threads", "log_every"):
            v = getattr(self, name)
            if v is None and self.resume and name in RESUME_OVERRIDABLE:
                continue  # taken from the run being resumed
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be an integer >= 1; got {v!r}")
        if not (self.save_every is None and self.resume) and (isinstance(self.save_every, bool) or not isinstance(self.save_every, int) or self.save_every < 0):
            raise InvalidInputError(f"--save-every must be an integer >= 0; got {self.save_every!r}")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 1):
            raise InvalidInputError(f"--max-rows must be an integer >= 1; got {self.max_rows!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0) and not (self.lr is None and self.resume):
            raise InvalidInputError(f"--lr must be a positive number; got {self.lr!r}")
        if self.vocab not in VOCAB_KINDS:
            raise InvalidInputError(f"--vocab must be one of {', '.join(VOCAB_KINDS)}; got {self.vocab!r}")
        if not (isinstance(self.hash_size_factor, (int, float)) and math.isfinite(self.hash_size_factor) and self.hash_size_factor > 0):
            raise InvalidInputError(f"--hash-size-factor must be a positive number; got {self.hash_size_factor!r}")
        if self.stream not in STREAM_MODES and not (self.stream is None and self.resume):
            raise InvalidInputError(f"--stream must be one of {', '.join(STREAM_MODES)}; got {self.stream!r}")
        if self.memory_budget_gb is not None and not (isinstance(self.memory_budget_gb, (int, float)) and self.memory_budget_gb > 0):
            raise InvalidInputError(f"--memory-budget-gb must be a positive number; got {self.memory_budget_gb!r}")
        if self.sparse_embeddings and self.optimizer != "sgd":
            raise InvalidInputError("--sparse-embeddings needs --optimizer sgd (Adam does not take sparse gradients)")
        if self.genco_options:
            if self.method not in GENCO_METHODS:
                raise InvalidInputError(f"--genco-set applies to the GenCO methods ({', '.join(GENCO_METHODS)}), not {self.method!r}")
            try:  # check names and values now, with placeholder vocabularies, not after loading the data
                GenCOConfig.variant(self.method, {k: 2 for k in VOCAB_KEYS}, **self.genco_options)
            except (TypeError, InvalidInputError) as e:
                raise InvalidInputError(f"--genco-set: {e}") from None
        if self.data is None and not self.resume:
            raise InvalidInputError("--data RELEASE is required (or --resume to continue a run)")
        if not 0 < self.dco_delta < 1 or self.dco_prior <= 0 or self.mlp_cap < 1:
            raise InvalidInputError(f"need 0 < dco_delta < 1, dco_prior > 0, mlp_cap >= 1; got {self.dco_delta}, {self.dco_prior}, {self.mlp_cap}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {**PROTOCOL_FIELDS_BEFORE, **d}  # a run from before these fields: their then-fixed values
        return cls(**{k: v for k, v in d.items() if k in known})
