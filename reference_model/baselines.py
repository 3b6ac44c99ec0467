"""Baseline policies of the paper's Table 2, behind one small interface::

    policy.fit(batches) -> policy        # batches: an iterable of genco_data.load Batches of the train split
    policy.select(batch) -> Selection    # slot choices (B, 6), -1 absent; optional per-slot scores (B, 6, 15)

- :class:`UniformPolicy` — uniform over each component's candidates (the test split's logging policy).
- :class:`MLPPolicy` — a combination-CTR network trained with BCE on the logged combinations; picks the best
  of every combination of the row, or of ``cap`` uniform draws when the product of pool sizes is larger.
- :class:`DCOPolicy` — successive elimination on observed CTRs per (ad, component, element).
- :class:`GenCOPolicy` — a :class:`GenCO` (any variant, e.g. the "f_ele only" / "f_comb only" rows of
  Table 2 = ``GenCOConfig.variant("f_ele" | "f_comb", ...)``) with a seeded generator.
"""
from __future__ import annotations

from typing import Iterable, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genco_data.format.components import N_COMPONENTS
from genco_data.errors import InvalidInputError
from reference_model.losses import train_step
from reference_model.config import OOV_INDEX, GenCOConfig
from reference_model.inputs import BatchLike, check_batch
from reference_model.layers import ContextFeatures, ElementEmbeddings, _mlp, embed
from reference_model.model import GenCO
from reference_model.selection import Selection, enumerate_combinations, sample_slots

__all__ = ["Policy", "UniformPolicy", "MLPPolicy", "DCOPolicy", "GenCOPolicy"]


class Policy(Protocol):
    def fit(self, batches: Iterable[BatchLike]) -> "Policy": ...

    def select(self, batch: BatchLike) -> Selection: ...


# ---------------------------------------------------------------------------------------------- uniform
class UniformPolicy:
    """Uniform over the valid slots of each component, drawn from a generator seeded at construction."""

    name = "uniform"

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def fit(self, batches: Iterable[BatchLike]) -> "UniformPolicy":
        return self

    def select(self, batch: BatchLike) -> Selection:
        u = torch.zeros(batch.mask.shape, device="cpu")
        choices = sample_slots(u, batch.mask.cpu(), 1, self.generator)[:, 0]  # (B, 6)
        return Selection(choices.to(batch.mask.device), None)


