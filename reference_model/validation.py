"""Validation on the last train day(s): which rows, a policy's score on them, and early stopping with model
selection. The test split is never read here.

**Rows.** The validation rows are the train split's rows on its last ``days`` distinct days. The split is
chronological, so they are its last rows, positions ``[start, total)``; :func:`validation_boundary` finds
``start`` from the ``day`` column, reading row groups backwards from the end (memory: one row group's day
column). Training steps only on rows before ``start``.

**Score** (the evaluator's math on production-logged rows). The train split is logged by the production policy
with propensities μ_ij. Calibrated sCTR (paper, Algorithm 1) is the self-normalised IPS estimator; under uniform
logging its weight is n_ij = 1/μ_ij. On production-logged rows the same estimator takes w_ij = 1/μ_ij::

    sCTR_j = Σ_i w_ij y_i m_ij / Σ_i w_ij m_ij,   m_ij = 1[choice_ij = shown_ij]   (rows lacking j: m = 0)
    combination: w_i = Π_{j present} w_ij,  m_i = Π_{j present} m_ij

It estimates the mean CTR of "the policy's choice on j, production's on the other components". Per block of
rows the sufficient statistics of :class:`genco_data.evaluate.metrics.Stats` — per (component, Table-4 bucket,
click) the matched Σ 1, Σ w, Σ w², and the rows having j — are summed (:func:`block_stats`, additive over
blocks), and :func:`genco_data.evaluate.metrics.estimates` turns them into the estimates, their delta-method
errors and lifts — the evaluator's own functions, not a copy. With μ = 1/n the statistics are exactly the
evaluator's (tests/test_protocol_validation.py checks it). The selection score is the evaluator's
``mean_component_lift`` on these rows: the mean over components of ``lift_j = sCTR_j / CTR_j − 1`` (CTR_j: the
logged clicks on the rows having j), components without validation rows left out.

**Early stopping** (:class:`EarlyStopping`): after every epoch the score is appended to the curve; the epoch
with the best score so far is kept (its weights saved, see ``reference_model.train``); training stops once
``patience`` epochs in a row have not improved on the best by more than its margin (``min_delta`` plus
``min_delta_se`` standard errors of the difference).
"""
from __future__ import annotations

import datetime as dt
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow.parquet as pq
import torch

from genco_data.errors import InvalidInputError
from genco_data.evaluate.metrics import ALL, COMB, N_BUCKETS, Stats, bucket_index, estimates
from genco_data.format.components import COMPONENTS, N_COMPONENTS
from genco_data.load import Batch

__all__ = ["VALIDATION_BLOCK", "VALIDATION_METRIC", "validation_boundary", "validate_epoch", "block_stats", "add_stats", "score", "score_se", "evaluate_policy", "EarlyStopping"]

K = N_COMPONENTS
#: Validation rows padded and scored per block; the selection metric's name.
VALIDATION_BLOCK = 8192
VALIDATION_METRIC = "mean_component_lift"


def validation_boundary(files: list[Path], days: int) -> tuple[int, int, list[str]]:
    """``(start, total, days)``: the chronological train split (``files`` in order) has ``total`` rows; its last
    ``days`` distinct days start at row ``start``. ``days = 0``: ``(total, total, [])``. Raises when the split
    has ``days`` distinct days or fewer (no row would be left to train on)."""
    metas = [pq.ParquetFile(f) for f in files]
    total = sum(m.metadata.num_rows for m in metas)
    if days == 0:
        return total, total, []
    seen: list[dt.date] = []  # distinct days, latest first
    start = pos = total
    for m in reversed(metas):
        for g in reversed(range(m.metadata.num_row_groups)):
            pos -= m.metadata.row_group(g).num_rows
            day = m.read_row_group(g, columns=["day"]).column("day").to_numpy(zero_copy_only=False)
            uniq, first = np.unique(day, return_index=True)  # days are non-decreasing: walk them from the latest
            for d, f in zip(uniq[::-1].tolist(), first[::-1].tolist()):
                if not seen or d != seen[-1]:
                    if len(seen) == days:  # d is the day before the validation days
                        return start, total, [str(x) for x in reversed(seen)]
                    seen.append(d)
                start = pos + int(f)
    raise InvalidInputError(f"--validation-days {days}: the train split has only {len(seen)} day(s); "
                            "keep at least one day to train on (or pass --validation-days 0)")


def _empty_stats() -> Stats:
    return Stats(0.0, np.zeros((K, N_BUCKETS, 2, 3)), np.zeros((K, N_BUCKETS, 2)), np.zeros((2, 3)), np.zeros(2))


