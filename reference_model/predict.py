"""Predictions of a trained run on the test split of a release, in the contract the evaluator reads.

    genco predict --model runs/genco --data rel --out preds.parquet [--mode sample|greedy|enumerate] [--prediction-seed 0]

The prediction seed (``--prediction-seed``, alias ``--seed``; default 0) seeds only the draws made at prediction
time (GenCO's K sampled combinations, MLP's capped sample, uniform); the training seed is the run's (config.json).
Keeping one fixed while the other varies tells the two noises apart. The summary records both.

One row per test impression (schema ``genco_data.format.arrow.predictions_schema()``):

- ``impression_id``;
- ``<c>_choice`` int16, null iff the pool is empty: an index into the ORIGINAL ``<c>_candidates`` (the policy
  picks a slot of the padded/truncated pool; ``Batch.original_choice`` maps it back);
- ``<c>_scores`` list<float32> of the pool's length, null iff the pool is empty — written for policies that
  score every element: GenCO (the element logit p = φ(h, f_e), so softmax over the pool is π_θ) and DCO (the
  smoothed CTR). Candidates without a score of their own — those cut by the truncation to 15 slots, and arms
  DCO eliminated — get ``min(the pool's finite scores) − 1`` (SCORE_FILL_MARGIN): finite, as the evaluator
  requires, and ranked below every scored candidate. Uniform and MLP (which scores whole combinations) write
  no scores columns (they are optional in the contract).

The file is written to a temporary name and renamed, so a reader never sees a partial file.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from genco_data.format.arrow import predictions_schema
from genco_data.format.components import COMPONENTS, choice_col, scores_col
from genco_data.errors import InvalidInputError
from genco_data.fsutil import atomic_write as _atomic_write  # temp file + fsync + os.replace
from genco_data.release import Release, sha256_file
from genco_data.load import Batch, pad_table
from reference_model.baselines import DCOPolicy, MLPPolicy, UniformPolicy
from reference_model.checkpoint import load_run
from reference_model.config import INFERENCE_MODES
from reference_model.data import read_split
from reference_model.model import GenCO
from reference_model.selection import Selection

#: A candidate without its own score gets (lowest finite score of its pool) − SCORE_FILL_MARGIN.
SCORE_FILL_MARGIN = 1.0
#: Test rows padded and scored per step.
PREDICT_ROWS = 8192

__all__ = ["SCORE_FILL_MARGIN", "predict", "select", "predictions_table", "format_predict"]


def select(policy: Any, method: str, batch: Batch, mode: str | None, generator: torch.Generator) -> Selection:
    """One batch of decisions: slot choices (B, 6) (-1 absent) and optional per-slot scores."""
    if isinstance(policy, GenCO):
        return policy.select(batch, mode=mode, generator=generator)
    if isinstance(policy, (MLPPolicy, DCOPolicy)):
        return policy.select(batch)
    raise InvalidInputError(f"no selection rule for method {method!r}")


def _scores_column(scores: np.ndarray, mask: np.ndarray, orig: np.ndarray, n: np.ndarray) -> pa.Array:
    """list<float32> per row of the ORIGINAL pool (length n, null when n = 0) from per-slot scores.

    scores (R, 15) (non-finite = no score), mask (R, 15) real slots, orig (R, 15) slot -> original index,
    n (R,) full pool sizes. Unscored candidates get min(finite scores of the row) - SCORE_FILL_MARGIN."""
    finite = mask & np.isfinite(scores)
    lowest = np.where(finite, scores, np.inf).min(axis=1)  # (R,)
    fill = np.where(np.isfinite(lowest), lowest - SCORE_FILL_MARGIN, 0.0).astype(np.float32)
    offsets = np.zeros(len(n) + 1, dtype=np.int64)
    np.cumsum(n, out=offsets[1:])
    values = np.repeat(fill, n)  # (Σn,)
    r, s = np.nonzero(finite)
    values[offsets[r] + orig[r, s].astype(np.int64)] = scores[r, s]
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, pa.float32()), mask=pa.array(n == 0))


def predictions_table(batch: Batch, sel: Selection) -> pa.Table:
    """The predictions rows of one batch (``predictions_schema``, scores columns only if ``sel.scores``)."""
    choice = batch.original_choice(sel.choices.to(batch.exposed.device)).cpu().numpy()  # (B, 6), -1 absent
    with_scores = sel.scores is not None
    cols: dict[str, pa.Array] = {"impression_id": batch.impression_id}
    for j, c in enumerate(COMPONENTS):
        cols[choice_col(c)] = pa.array(choice[:, j].astype(np.int16), pa.int16(), mask=choice[:, j] < 0)
    if with_scores:
        scores = sel.scores.float().cpu().numpy()
        mask = batch.mask.cpu().numpy()
        orig = batch.original_index.cpu().numpy()
        n = batch.n_candidates.cpu().numpy()
        for j, c in enumerate(COMPONENTS):
            cols[scores_col(c)] = _scores_column(scores[:, j], mask[:, j], orig[:, j], n[:, j])
    return pa.table(cols, schema=predictions_schema(with_scores=with_scores))


def predict(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    mode: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    threads: int = 1,
    batch_rows: int = PREDICT_ROWS,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the predictions of the run in ``model_dir`` for the test split of ``data`` to ``out``.

    ``mode`` (GenCO only): ``sample`` (K draws from π, the best by the combination head; the paper's Eq. 24-25),
    ``greedy`` (per-component argmax of π) or ``enumerate``; default: the model's own. ``seed`` (the prediction
    seed) seeds the draws (and the uniform policy), independently of the run's training seed. Returns a summary
    (rows, seconds, sha256, prediction_seed, training_seed, selected_epoch, ...)."""
    t0 = time.perf_counter()
    if mode is not None and mode not in INFERENCE_MODES:
        raise InvalidInputError(f"--mode must be one of {', '.join(INFERENCE_MODES)}; got {mode!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda but torch.cuda.is_available() is False")
    if device == "cpu":
        torch.set_num_threads(threads)
    out = Path(out)
    if out.suffix != ".parquet":
        raise InvalidInputError(f"--out must name a .parquet file; got {out}")
    release = Release.open(data)
    policy, meta, vocabs = load_run(model_dir, device=device)
    method = meta["method"]
    if mode is not None and not isinstance(policy, GenCO):
        raise InvalidInputError(f"--mode applies to GenCO models; {method!r} has a single selection rule")
    if method == "uniform":
        policy = UniformPolicy(seed)
    elif isinstance(policy, MLPPolicy):
        policy.generator = torch.Generator().manual_seed(seed)  # its capped-sample draws
    gen = torch.Generator(device=device).manual_seed(seed)
    test = read_split(release, "test")
    parts = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=test.num_rows, unit="row", desc=f"predict {method}", dynamic_ncols=True)
    for s in range(0, test.num_rows, batch_rows):
        batch = pad_table(test.slice(s, batch_rows), vocabs)
        if device != "cpu":
            batch = batch.to(device)
        if isinstance(policy, UniformPolicy):
            sel = policy.select(batch)
        else:
            sel = select(policy, method, batch, mode, gen)
        parts.append(predictions_table(batch, sel))
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    table = pa.concat_tables(parts).combine_chunks()
    _atomic_write(out, lambda p: pq.write_table(table, p, compression="zstd"))
    used_mode = (mode or policy.config.inference) if isinstance(policy, GenCO) else None
    return {
        "out": str(out),
        "model": str(model_dir),
        "method": method,
        "mode": used_mode,
        "seed": seed,
        "prediction_seed": seed,
        "training_seed": meta.get("train", {}).get("seed"),
        "selected_epoch": (meta.get("validation") or {}).get("best_epoch"),
        "rows": table.num_rows,
        "scores": any(name.endswith("_scores") for name in table.column_names),
        "seconds": time.perf_counter() - t0,
        "sha256": sha256_file(out),
    }


def format_predict(s: dict[str, Any]) -> str:
    mode = f", mode {s['mode']}" if s.get("mode") else ""
    train_seed = f", training seed {s['training_seed']}" if s.get("training_seed") is not None else ""
    return (f"wrote {s['rows']:,} predictions of {s['method']} ({s['model']}{mode}, prediction seed {s['seed']}{train_seed}) "
            f"to {s['out']} in {s['seconds']:.1f} s")