# -------------------------------------------------------------------------------------------------- MLP
class MLPPolicy(nn.Module):
    """CTR of a whole combination: MLP [64, 32, 8] → 1 (ReLU) on concat(context embeddings (7·d),
    shown element embedding per component (6·d, zeros when absent), presence flags (6)). Trained with BCE on
    the logged combinations (SGD, lr 5e-3 by default = GenCO's protocol). ``select`` scores every
    combination of the row, or ``cap`` uniform draws when there are more, and keeps the argmax."""

    name = "mlp"

    def __init__(
        self,
        vocab_sizes: dict[str, int],
        emb_dim: int = 4,
        hidden: tuple[int, ...] = (64, 32, 8),
        cap: int = 64,
        lr: float = 5e-3,
        optimizer: Literal["sgd", "adam"] = "sgd",
        epochs: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if optimizer not in ("sgd", "adam"):
            raise InvalidInputError(f"MLPPolicy.optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
        if cap < 1 or epochs < 1:
            raise InvalidInputError(f"MLPPolicy: cap and epochs must be >= 1; got cap={cap}, epochs={epochs}")
        self.vocab_sizes = dict(vocab_sizes)
        with torch.random.fork_rng(devices=[]):  # parameters from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.context = ContextFeatures(vocab_sizes, emb_dim)
            self.elements = ElementEmbeddings(vocab_sizes, emb_dim)
            self.net = _mlp([self.context.out_dim + N_COMPONENTS * (emb_dim + 1), *hidden, 1])
        self.cap, self.lr, self.optimizer_name, self.epochs = cap, lr, optimizer, epochs
        self.generator = torch.Generator().manual_seed(seed + 1)

    def score(self, batch: BatchLike, choices: Tensor) -> Tensor:
        """Combination logits for ``choices`` (B, K, 6) slots (-1 absent) -> (B, K)."""
        B, K, _ = choices.shape
        present = choices >= 0
        ids = batch.candidates.gather(2, choices.clamp(min=0).transpose(1, 2)).transpose(1, 2)  # (B, K, 6)
        e = embed(self.elements.table, ids + self.elements.offsets)  # (B, K, 6, d)
        e = e * present.unsqueeze(-1)
        ctx = self.context(batch)[:, None, :].expand(-1, K, -1)  # (B, K, 7d)
        x = torch.cat([ctx, e.flatten(2), present.to(e.dtype)], dim=-1)
        return self.net(x).squeeze(-1)

    def fit(self, batches: Iterable[BatchLike]) -> "MLPPolicy":
        opt_cls = torch.optim.SGD if self.optimizer_name == "sgd" else torch.optim.Adam
        opt = opt_cls(self.parameters(), lr=self.lr)
        self.train()
        batches = list(batches) if self.epochs > 1 else batches
        for _ in range(self.epochs):
            for batch in batches:
                opt.zero_grad(set_to_none=True)
                s = self.score(batch, batch.exposed.unsqueeze(1)).squeeze(1)  # (B,)
                F.binary_cross_entropy_with_logits(s, batch.click.to(s.dtype)).backward()
                opt.step()
        return self

    @torch.no_grad()
    def select(self, batch: BatchLike) -> Selection:
        self.eval()
        gen = self.generator if batch.mask.device.type == "cpu" else None
        cand, valid = enumerate_combinations(batch.mask, self.cap, gen)  # (B, cap, 6), (B, cap)
        s = self.score(batch, cand).masked_fill(~valid, float("-inf"))  # (B, cap)
        best = s.argmax(1)
        return Selection(cand[torch.arange(cand.shape[0], device=cand.device), best], None)


# -------------------------------------------------------------------------------------------------- DCO
class DCOPolicy:
    """Successive elimination on observed CTRs (DCO, Wei et al. 2022), per ad and component.

    For arm a = (ad, component j, element e), from the train log: n_a impressions that showed e for that ad,
    c_a clicks. With k_j the number of arms in the row's pool::

        μ̂_a = c_a / n_a,  radius ρ_a = sqrt( ln(2 k_j / δ) / (2 n_a) )   (Hoeffding; ρ = ∞ when n_a = 0)
        a is eliminated  iff  μ̂_a + ρ_a < max_{a'} (μ̂_a' − ρ_a')         (someone is surely better)
        choice = argmax over surviving arms of the smoothed CTR  (c_a + α·μ_e) / (n_a + α)

    where μ_e = (c_e + α·μ_j) / (n_e + α) pools element e over all ads (μ_j = component CTR). Unseen arms are
    never eliminated and are ranked by their prior; unknown ads or elements (OOV index) have no statistics.
    ``select`` also returns the smoothed CTRs as scores (-inf at padding and for eliminated arms).
    """

    name = "dco"

    def __init__(self, delta: float = 0.05, prior_strength: float = 10.0) -> None:
        if not 0 < delta < 1 or prior_strength <= 0:
            raise InvalidInputError(f"DCOPolicy: need 0 < delta < 1 and prior_strength > 0; got {delta}, {prior_strength}")
        self.delta, self.alpha = delta, prior_strength
        self._keys: np.ndarray | None = None

    def fit(self, batches: Iterable[BatchLike]) -> "DCOPolicy":
        keys, clicks = [], []
        n_elem = 0
        for batch in batches:
            ex = batch.exposed.cpu().numpy()  # (B, 6)
            cand = batch.candidates.cpu().numpy()
            ad = batch.ad_id.cpu().numpy().astype(np.int64)
            y = batch.click.cpu().numpy().astype(np.float64)
            n_elem = max(n_elem, int(cand.max(initial=0)) + 1)
            b, j = np.nonzero(ex >= 0)
            e = cand[b, j, ex[b, j]].astype(np.int64)
            keys.append(np.stack([ad[b], j, e], axis=1))
            clicks.append(y[b])
        if not keys:
            raise InvalidInputError("DCOPolicy.fit: no batches")
        arms = np.concatenate(keys)  # (M, 3) ad, component, element
        y = np.concatenate(clicks)
        self._n_elem = n_elem = max(n_elem, 2)
        self._ctr_comp = np.array([y[arms[:, 1] == j].mean() if (arms[:, 1] == j).any() else y.mean() for j in range(N_COMPONENTS)])
        known = arms[:, 2] > OOV_INDEX
        # element level, all ads pooled
        ek = arms[known, 1] * n_elem + arms[known, 2]
        self._ekeys, inv = np.unique(ek, return_inverse=True)
        self._en = np.bincount(inv, minlength=len(self._ekeys)).astype(np.float64)
        self._ec = np.bincount(inv, weights=y[known], minlength=len(self._ekeys))
        # (ad, component, element) level
        known &= arms[:, 0] > OOV_INDEX
        ak = (arms[known, 0] * N_COMPONENTS + arms[known, 1]) * n_elem + arms[known, 2]
        self._keys, inv = np.unique(ak, return_inverse=True)
        self._n = np.bincount(inv, minlength=len(self._keys)).astype(np.float64)
        self._c = np.bincount(inv, weights=y[known], minlength=len(self._keys))
        return self

    @staticmethod
    def _lookup(table_keys: np.ndarray, query: np.ndarray, *values: np.ndarray) -> list[np.ndarray]:
        pos = np.searchsorted(table_keys, query)
        pos = np.minimum(pos, max(len(table_keys) - 1, 0))
        hit = (table_keys[pos] == query) if len(table_keys) else np.zeros(query.shape, bool)
        return [np.where(hit, v[pos] if len(v) else 0.0, 0.0) for v in values]

    def select(self, batch: BatchLike) -> Selection:
        if self._keys is None:
            raise InvalidInputError("DCOPolicy.select: call fit() first")
        mask = batch.mask.cpu().numpy()  # (B, 6, 15)
        cand = batch.candidates.cpu().numpy().astype(np.int64)
        ad = batch.ad_id.cpu().numpy().astype(np.int64)
        j = np.arange(N_COMPONENTS)[None, :, None]
        usable = mask & (cand > OOV_INDEX) & (cand < self._n_elem)
        ek = np.where(usable, j * self._n_elem + cand, -1)
        en, ec = self._lookup(self._ekeys, ek, self._en, self._ec)
        mu_j = self._ctr_comp[None, :, None]
        prior = (ec + self.alpha * mu_j) / (en + self.alpha)  # (B, 6, 15)
        usable_ad = usable & (ad[:, None, None] > OOV_INDEX)
        ak = np.where(usable_ad, (ad[:, None, None] * N_COMPONENTS + j) * self._n_elem + cand, -1)
        n, c = self._lookup(self._keys, ak, self._n, self._c)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.maximum(mask.sum(-1, keepdims=True), 1)
            rad = np.where(n > 0, np.sqrt(np.log(2 * k / self.delta) / (2 * np.maximum(n, 1))), np.inf)
            mean = np.where(n > 0, c / np.maximum(n, 1), 0.0)
        ucb = np.where(mask, mean + rad, -np.inf)
        lcb = np.where(mask & (n > 0), mean - rad, -np.inf)
        survive = mask & (ucb >= lcb.max(-1, keepdims=True))
        smooth = (c + self.alpha * prior) / (n + self.alpha)
        score = np.where(survive, smooth, -np.inf)
        choice = np.where(mask.any(-1), score.argmax(-1), -1)
        dev = batch.mask.device
        return Selection(torch.from_numpy(choice).to(dev), torch.from_numpy(score.astype(np.float32)).to(dev))


# ------------------------------------------------------------------------------------------------ GenCO
class GenCOPolicy:
    """A :class:`GenCO` model behind the policy interface; ``fit`` is a plain loop of
    :func:`~reference_model.losses.train_step` (SGD, lr 5e-3, chronological: the paper's protocol). The full
    training script (checkpoints, DDP, logging) is ``reference_model.train``."""

    def __init__(self, config: GenCOConfig, seed: int = 0, lr: float = 5e-3, epochs: int = 1) -> None:
        with torch.random.fork_rng(devices=[]):  # parameters from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.model = GenCO(config)
        self.name = "genco"
        self.lr, self.epochs = lr, epochs
        self.generator = torch.Generator().manual_seed(seed + 1)
        self._checked = False

    def fit(self, batches: Iterable[BatchLike]) -> "GenCOPolicy":
        opt = torch.optim.SGD(self.model.parameters(), lr=self.lr)
        batches = list(batches) if self.epochs > 1 else batches
        for _ in range(self.epochs):
            for batch in batches:
                if not self._checked:
                    check_batch(batch, self.model.config)
                    self._checked = True
                train_step(self.model, batch, opt, self.generator)
        return self

    def select(self, batch: BatchLike) -> Selection:
        gen = self.generator if batch.mask.device.type == "cpu" else None
        return self.model.select(batch, generator=gen)