def block_stats(batch: Batch, choices: torch.Tensor) -> Stats:
    """The sufficient statistics of one block: ``choices`` int [B, 6] (slots, -1 absent) against the logged slots
    (``batch.exposed``), with weights 1/μ (``batch.propensity``). Layout: :class:`genco_data.evaluate.metrics.Stats`."""
    shown = batch.exposed.cpu().numpy().T  # [K, B] slots; the shown element is never truncated away
    n = batch.n_candidates.cpu().numpy().T  # [K, B]
    mu = batch.propensity.cpu().numpy().astype(np.float64).T  # [K, B], 0 where absent
    y = batch.click.cpu().numpy().astype(np.int64)  # [B]
    ch = choices.cpu().numpy().T  # [K, B]
    present = n > 0
    w = np.where(present, 1.0 / np.where(present, mu, 1.0), 0.0)  # [K, B]
    m = present & (ch == shown)
    bucket = np.maximum(bucket_index(n), 0)
    comp = np.zeros((K, N_BUCKETS, 2, 3))
    pres = np.zeros((K, N_BUCKETS, 2))
    for j in range(K):  # per component: bincount over (bucket, click) cells, a few vector ops each
        cell = bucket[j] * 2 + y
        pj = present[j]
        pres[j] = np.bincount(cell[pj], minlength=2 * N_BUCKETS).reshape(N_BUCKETS, 2)
        mj = m[j]
        for p, v in enumerate((np.ones(mj.sum()), w[j, mj], w[j, mj] ** 2)):
            comp[j, :, :, p] = np.bincount(cell[mj], weights=v, minlength=2 * N_BUCKETS).reshape(N_BUCKETS, 2)
    full = (m | ~present).all(axis=0)  # every present component matched
    wc = np.prod(np.where(present, w, 1.0), axis=0)[full]
    yc = y[full]
    comb = np.stack([np.bincount(yc, minlength=2), np.bincount(yc, weights=wc, minlength=2),
                     np.bincount(yc, weights=wc * wc, minlength=2)], axis=1).astype(np.float64)
    return Stats(float(len(y)), comp, pres, comb, np.bincount(y, minlength=2).astype(np.float64))


def add_stats(a: Stats, b: Stats) -> Stats:
    """Sufficient statistics of two blocks together (every field is a sum over rows)."""
    return Stats(a.rows + b.rows, a.comp + b.comp, a.present + b.present, a.comb + b.comb, a.total + b.total)


def score(stats: Stats) -> dict[str, Any]:
    """The validation record of a policy: per component and for the combination the calibrated sCTR and lift
    (:func:`genco_data.evaluate.metrics.estimates`), and ``score`` = the mean of the finite component lifts
    (NaN when none is finite)."""
    est = estimates(stats)
    comps = {c: {"calibrated_sctr": _num(est["calibrated"][j, ALL]), "lift": _num(est["lift"][j, ALL]),
                 "lift_se": _num(est["lift_se"][j, ALL]), "matched": int(est["matched"][j, ALL])} for j, c in enumerate(COMPONENTS)}
    lifts = [v["lift"] for v in comps.values() if v["lift"] is not None]
    rec = {"score": float(np.mean(lifts)) if lifts else float("nan"), "rows": int(stats.rows), "components": comps,
           "combination_calibrated_sctr": _num(est["calibrated"][COMB, ALL]), "combination_lift": _num(est["lift"][COMB, ALL])}
    rec["score_se"] = _num(score_se(rec))
    return rec


def score_se(record: dict[str, Any]) -> float:
    """Standard error of a validation record's ``score`` (the mean of the finite component lifts): the components'
    delta-method errors combined as if independent, √(Σ se_j²) / n; NaN when a lift lacks its error."""
    ses = [v["lift_se"] for v in record["components"].values() if v["lift"] is not None]
    if not ses or any(se is None for se in ses):
        return float("nan")
    return float(np.sqrt(np.sum(np.square(ses))) / len(ses))


