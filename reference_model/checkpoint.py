"""The run folder of a training: safetensors checkpoints (write, commit, resume), ``config.json``,
``metrics.jsonl`` and the loss curve, and :func:`load_run` to read a run back.

What ``--out`` holds (every file is written to a temporary name, then ``os.replace``d)::

    config.json                  method, model config (the architecture), train config, vocabulary
                                 fingerprint, release version + manifest sha256, step / epoch / samples
    model.safetensors            weights (GenCO, MLP) or statistics (DCO); empty for uniform. This file is the
                                 checkpoint's commit point: its metadata carries step, epoch and trainer file
    trainer-<step>.safetensors   optimizer state and every rank's RNG state, for --resume (latest only)
    best.safetensors             with validation days: the weights of the best epoch so far (model selection);
                                 what :func:`load_run` (so ``genco predict``) reads; model.safetensors stays the
                                 latest state, which --resume continues from
    vocab.npz                    the Vocabularies (genco_data.load.vocab format; no pickle anywhere)
    metrics.jsonl                one JSON line per log interval: step, samples, loss parts, samples/s, ...
    loss_curve.png

A run killed at any moment leaves the previous complete checkpoint: the trainer file of step S is written
before the model file that names it, and older trainer files are removed only after the commit.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genco_data.errors import InvalidInputError
from genco_data.fsutil import atomic_write as _atomic_write  # temp file + fsync + os.replace
from genco_data.fsutil import read_json_object
from genco_data.load import Vocabularies
from reference_model.policies import _dco_arrays, _dco_from_arrays, build_policy
from reference_model.train_config import TrainConfig

CONFIG_NAME = "config.json"
MODEL_NAME = "model.safetensors"
VOCAB_NAME = "vocab.npz"
METRICS_NAME = "metrics.jsonl"
CURVE_NAME = "loss_curve.png"
BEST_NAME = "best.safetensors"
TRAINER_PATTERN = "trainer-{step:08d}.safetensors"
CKPT_KEY = "genco_run"  # the model file's safetensors metadata key (JSON: format, method, progress, trainer)
RUN_FORMAT = "genco-reference-run"
RUN_VERSION = 1

__all__ = [
    "CONFIG_NAME",
    "MODEL_NAME",
    "VOCAB_NAME",
    "METRICS_NAME",
    "CURVE_NAME",
    "BEST_NAME",
    "read_run_config",
    "checkpoint_info",
    "load_run",
    "read_metrics",
    "plot_loss_curve",
]


def _write_json(path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write(path, lambda p: save_file(flat, str(p), metadata=metadata))


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such checkpoint file") from None
    except Exception as exc:  # safetensors raises SafetensorError / OSError on a damaged file
        raise InvalidInputError(f"{path}: not a readable safetensors file ({exc})") from None


def read_run_config(out: str | os.PathLike) -> dict[str, Any]:
    """``<run>/config.json`` as a dict (checked to be a run folder)."""
    path = Path(out) / CONFIG_NAME
    if not path.is_file():
        raise InvalidInputError(f"{out}: not a training run folder (no {CONFIG_NAME})")
    meta = read_json_object(path, InvalidInputError)  # a non-object config.json is refused too
    if meta.get("format") != RUN_FORMAT or meta.get("version") != RUN_VERSION:
        raise InvalidInputError(f"{path}: expected format {RUN_FORMAT!r} version {RUN_VERSION}, got {meta.get('format')!r} {meta.get('version')!r}")
    return meta


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                out[f"optim.{i}.{k}"] = v
    return out


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, i, k = name.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


@dataclass
class _Progress:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches done within the current epoch
    samples: int = 0  # rows seen over all ranks


def _checkpoint(out: Path, policy: Any, method: str, opt: torch.optim.Optimizer | None, gen_states: list[torch.Tensor],
                prog: _Progress, meta: dict[str, Any], finished: bool) -> None:
    """Commit a checkpoint: trainer file, then the model file naming it (the commit point), then config.json;
    stale trainer files last."""
    info = {"step": prog.step, "epoch": prog.epoch, "batch": prog.batch, "samples": prog.samples, "finished": finished}
    trainer_name = ""
    if opt is not None:
        trainer_name = TRAINER_PATTERN.format(step=prog.step)
        tensors = _optimizer_tensors(opt)
        tensors.update({f"rng.rank{r}": s for r, s in enumerate(gen_states)})
        _save_tensors(out / trainer_name, tensors, {"step": str(prog.step)})
    # one metadata key: safetensors stores the metadata map unordered, and the same run must give the same bytes
    md = {CKPT_KEY: json.dumps({"format": RUN_FORMAT, "method": method, "progress": info, "trainer": trainer_name}, sort_keys=True)}
    if method == "dco":
        from safetensors.numpy import save_file as np_save

        arrays = _dco_arrays(policy)
        _atomic_write(out / MODEL_NAME, lambda p: np_save(arrays, str(p), metadata=md))
    elif isinstance(policy, nn.Module):
        _save_tensors(out / MODEL_NAME, policy.state_dict(), md)
    else:
        _save_tensors(out / MODEL_NAME, {}, md)
    _write_json(out / CONFIG_NAME, {**meta, "progress": info})
    for stale in out.glob("trainer-*.safetensors"):
        if stale.name != trainer_name:
            stale.unlink(missing_ok=True)


def _save_best(out: Path, policy: nn.Module, epoch: int, score: float) -> None:
    """The selected weights (validation's best epoch so far), with the epoch and score in the metadata."""
    md = {CKPT_KEY: json.dumps({"format": RUN_FORMAT, "selected_epoch": epoch, "validation_score": score}, sort_keys=True)}
    _save_tensors(out / BEST_NAME, policy.state_dict(), md)


def _read_checkpoint_progress(out: Path) -> tuple[_Progress, str, bool]:
    from safetensors import safe_open

    path = out / MODEL_NAME
    if not path.is_file():
        return _Progress(), "", False
    try:
        with safe_open(str(path), framework="np") as f:
            md = dict(f.metadata() or {})
    except Exception as exc:
        raise InvalidInputError(f"{path}: not a readable safetensors file ({exc})") from None
    ck = checkpoint_info(md, path)
    info = ck["progress"]
    prog = _Progress(info.get("step", 0), info.get("epoch", 0), info.get("batch", 0), info.get("samples", 0))
    return prog, ck.get("trainer", ""), bool(info.get("finished", False))


def checkpoint_info(metadata: dict[str, str], where: Path | str = MODEL_NAME) -> dict[str, Any]:
    """The run information stored in a model file's safetensors metadata: format, method, progress, trainer."""
    try:
        info = json.loads(metadata[CKPT_KEY])
    except (KeyError, json.JSONDecodeError):
        raise InvalidInputError(f"{where}: not a genco-data checkpoint (no {CKPT_KEY!r} metadata)") from None
    if info.get("format") != RUN_FORMAT:
        raise InvalidInputError(f"{where}: metadata format {info.get('format')!r}, expected {RUN_FORMAT!r}")
    return info


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any], Vocabularies]:
    """(policy, config.json dict, vocabularies) of a finished or checkpointed run, read with safetensors
    only. The architecture comes from config.json; the weights are the selected epoch's (``best.safetensors``)
    when the run validated, else the latest; the policy is in eval mode on ``device``."""
    out = Path(run_dir)
    meta = read_run_config(out)
    vocabs = Vocabularies.load(out / VOCAB_NAME)
    if vocabs.fingerprint() != meta["vocab_fingerprint"]:
        raise InvalidInputError(f"{out / VOCAB_NAME}: vocabulary fingerprint differs from {CONFIG_NAME}'s")
    cfg = TrainConfig.from_dict({**meta["train"], "resume": False})
    method = meta["method"]
    if not (out / MODEL_NAME).is_file():
        raise InvalidInputError(f"{out}: no {MODEL_NAME} yet (the run has not checkpointed)")
    policy = build_policy(method, vocabs.sizes(), cfg, meta.get("model"))
    if method == "dco":
        from safetensors.numpy import load_file as np_load

        _dco_from_arrays(policy, np_load(str(out / MODEL_NAME)))
    elif isinstance(policy, nn.Module):
        selected = (meta.get("validation") or {}).get("best_epoch") is not None
        if selected and not (out / BEST_NAME).is_file():
            raise InvalidInputError(f"{out}: config.json selects epoch {meta['validation']['best_epoch']} but {BEST_NAME} is missing")
        tensors, _ = _load_tensors(out / (BEST_NAME if selected else MODEL_NAME))
        policy.load_state_dict(tensors)
        policy.to(device).eval()
    return policy, meta, vocabs


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl (a line cut short by a kill is skipped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the records up to ``step`` (those after the last checkpoint are replayed by the resumed run)."""
    keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    _atomic_write(path, lambda p: p.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep), encoding="utf-8"))


#: The note under the loss curve: what L_RL's value means (it is not a goodness of fit).
RL_NOTE = ("L_RL is a policy-gradient surrogate, -(advantage) x log pi: not bounded below by 0 and not a measure of fit. "
           "It is negative while most logged rows have a negative advantage (no click: reward -0.1, below the baseline) "
           "and drifts as the reward model and its baseline learn; its gradient is what trains pi. Read L_comb and L_ele for the fit.")


def plot_loss_curve(metrics: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss parts against samples seen (PNG, written atomically). Left: the fit — total L and the two
    cross-entropies L_comb (solid) and L_ele (dashed, markers), which often lie on top of each other; right,
    on its own scale with the zero line: the policy terms L_RL (and L_BC), with :data:`RL_NOTE` under the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in metrics if "loss" in r and "samples" in r]
    policy_keys = [k for k in ("rl", "bc") if rows and k in rows[0]]
    fig, axes = plt.subplots(1, 2 if policy_keys else 1, figsize=(10 if policy_keys else 6.4, 4.2), dpi=100, squeeze=False)
    fit = axes[0, 0]
    styles = {"loss": dict(color="0.2", lw=1.0, ls=":", label="total L = L_comb + L_ele + lambda L_RL"),
              "comb": dict(color="C0", lw=2.6, ls="-", alpha=0.8, label="L_comb (combination BCE)"),
              "ele": dict(color="C3", lw=1.2, ls="--", marker="o", markersize=2.5, markevery=0.1, label="L_ele (element BCE)"),
              "rl": dict(color="C2", lw=1.4, ls="-", label="L_RL (policy-gradient surrogate)"),
              "bc": dict(color="C4", lw=1.2, ls="--", label="L_BC (behaviour cloning)")}
    if len(rows) <= 2:  # a line needs two points: show single log points as markers
        for st in styles.values():
            st.setdefault("marker", "o")
    if rows:
        x = [r["samples"] for r in rows]
        for key in ("loss", "comb", "ele"):
            if key in rows[0]:
                fit.plot(x, [r[key] for r in rows], **styles[key])
        fit.legend(fontsize=7)
        if policy_keys:
            pol = axes[0, 1]
            for key in policy_keys:
                pol.plot(x, [r[key] for r in rows], **styles[key])
            pol.axhline(0, color="k", lw=0.8)
            pol.set_xlabel("training samples")
            pol.set_ylabel("policy term (mean over the log interval)")
            pol.set_title("policy terms (own scale)", fontsize=9)
            pol.grid(alpha=0.3)
            pol.legend(fontsize=7)
    fit.set_xlabel("training samples")
    fit.set_ylabel("loss (mean over the log interval)")
    fit.set_title("fit: cross-entropies", fontsize=9)
    fit.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    if policy_keys:
        import textwrap

        fig.text(0.01, 0.01, "\n".join(textwrap.wrap(RL_NOTE, 170)), fontsize=6.5, va="bottom", ha="left", color="0.25")
        fig.tight_layout(rect=(0, 0.09, 1, 0.95))
    else:
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    _atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
