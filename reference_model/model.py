"""GenCO (arXiv 2508.09730): non-autoregressive generation of a creative combination + multi-instance reward.

For one impression row (ad A_i, request q, candidate pools S_{i,1..6}, padded to 15 slots each)::

    h        = Enc(A_i, q, stat(S_i))                                    context, (B, 8)        [Eq. 14]
    z_k^j    = Attn(emb(e_k^j), {emb(e_k^j)} ∪ ⋃_{j'≠j} {emb(e_l^{j'})}_l)  cross-component, (B, 6, 15, 4) [Eq. 13]
    f_e      = (emb(e), emb(C_j), z)                                     element feature, 12       [Eq. 16]
    p_k^j    = φ(h, f_e)                                                 element logit, (B, 6, 15) [Eq. 15, 19]
    π(e_k^j) = softmax_{k valid} p^j                                     one categorical per component [Eq. 14-15]
    f_c      = Σ_j w_j · f_e(c_j),  w = softmax_{j present}(⟨W_q h, W_k f_e(c_j)⟩ / √4)   [Eq. 17]
    s        = φ(h, f_c)                                                 combination logit          [Eq. 18]

φ = π_θ is one MLP [64, 32, 8] → 1 (ReLU) shared by elements and combinations. Inference (Eq. 24-25): draw K
combinations from π in parallel, score each with s, keep the argmax.

Two numerically equivalent execution paths (``GenCOConfig.packed``):

- padded (the readable reference): attention over the full (B, 90, 90) grid and φ on all B·6·15 slots;
- packed (the fast one, default): only the N ≈ 27 % real candidates are embedded and scored (gathered with
  ``mask.nonzero`` and scattered back), and the attention runs on rows re-packed densely, grouped by their
  number of candidates so that the (rows, L, L) score tensors stay small.

Where the paper is silent we chose (all documented at the field of :class:`GenCOConfig`): the encoder's input,
the attention's single head without output projection, the MIL weight parametrization, the "without MIL"
ablation, the predicted-reward policy-gradient term, the off-policy correction of the logged term, the
embedding init.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genco_data.format.components import COMPONENTS, N_COMPONENTS, PAD_TO, REWARD_CLICK, REWARD_NO_CLICK
from genco_data.errors import InvalidInputError, SchemaError
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
    "GenCO",
    "GenCOOutput",
    "Selection",
    "BatchLike",
    "VARIANTS",
    "VOCAB_KEYS",
    "check_batch",
    "sample_slots",
    "greedy_slots",
    "enumerate_combinations",
    "slots_to_original",
]


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


# --------------------------------------------------------------------------------------------------- config
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
    inference_samples: int = 16  # K in Eq. 24 (paper: "K"; value ours)
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
        return cls(**d)


# ---------------------------------------------------------------------------------------------- small parts
class Selection(NamedTuple):
    """What a policy returns for a batch."""

    choices: Tensor  # int64 (B, 6): chosen slot per component, -1 where the component is absent
    scores: Tensor | None  # float (B, 6, 15): per-slot score (GenCO: element logit p), -inf at padding


def _mlp(dims: list[int], batchnorm: bool = False) -> nn.Sequential:
    """Linear layers dims[0] -> … -> dims[-1]; BatchNorm after every Linear if ``batchnorm`` (the last one
    included: h is batch-normalised); ReLU after every Linear but the last."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if batchnorm:
            layers.append(nn.BatchNorm1d(dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def embed(table: nn.Embedding, idx: Tensor) -> Tensor:
    """``table(idx)`` -> (*idx.shape, d). Dense tables go through ``index_select``, whose backward is one
    ``index_add`` (4-5x faster on CPU than ``embedding_dense_backward``, same gradient); sparse tables keep
    ``nn.Embedding`` (sparse gradients)."""
    if table.sparse:
        return table(idx)
    return table.weight.index_select(0, idx.reshape(-1)).view(*idx.shape, table.embedding_dim)


def _neg(dtype: torch.dtype) -> float:
    """The most negative finite value: a masked logit whose softmax weight is exactly 0, never NaN."""
    return torch.finfo(dtype).min


class ContextFeatures(nn.Module):
    """Request/ad embeddings: user, ad, query, masked mean of the query segments, age, gender, category.

    ``forward(batch) -> (B, 7·d)``.
    """

    def __init__(self, vocab_sizes: dict[str, int], emb_dim: int, sparse: bool = False) -> None:
        super().__init__()
        self.tables = nn.ModuleDict({k: nn.Embedding(vocab_sizes[k], emb_dim, sparse=sparse) for k in CONTEXT_VOCABS})
        self.out_dim = len(CONTEXT_VOCABS) * emb_dim

    def forward(self, batch: BatchLike) -> Tensor:
        t = self.tables
        seg = embed(t["query_segments"], batch.query_segments)  # (B, S, d)
        m = batch.query_segments_mask.unsqueeze(-1).to(seg.dtype)  # (B, S, 1)
        seg = (seg * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, d); zeros when the query has no segment
        parts = [
            embed(t["user_id"], batch.user_id),
            embed(t["ad_id"], batch.ad_id),
            embed(t["query_id"], batch.query_id),
            seg,
            embed(t["user_age"], batch.user_age),
            embed(t["user_gender"], batch.user_gender),
            embed(t["category"], batch.category),
        ]
        return torch.cat(parts, dim=-1)  # (B, 7d)


class ElementEmbeddings(nn.Module):
    """One hashed-id table per component, stored as one concatenated table with per-component row offsets
    (identical to six ``nn.Embedding`` but one lookup). ``forward(candidates (…, 6, 15)) -> (…, 6, 15, d)``."""

    def __init__(self, vocab_sizes: dict[str, int], emb_dim: int, sparse: bool = False) -> None:
        super().__init__()
        sizes = [vocab_sizes[c] for c in COMPONENTS]
        self.table = nn.Embedding(sum(sizes), emb_dim, sparse=sparse)
        offsets = torch.tensor([0] + sizes[:-1], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)  # (6,) derived from the config

    def global_ids(self, candidates: Tensor) -> Tensor:
        """(…, 6, 15) component-local indices -> (…, 6, 15) rows of the concatenated table."""
        return candidates + self.offsets[:, None]

    def forward(self, candidates: Tensor) -> Tensor:
        return embed(self.table, self.global_ids(candidates))


# --------------------------------------------------------------------------------------- packed index layout
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


# ----------------------------------------------------------------------------------------------- the model
class GenCOOutput(NamedTuple):
    """Everything the losses need from one forward pass (B rows, K sampled combinations)."""

    h: Tensor  # (B, 8) context embedding
    logits: Tensor  # (B, 6, 15) element logits p = φ(h, f_e); most-negative float at padding
    log_probs: Tensor  # (B, 6, 15) log π(e | h, S_j); 0 at padding and for absent components
    present: Tensor  # bool (B, 6) the logged row shows this component
    p_exposed: Tensor  # (B, 6) logit p of the shown element; 0 where absent
    logp_exposed: Tensor  # (B, 6) log π of the shown element; 0 where absent
    s: Tensor  # (B,) combination logit of the logged combination
    w: Tensor | None  # (B, 6) MIL weights of the logged combination (None without MIL)
    sampled: Tensor | None  # int64 (B, K, 6) slots drawn from π (detached draw), -1 absent
    logp_sampled: Tensor | None  # (B, K) Σ_j log π(sampled_j), with gradient
    s_sampled: Tensor | None  # (B, K) combination logit of the sampled combinations, no gradient


class _Elements(NamedTuple):
    logits: Tensor  # (B, 6, 15)
    log_probs: Tensor  # (B, 6, 15)
    feats: Tensor  # (M + 1, F) element features f_e; the last row is zeros (absent components)
    index: Tensor  # (B, 6, 15) slot -> row of feats


class GenCO(nn.Module):
    """The GenCO policy π_θ and its combination reward head (see the module docstring for the math).

    ``use_mil=False`` ("w/o MIL", our reading of a silent paper): bag and instances are no longer tied —
    no attention pooling and no shared π_θ for the combination. The combination reward is an ordinary CTR
    MLP (φ's widths) on concat(h, f_e of each shown element or zeros, presence flags), trained by L_comb;
    elements keep L_ele with the bag's click copied to every instance. Inference is unchanged.
    """

    def __init__(self, config: GenCOConfig) -> None:
        super().__init__()
        self.config = c = config
        d, F_ = c.emb_dim, c.feature_dim
        self.context = ContextFeatures(c.vocab_sizes, d, sparse=c.sparse_embeddings)
        self.elements = ElementEmbeddings(c.vocab_sizes, d, sparse=c.sparse_embeddings)
        self.component_type = nn.Embedding(N_COMPONENTS, d)  # emb(C_j)
        if c.emb_init_std != 1.0:  # 1.0 keeps torch's own draw, so earlier runs reproduce bit for bit
            with torch.no_grad():
                for table in [*self.context.tables.values(), self.elements.table]:
                    table.weight.normal_(0.0, c.emb_init_std)
        enc_in = self.context.out_dim + 2 * N_COMPONENTS + (N_COMPONENTS * d if c.pool_context else 0)
        self.encoder = _mlp([enc_in, *c.encoder_dims], batchnorm=True)  # -> h, last layer Linear+BN
        self.attention = CrossComponentAttention(d, c.attn_dim)
        self.phi = _mlp([c.h_dim + F_, *c.phi_dims, 1])  # shared φ = π_θ
        if c.use_mil:
            self.mil_query = nn.Linear(c.h_dim, c.attn_dim)  # context -> query of the MIL attention
            self.mil_key = nn.Linear(F_, c.attn_dim, bias=False)  # element feature -> key
        else:
            self.comb_mlp = _mlp([c.h_dim + N_COMPONENTS * (F_ + 1), *c.phi_dims, 1])

    # -- building blocks -----------------------------------------------------------------------------------
    def encode(self, batch: BatchLike, pool_mean: Tensor | None) -> Tensor:
        """h = Enc(context, stat(S)) -> (B, 8). pool_mean (B, 6, d) masked mean candidate embedding."""
        present = batch.mask.any(-1).to(torch.float32)  # (B, 6)
        log_n = torch.log1p(batch.n_candidates.to(torch.float32))  # (B, 6) full pool size
        parts = [self.context(batch), log_n, present]
        if self.config.pool_context:
            parts.append(pool_mean.flatten(1))  # (B, 6d)
        return self.encoder(torch.cat(parts, dim=-1))  # (B, 8)

    def _elements_padded(self, batch: BatchLike) -> tuple[Tensor, _Elements]:
        c = self.config
        B = batch.candidates.shape[0]
        mask = batch.mask
        e = self.elements(batch.candidates)  # (B, 6, 15, d)
        m = mask.unsqueeze(-1).to(e.dtype)  # (B, 6, 15, 1)
        pool_mean = (e * m).sum(2) / m.sum(2).clamp(min=1.0)  # (B, 6, d)
        h = self.encode(batch, pool_mean)  # (B, 8)
        if c.use_cross_attention:
            z = self.attention.padded(e, mask)  # (B, 6, 15, a)
        else:
            z = e.new_zeros(B, N_COMPONENTS, PAD_TO, c.attn_dim)
        t = self.component_type.weight[None, :, None, :].expand(B, -1, PAD_TO, -1)  # (B, 6, 15, d)
        f = torch.cat([e, t, z], dim=-1)  # (B, 6, 15, F) = f_e
        hx = h[:, None, None, :].expand(-1, N_COMPONENTS, PAD_TO, -1)  # (B, 6, 15, 8)
        logits = self.phi(torch.cat([hx, f], dim=-1)).squeeze(-1)  # (B, 6, 15)
        logits = logits.masked_fill(~mask, _neg(logits.dtype))
        feats = torch.cat([f.reshape(B * N_SLOTS, -1), f.new_zeros(1, f.shape[-1])])  # (B·90 + 1, F)
        index = torch.arange(B * N_SLOTS, device=mask.device).view(B, N_COMPONENTS, PAD_TO)
        return h, _Elements(logits, _log_softmax(logits, mask), feats, index)

    def _elements_packed(self, batch: BatchLike) -> tuple[Tensor, _Elements]:
        c = self.config
        B = batch.candidates.shape[0]
        mask = batch.mask
        lay = _build_layout(mask, c.attn_chunks, with_attention=c.use_cross_attention)
        ids = self.elements.global_ids(batch.candidates).reshape(-1)[lay.flat_idx]  # (N,)
        e = embed(self.elements.table, ids)  # (N, d)
        d = e.shape[-1]
        seg = lay.row * N_COMPONENTS + lay.comp  # (N,) which (row, component)
        sums = e.new_zeros(B * N_COMPONENTS, d).index_add(0, seg, e)  # (B·6, d)
        cnt = mask.sum(-1).reshape(-1, 1).to(e.dtype).clamp(min=1.0)  # (B·6, 1)
        h = self.encode(batch, (sums / cnt).view(B, N_COMPONENTS, d))  # (B, 8)
        z = self.attention.packed(e, lay) if c.use_cross_attention else e.new_zeros(e.shape[0], c.attn_dim)
        f = torch.cat([e, embed(self.component_type, lay.comp), z], dim=-1)  # (N, F)
        p = self.phi(torch.cat([h.index_select(0, lay.row), f], dim=-1)).squeeze(-1)  # (N,)
        logits = p.new_full((B * N_SLOTS,), _neg(p.dtype)).index_put((lay.flat_idx,), p)
        logits = logits.view(B, N_COMPONENTS, PAD_TO)  # (B, 6, 15)
        feats = torch.cat([f, f.new_zeros(1, f.shape[-1])])  # (N + 1, F)
        index = lay.slot_to_flat.view(B, N_COMPONENTS, PAD_TO)
        return h, _Elements(logits, _log_softmax(logits, mask), feats, index)

    def _element_pass(self, batch: BatchLike) -> tuple[Tensor, _Elements]:
        return self._elements_packed(batch) if self.config.packed else self._elements_padded(batch)

    def combination_score(self, h: Tensor, el: _Elements, choices: Tensor) -> tuple[Tensor, Tensor | None]:
        """s = π_θ(h, f_c) for combinations ``choices`` (B, K, 6) of slots (-1 absent) -> (s (B, K), w (B, K, 6)).

        MIL (Eq. 17): w_j = softmax over present j of ⟨W_q h, W_k f_e(c_j)⟩ / √a, zero where absent;
        f_c = Σ_j w_j f_e(c_j). Without MIL, w is None and s = comb_mlp(h, f_e(c_1..6), presence).
        """
        B, K, _ = choices.shape
        present = choices >= 0  # (B, K, 6)
        fidx = el.index.gather(2, choices.clamp(min=0).transpose(1, 2)).transpose(1, 2)  # (B, K, 6)
        fidx = torch.where(present, fidx, el.feats.shape[0] - 1)  # absent -> the zero row
        f = el.feats.index_select(0, fidx.reshape(-1)).view(B, K, N_COMPONENTS, -1)  # (B, K, 6, F); backward = index_add
        hk = h[:, None, :].expand(-1, K, -1)  # (B, K, 8)
        if not self.config.use_mil:
            x = torch.cat([hk, f.flatten(2), present.to(f.dtype)], dim=-1)  # (B, K, 8 + 6(F+1))
            return self.comb_mlp(x).squeeze(-1), None
        q = self.mil_query(h)[:, None, None, :]  # (B, 1, 1, a)
        score = (self.mil_key(f) * q).sum(-1) * self.config.attn_dim**-0.5  # (B, K, 6)
        score = score.masked_fill(~present, _neg(score.dtype))
        w = (score - score.amax(-1, keepdim=True)).exp() * present  # masked softmax over components (by
        w = w / w.sum(-1, keepdim=True).clamp(min=1e-30)  # hand: faster than softmax over a dim of 6 on CPU)
        fc = (w.unsqueeze(-1) * f).sum(2)  # (B, K, F)
        return self.phi(torch.cat([hk, fc], dim=-1)).squeeze(-1), w  # (B, K), (B, K, 6)

    # -- public entry points -------------------------------------------------------------------------------
    def forward(self, batch: BatchLike, *, generator: torch.Generator | None = None, rl_samples: int | None = None) -> GenCOOutput:
        """One pass for training: element distribution, the logged combination's s / w / p, and (if the
        predicted-reward PG term is on) ``rl_samples`` combinations drawn from π with their detached s.

        ``rl_samples`` defaults to ``config.rl_samples`` when ``config.use_rl``, else 0. Draws use ``generator``
        (on the batch's device). Shapes are checked here; index ranges by :func:`check_batch`.
        """
        _check_shapes(batch)
        c = self.config
        if rl_samples is None:
            rl_samples = c.rl_samples if c.use_rl else 0
        h, el = self._element_pass(batch)
        exposed = batch.exposed  # (B, 6)
        present = exposed >= 0
        slot = exposed.clamp(min=0).unsqueeze(-1)  # (B, 6, 1)
        p_exp = el.logits.gather(2, slot).squeeze(-1).masked_fill(~present, 0.0)  # (B, 6)
        lp_exp = el.log_probs.gather(2, slot).squeeze(-1).masked_fill(~present, 0.0)  # (B, 6)
        s, w = self.combination_score(h, el, exposed.unsqueeze(1))  # (B, 1), (B, 1, 6)
        sampled = lp_s = s_s = None
        if rl_samples > 0:
            sampled = sample_slots(el.logits.detach(), batch.mask, rl_samples, generator)  # (B, K, 6)
            lp_s = _gather_log_probs(el.log_probs, sampled)  # (B, K)
            with torch.no_grad():
                s_s = self.combination_score(h, el, sampled)[0]  # (B, K)
        return GenCOOutput(
            h, el.logits, el.log_probs, present, p_exp, lp_exp, s.squeeze(1),
            None if w is None else w.squeeze(1), sampled, lp_s, s_s,
        )

    @torch.no_grad()
    def select(
        self,
        batch: BatchLike,
        mode: InferenceMode | None = None,
        K: int | None = None,
        generator: torch.Generator | None = None,
        include_greedy: bool = False,
    ) -> Selection:
        """Choose one combination per row (Eq. 24-25), in eval mode (BatchNorm running stats).

        - ``sample``: draw K combinations from π (:func:`sample_slots`, ``generator``), score each with s, keep the argmax;
          ``include_greedy`` adds the per-component argmax as one more candidate (not in the paper);
        - ``greedy``: per-component argmax of π;
        - ``enumerate``: score every combination (or ``enumerate_cap`` uniform draws when there are more).

        Returns slot choices (B, 6) (-1 absent) and the element logits (B, 6, 15), -inf at padding.
        """
        check_batch(batch, self.config)
        mode = mode or self.config.inference
        if mode not in INFERENCE_MODES:
            raise InvalidInputError(f"GenCO.select: mode must be one of {INFERENCE_MODES}; got {mode!r}")
        K = self.config.inference_samples if K is None else K
        if K < 1:
            raise InvalidInputError(f"GenCO.select: K must be >= 1; got {K}")
        was_training = self.training
        self.eval()
        try:
            h, el = self._element_pass(batch)
            greedy = greedy_slots(el.logits, batch.mask)  # (B, 6)
            if mode == "greedy":
                choices = greedy
            else:
                if mode == "sample":
                    cand = sample_slots(el.logits, batch.mask, K, generator)  # (B, K, 6)
                    valid = torch.ones(cand.shape[:2], dtype=torch.bool, device=cand.device)
                else:
                    cand, valid = enumerate_combinations(batch.mask, self.config.enumerate_cap, generator)
                if include_greedy:
                    cand = torch.cat([greedy[:, None], cand], dim=1)
                    valid = torch.cat([valid.new_ones(valid.shape[0], 1), valid], dim=1)
                s = self.combination_score(h, el, cand)[0].masked_fill(~valid, float("-inf"))  # (B, K)
                best = s.argmax(1)  # (B,)
                choices = cand[torch.arange(cand.shape[0], device=cand.device), best]  # (B, 6)
            scores = el.logits.masked_fill(~batch.mask, float("-inf"))
        finally:
            self.train(was_training)
        return Selection(choices, scores)

    @torch.no_grad()
    def mil_weights(self, batch: BatchLike) -> Tensor:
        """MIL weights w (B, 6) of the logged combinations (eval mode): 0 for absent components, rows sum to 1.
        The paper's Figure 3 averages these by product category."""
        if not self.config.use_mil:
            raise InvalidInputError("GenCO.mil_weights: this model was built with use_mil=False (no MIL weights)")
        was_training = self.training
        self.eval()
        try:
            out = self.forward(batch, rl_samples=0)
        finally:
            self.train(was_training)
        return out.w


# ------------------------------------------------------------------------------------ policy-level helpers
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
    choice = (cdf.unsqueeze(1) <= u.unsqueeze(-1)).sum(-1)  # (B, K, 6) first slot with cdf > u
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


# ------------------------------------------------------------------------------------------------ checking
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
