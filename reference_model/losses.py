"""GenCO's training objective (Eqs. 11-12, 20, 22-23), as pure functions of a :class:`GenCOOutput`.

With y ∈ {0, 1} the click of row i, s_i the combination logit of the logged combination, p_ij the element
logit of the shown element of component j (present components P_i only), π the per-component policy::

    L_comb = mean_i  BCE(σ(s_i), y_i)                                            (Eq. 11)
    L_ele  = mean_{i, j∈P_i} BCE(σ(p_ij), y_i)                                   (Eq. 12)
    L_MIL  = L_comb + L_ele                                                      (Eq. 20)
    L_RL   = mean_i [ −Σ_{j∈P_i} ρ_ij (r_i − v_i) log π(c_ij)                    logged combinations
                     − mean_k (r̂_ik − b_ik) Σ_j log π(c^(k)_ij) ]                 K draws c^(k) ~ π   (Eq. 22)
    L      = L_MIL + λ · L_RL,   λ = 0.15                                        (Eq. 23)
    (+ β · L_BC, L_BC = mean_i −Σ_{j∈P_i} log π(c_ij): behaviour cloning, ours, off unless
     GenCOConfig.bc_weight = β > 0 — the "genco_bc" variant, not the paper's GenCO)

BCE is the full binary cross-entropy (the paper prints only the y·log σ term of Eq. 11-12; read as the usual
cross-entropy). Logged reward r = 1 for a click, −0.1 otherwise (paper). Off-policy correction of the logged
term (ours, the defaults; the paper trains on rows its own policy sampled, ours were logged by a production
policy): ρ_ij = min(π(c_ij) / μ_ij, off_policy_clip) with μ the logged propensity, and the baseline v_i = the
policy's mean predicted reward r̂ over its K draws in row i (``logged_baseline="value"``); ρ ≡ 1, v ≡ 0 is Eq. 22
read literally (the ``genco_literal`` variant). Predicted reward of a draw (ours; the paper says "observed or
predicted rewards"): the expected reward under the detached combination CTR, r̂ = σ(s)·1 + (1 − σ(s))·(−0.1),
with the leave-one-out baseline b_ik = mean_{k'≠k} r̂_ik' (RLOO; b = 0 when K = 1). Means are over rows
(and present components for L_ele) instead of the paper's sums, so λ and the learning rate do not scale
with the batch size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from reference_model.config import GenCOConfig
from reference_model.inputs import BatchLike
from reference_model.model import GenCO, GenCOOutput

__all__ = [
    "LossBreakdown",
    "comb_loss",
    "ele_loss",
    "logged_policy_gradient",
    "logged_baseline",
    "reward",
    "predicted_reward",
    "sampled_policy_gradient",
    "genco_loss",
    "train_step",
]


class LossBreakdown(NamedTuple):
    total: Tensor  # scalar, with gradient: what to backpropagate
    comb: Tensor  # scalar L_comb (detached)
    ele: Tensor  # scalar L_ele (detached)
    rl: Tensor  # scalar L_RL (detached; 0 when RL is off)
    bc: Tensor | None = None  # scalar L_BC (detached; 0 when bc_weight = 0, the paper's loss)

    def as_floats(self) -> dict[str, float]:
        return {k: float(v.detach()) for k, v in self._asdict().items() if v is not None}


def comb_loss(s: Tensor, click: Tensor) -> Tensor:
    """L_comb = mean_i BCE(σ(s_i), y_i). s (B,) logits, click (B,) in {0, 1}."""
    return F.binary_cross_entropy_with_logits(s, click.to(s.dtype))


def ele_loss(p_exposed: Tensor, present: Tensor, click: Tensor) -> Tensor:
    """L_ele = mean over present (i, j) of BCE(σ(p_ij), y_i): every shown element inherits the row's click.
    p_exposed (B, 6) logits, present bool (B, 6), click (B,)."""
    y = click.to(p_exposed.dtype)[:, None].expand_as(p_exposed)
    per = F.binary_cross_entropy_with_logits(p_exposed, y, reduction="none")  # (B, 6)
    m = present.to(per.dtype)
    return (per * m).sum() / m.sum().clamp(min=1.0)


def logged_policy_gradient(
    logp_exposed: Tensor,
    click: Tensor,
    reward_click: float,
    reward_no_click: float,
    propensity: Tensor | None = None,
    clip: float = 0.0,
    baseline: Tensor | None = None,
) -> Tensor:
    """REINFORCE on the logged combinations: mean_i −r_i Σ_j ρ_ij log π(c_ij), r = reward_click if y else
    reward_no_click. logp_exposed (B, 6) (0 for absent components), click (B,).

    ``clip`` > 0 (with ``propensity`` (B, 6), the logging policy's probability μ of each shown element):
    per-component importance weight ρ_ij = min(π(c_ij) / μ_ij, clip), detached — the off-policy correction
    for rows logged by another policy. Without it (ρ ≡ 1, the paper's Eq. 22 read literally) the gradient is
    unbiased only for rows sampled from π itself: on production-logged rows the mostly negative reward
    (−0.1 for a non-click) pushes π away from whatever production showed most, i.e. from its best guesses.
    With ρ, a constant reward adds nothing in expectation (E_μ[ρ ∇log π] = ∇Σπ = 0) — but on a finite batch it
    still does. ``baseline`` (B,) or scalar, detached, is subtracted from r: its batch mean removes that exactly
    (see :func:`logged_baseline`)."""
    r = reward(click, reward_click, reward_no_click).to(logp_exposed.dtype)  # (B,)
    if baseline is not None:
        r = r - baseline.detach()
    if clip > 0 and propensity is not None:
        with torch.no_grad():
            mu = propensity.to(logp_exposed.dtype).clamp(min=1e-6)
            rho = (logp_exposed.exp() / mu).clamp(max=clip)  # absent: logp 0 -> its term is 0 anyway
        return -(r[:, None] * rho * logp_exposed).sum(-1).mean()
    return -(r * logp_exposed.sum(-1)).mean()


def reward(click: Tensor, reward_click: float, reward_no_click: float) -> Tensor:
    """Observed reward per row: reward_click if clicked else reward_no_click."""
    return torch.where(click > 0.5, reward_click, reward_no_click)


def predicted_reward(s: Tensor, reward_click: float, reward_no_click: float) -> Tensor:
    """Expected reward under the (detached) combination CTR σ(s): σ(s)·reward_click + (1 − σ(s))·reward_no_click."""
    ctr = torch.sigmoid(s.detach())
    return ctr * reward_click + (1.0 - ctr) * reward_no_click


def logged_baseline(kind: str, click: Tensor, s_sampled: Tensor | None, reward_click: float, reward_no_click: float) -> Tensor | None:
    """The baseline of the logged term (GenCOConfig.logged_baseline): None ("none"), the batch-mean observed reward
    ("batch"), or per row the mean predicted reward of the policy's draws ("value", needs ``s_sampled`` (B, K))."""
    if kind == "none":
        return None
    if kind == "batch":
        return reward(click, reward_click, reward_no_click).to(torch.float32).mean()
    if s_sampled is None:
        raise ValueError("logged_baseline 'value' needs the sampled combinations' scores")
    return predicted_reward(s_sampled, reward_click, reward_no_click).mean(1)


def sampled_policy_gradient(logp_sampled: Tensor, s_sampled: Tensor, reward_click: float, reward_no_click: float) -> Tensor:
    """REINFORCE on K draws per row, rewarded by the combination head: mean_i mean_k −(r̂_ik − b_ik) log π(c^(k)_i),
    r̂ = σ(s)·reward_click + (1 − σ(s))·reward_no_click (s detached), b = leave-one-out mean of r̂ over the
    row's other draws (0 when K = 1). logp_sampled, s_sampled (B, K)."""
    r = predicted_reward(s_sampled, reward_click, reward_no_click)  # (B, K)
    K = r.shape[1]
    baseline = (r.sum(1, keepdim=True) - r) / (K - 1) if K > 1 else torch.zeros_like(r)
    return -((r - baseline) * logp_sampled).mean()


def genco_loss(out: GenCOOutput, batch: BatchLike, config: GenCOConfig) -> LossBreakdown:
    """L = [L_comb] + [L_ele] + λ·[L_RL] (+ β·L_BC), each term switched by ``config`` (comb_loss, ele_loss,
    use_rl, bc_weight)."""
    click = batch.click
    zero = out.s.new_zeros(())
    lc = comb_loss(out.s, click) if config.comb_loss else zero
    le = ele_loss(out.p_exposed, out.present, click) if config.ele_loss else zero
    lrl = zero
    if config.use_rl:
        base = logged_baseline(config.logged_baseline, click, out.s_sampled, config.reward_click, config.reward_no_click)
        lrl = logged_policy_gradient(out.logp_exposed, click, config.reward_click, config.reward_no_click,
                                     batch.propensity, config.off_policy_clip, base)
        if out.logp_sampled is not None:
            lrl = lrl + sampled_policy_gradient(out.logp_sampled, out.s_sampled, config.reward_click, config.reward_no_click)
    total = lc + le + config.rl_lambda * lrl
    lbc = zero
    if config.bc_weight > 0:
        lbc = -out.logp_exposed.sum(-1).mean()
        total = total + config.bc_weight * lbc
    return LossBreakdown(total, lc.detach(), le.detach(), lrl.detach(), lbc.detach())


def train_step(
    model: GenCO,
    batch: BatchLike,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None = None,
) -> LossBreakdown:
    """One optimisation step: forward (with the policy-gradient draws from ``generator``), L, backward, step.
    ``model`` may be a DDP wrapper of a :class:`GenCO` (its config is read from ``.module`` then)."""
    core = getattr(model, "module", model)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    out = model(batch, generator=generator)
    losses = genco_loss(out, batch, core.config)
    losses.total.backward()
    optimizer.step()
    return losses