def _num(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def evaluate_policy(policy: torch.nn.Module, method: str, blocks: Iterable[Batch], seed: int, device: torch.device) -> dict[str, Any]:
    """Score ``policy`` (its own inference mode; draws from ``torch.Generator().manual_seed(seed)``, the same
    every epoch, so epochs are compared on common random numbers) on the validation ``blocks``; the policy is
    put in eval mode and back in train mode after."""
    from reference_model.predict import select  # (predict imports the model; keep this module light to import)

    was_training = policy.training
    policy.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    total = _empty_stats()
    try:
        with torch.no_grad():
            for b in blocks:
                b = b.to(device)
                sel = select(policy, method, b, None, gen)
                total = add_stats(total, block_stats(b, sel.choices))
    finally:
        policy.train(was_training)
    if total.rows == 0:
        raise InvalidInputError("the validation days hold no rows")
    return score(total)


def validate_epoch(policy: torch.nn.Module, method: str, blocks: Iterable[Batch], seed: int, device: torch.device, prog: Any,
              stopper: "EarlyStopping", meta: dict[str, Any], out: Path, master: bool, bar: Any = None) -> None:
    """Score the epoch just finished (``prog``: its step and epoch) on the validation days; keep its weights (best.safetensors) when it is the best
    so far; record the curve in metrics.jsonl and (through ``meta``) config.json."""
    from reference_model.checkpoint import METRICS_NAME, _append_metrics, _save_best

    rec = {"epoch": prog.epoch, "step": prog.step, **evaluate_policy(policy, method, blocks, seed, device)}
    improved = stopper.update(rec)
    meta["validation"].update(stopper.to_dict())
    if master:
        if improved:
            _save_best(out, policy, prog.epoch, rec["score"])
        _append_metrics(out / METRICS_NAME, {"event": "validation", "epoch": prog.epoch, "step": prog.step, "score": rec["score"],
                                             "best_epoch": meta["validation"]["best_epoch"], "stop": stopper.stop})
        if bar is not None:
            bar.write(f"epoch {prog.epoch}: validation {VALIDATION_METRIC} {rec['score']:+.4f} (best: epoch "
                      f"{meta['validation']['best_epoch']})", file=sys.stderr)


@dataclass
class EarlyStopping:
    """Patience on a higher-is-better score. ``curve``: ``[{epoch, score, score_se, ...}]``, one per epoch evaluated.

    ``min_epochs``: epochs before it are scored and recorded but can neither be selected nor count towards the
    patience (Keras' ``start_from_epoch``). Why: on the default world GenCO's true headroom still rises after epoch 1
    (with the base-rate init it peaks at epoch 2 at 400 k train rows; benchmarks/README.md, "Model selection"), while
    the validation score of two logged days moves by more than that between epochs, so an unrestricted pick often
    keeps an under-trained epoch 1.

    ``min_delta_se``: a later epoch replaces the best only when its score is higher by more than ``min_delta`` plus
    ``min_delta_se`` standard errors of the difference, √(se_best² + se_new²) (each epoch's ``score_se``; a record
    without one adds nothing). Why: two logged validation days measure the mean lift with a standard error of
    ~4-7 points while epochs differ in true lift by ~1 point, so the plain maximum picks noise, and the more epochs
    it sees the later (and, past the peak, the worse) its pick (benchmarks/README.md, "Model selection")."""

    patience: int
    min_delta: float = 0.0
    curve: list[dict[str, Any]] = field(default_factory=list)
    min_epochs: int = 0
    min_delta_se: float = 0.0

    def _eligible(self) -> list[dict[str, Any]]:
        return [r for r in self.curve if r["epoch"] >= self.min_epochs]

    def _margin(self, best: dict[str, Any], new: dict[str, Any]) -> float:
        se2 = sum(se * se for se in (best.get("score_se"), new.get("score_se")) if se is not None and math.isfinite(se))
        return self.min_delta + self.min_delta_se * math.sqrt(se2)

    @property
    def best(self) -> dict[str, Any] | None:
        """The record of the selected epoch: the first eligible one with a finite score, replaced by each later one
        that beats it by the margin (NaN scores never win); None before ``min_epochs`` (the last weights are kept
        then)."""
        best = None
        for r in self._eligible():
            s = r["score"]
            if s is not None and math.isfinite(s) and (best is None or s > best["score"] + self._margin(best, r)):
                best = r
        return best

    def update(self, record: dict[str, Any]) -> bool:
        """Append an epoch's record; True when it is the new best (its weights are to be kept)."""
        self.curve.append(record)
        return self.best is record

    @property
    def stop(self) -> bool:
        """``patience`` eligible epochs since the best one (or since ``min_epochs``, when no eligible epoch has a
        finite score)."""
        best, eligible = self.best, self._eligible()
        since = len(eligible) - (eligible.index(best) + 1 if best is not None else 0)
        return self.patience > 0 and since >= self.patience

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"patience": self.patience, "min_epochs": self.min_epochs, "min_delta": self.min_delta,
                "min_delta_se": self.min_delta_se, "curve": self.curve,
                "best_epoch": best["epoch"] if best else None, "best_score": best["score"] if best else None,
                "stopped_early": self.stop}
