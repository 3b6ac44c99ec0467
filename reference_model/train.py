"""Train a reference policy on the train split of a release: one flat script, nanoGPT style.

    python -m reference_model.train --data rel --out runs/genco                     # the paper's protocol
    genco train --data rel --out runs/wo_rl --method wo_rl --epochs 3 --seed 1       # the same, via the CLI
    torchrun --standalone --nproc-per-node 2 -m reference_model.train --data rel --out runs/ddp   # DDP
    python -m reference_model.train --out runs/genco --resume                        # continue a run

Data. The vocabularies are built from the train rows (``--max-rows`` keeps the most recent ones); the rows
are padded ONCE into one :class:`genco_data.load.Batch` (on a GPU it is moved to the device when it
fits, so no step copies from the host) and batches are contiguous slices in chronological order — the paper
trains in log order, without shuffling. Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank takes its
own contiguous chronological shard (``N // world_size`` rows; the remainder, < world_size rows, is dropped),
``--batch-size`` stays the *global* batch (each rank steps on ``batch_size / world_size`` rows), gradients
are averaged by ``DistributedDataParallel`` (gloo on CPU, nccl on GPU) and only rank 0 logs and writes.

Methods: the GenCO rows of Tables 2/3 (``reference_model.model.VARIANTS``) and the baselines ``mlp`` (a
combination-CTR MLP trained by BCE with the same optimizer loop), ``dco`` (one pass of counting; its
statistics are stored as safetensors) and ``uniform`` (nothing to learn).

What ``--out`` holds (every file is written to a temporary name, then ``os.replace``d)::

    config.json                  method, model config (the architecture), train config, vocabulary
                                 fingerprint, release version + manifest sha256, step / epoch / samples
    model.safetensors            weights (GenCO, MLP) or statistics (DCO); empty for uniform. This file is the
                                 checkpoint's commit point: its metadata carries step, epoch and trainer file
    trainer-<step>.safetensors   optimizer state and every rank's RNG state, for --resume (latest only)
    vocab.npz                    the Vocabularies (torch_data format; no pickle anywhere)
    metrics.jsonl                one JSON line per log interval: step, samples, loss parts, samples/s, ...
    loss_curve.png

A run killed at any moment leaves the previous complete checkpoint: the trainer file of step S is written
before the model file that names it, and older trainer files are removed only after the commit.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torch import nn

from genco_data import __version__
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.errors import GencoError, InvalidInputError
from genco_data.fsutil import atomic_write as _atomic_write  # temp file + fsync + os.replace
from genco_data.fsutil import read_json_object
from genco_data.release import MANIFEST_NAME, Release, sha256_file
from genco_data.load import REQUIRED_COLUMNS, Batch, Vocabularies, pad_table
from reference_model.baselines import DCOPolicy, MLPPolicy
from reference_model.losses import genco_loss
from reference_model.model import VARIANTS, VOCAB_KEYS, GenCO, GenCOConfig, check_batch

# ------------------------------------------------------------------------------------------ constants
GENCO_METHODS: tuple[str, ...] = tuple(VARIANTS)  # genco, wo_mil, wo_rl, wo_context, wo_all, f_ele, f_comb, genco_bc
GRADIENT_METHODS: tuple[str, ...] = GENCO_METHODS + ("mlp",)
METHODS: tuple[str, ...] = GRADIENT_METHODS + ("dco", "uniform")
Method = Literal["genco", "wo_mil", "wo_rl", "wo_context", "wo_all", "f_ele", "f_comb", "genco_bc", "mlp", "dco", "uniform"]
CONFIG_NAME = "config.json"
MODEL_NAME = "model.safetensors"
VOCAB_NAME = "vocab.npz"
METRICS_NAME = "metrics.jsonl"
CURVE_NAME = "loss_curve.png"
TRAINER_PATTERN = "trainer-{step:08d}.safetensors"
#: TrainConfig fields a --resume may change (None = keep the run's); everything else comes from the run.
RESUME_OVERRIDABLE: tuple[str, ...] = ("epochs", "quiet", "device", "threads", "log_every", "save_every")
CKPT_KEY = "genco_run"  # the model file's safetensors metadata key (JSON: format, method, progress, trainer)
RUN_FORMAT = "genco-reference-run"
RUN_VERSION = 1

__all__ = [
    "METHODS",
    "GENCO_METHODS",
    "TrainConfig",
    "train",
    "main",
    "add_train_arguments",
    "config_from_args",
    "load_run",
    "build_policy",
]


# ------------------------------------------------------------------------------------------- config
@dataclass
class TrainConfig:
    """One training run. Defaults = the paper's protocol (Implementation Details); fields marked *ours*
    are where the paper is silent."""

    data: str | None = None  # release folder (its impressions/train split); None only with resume
    out: str = "runs/genco"  # run folder (created; must be empty or absent unless resume)
    method: Method = "genco"  # a Table 2/3 row, see METHODS
    epochs: int = 1  # passes over the train rows (ours: the paper trains daily on 33 days; count unstated)
    batch_size: int = 1024  # global batch (paper); each DDP rank steps on batch_size / world_size rows
    optimizer: Literal["sgd", "adam"] = "sgd"  # paper: SGD on all parameters
    lr: float = 5e-3  # paper: fixed 5e-3, no scheduler
    seed: int = 0  # initial weights, policy-gradient draws (per rank), uniform policy
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    bf16: bool = False  # bf16 autocast of the forward pass (GPU; works on CPU but is rarely faster)
    threads: int = 1  # CPU intra-op threads (ours: reproduce runs one 1-thread job per core; a lone run on an idle
    # 2-core box gains 1.4x from 2 threads, a busy one thrashes — benchmarks/TRAIN.md)
    max_rows: int | None = None  # keep only the most recent max_rows train rows (quick runs, tests)
    resume: bool = False  # continue the run in `out` from its last checkpoint
    packed: bool = True  # GenCO's fast path (real candidates only); False = the padded reference path
    sparse_embeddings: bool = False  # sparse id-table gradients (SGD only, not with DDP)
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
        if self.method not in METHODS:
            raise InvalidInputError(f"--method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.optimizer not in ("sgd", "adam"):
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
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InvalidInputError(f"--lr must be a positive number; got {self.lr!r}")
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
        return cls(**{k: v for k, v in d.items() if k in known})


# --------------------------------------------------------------------------------------- file helpers
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


# ------------------------------------------------------------------------------------------- policies
def build_policy(method: str, vocab_sizes: dict[str, int], cfg: TrainConfig, model_config: dict[str, Any] | None = None):
    """The untrained policy of ``method``: a GenCO (variant) or MLP ``nn.Module``, a DCOPolicy, or None
    (uniform). Initial weights come from ``cfg.seed`` (the global RNG is left untouched).
    ``model_config`` (a saved GenCOConfig dict) overrides the variant's config (used when loading)."""
    if method in GENCO_METHODS:
        if model_config is not None:
            gcfg = GenCOConfig.from_dict(model_config)
        else:
            gcfg = GenCOConfig.variant(method, vocab_sizes, packed=cfg.packed, sparse_embeddings=cfg.sparse_embeddings, **cfg.genco_options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return GenCO(gcfg)
    if method == "mlp":
        kw = model_config or {"vocab_sizes": vocab_sizes, "cap": cfg.mlp_cap}
        return MLPPolicy(kw["vocab_sizes"], cap=kw["cap"], seed=cfg.seed)
    if method == "dco":
        return DCOPolicy(delta=cfg.dco_delta, prior_strength=cfg.dco_prior)
    return None


def _model_config(method: str, policy: Any) -> dict[str, Any] | None:
    if method in GENCO_METHODS:
        return policy.config.to_dict()
    if method == "mlp":
        return {"vocab_sizes": dict(policy.vocab_sizes), "cap": policy.cap}
    return None


def n_parameters(policy: Any) -> int:
    if isinstance(policy, nn.Module):
        return int(sum(p.numel() for p in policy.parameters()))
    if isinstance(policy, DCOPolicy) and policy._keys is not None:
        return int(sum(a.size for a in _dco_arrays(policy).values()))
    return 0


_DCO_FIELDS = ("_keys", "_n", "_c", "_ekeys", "_en", "_ec", "_ctr_comp")


def _dco_arrays(policy: DCOPolicy) -> dict[str, np.ndarray]:
    out = {name.lstrip("_"): np.ascontiguousarray(getattr(policy, name)) for name in _DCO_FIELDS}
    out["n_elem"] = np.asarray([policy._n_elem], dtype=np.int64)
    return out


def _dco_from_arrays(policy: DCOPolicy, arrays: dict[str, np.ndarray]) -> DCOPolicy:
    for name in _DCO_FIELDS:
        setattr(policy, name, arrays[name.lstrip("_")])
    policy._n_elem = int(arrays["n_elem"][0])
    return policy


class Objective(nn.Module):
    """The training loss as a module (what DDP wraps, so that ``find_unused_parameters`` sees exactly the
    parameters the loss reaches). ``forward(batch, generator) -> (total, parts)``; parts (P,) detached."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        if isinstance(policy, GenCO):
            self.part_names: tuple[str, ...] = ("loss", "comb", "ele", "rl") + (("bc",) if policy.config.bc_weight > 0 else ())
        else:
            self.part_names = ("loss",)

    def forward(self, batch: Batch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.policy
        if isinstance(p, GenCO):
            out = p(batch, generator=generator)
            lb = genco_loss(out, batch, p.config)
            parts = [lb.total.detach(), lb.comb, lb.ele, lb.rl] + ([lb.bc] if p.config.bc_weight > 0 else [])
            return lb.total, torch.stack(parts)
        s = p.score(batch, batch.exposed.unsqueeze(1)).squeeze(1)  # MLP: logit of the logged combination
        loss = F.binary_cross_entropy_with_logits(s, batch.click.to(s.dtype))
        return loss, loss.detach()[None]


# --------------------------------------------------------------------------------------------- data
def read_split(release: Release, split: str, max_rows: int | None = None) -> pa.Table:
    """The ``impressions`` ``split`` as one table (only the columns the adapters read), chronological;
    ``max_rows`` keeps the last (most recent) rows."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}")
    files = release.data_files(CONFIGS[0], split)
    if not files:
        raise InvalidInputError(f"{release.root}: no {split} shards in the manifest")
    table = pa.concat_tables([pq.read_table(f, columns=list(REQUIRED_COLUMNS)) for f in files])
    if max_rows is not None and table.num_rows > max_rows:
        table = table.slice(table.num_rows - max_rows)
    return table.combine_chunks()


def shard_bounds(n_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous chronological shard ``[start, stop)`` of ``rank``: ``n_rows // world_size`` rows each."""
    per = n_rows // world_size
    return rank * per, (rank + 1) * per


def release_identity(release: Release) -> dict[str, Any]:
    return {
        "path": str(release.root),
        "dataset_version": release.manifest.dataset_version,
        "manifest_sha256": sha256_file(release.root / MANIFEST_NAME),
    }


# ---------------------------------------------------------------------------------------- distributed
@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def master(self) -> bool:
        return self.rank == 0


def _has_unused_parameters(objective: "Objective", data: Batch, device: torch.device) -> bool:
    """Whether the loss leaves some parameter without a gradient (f_ele, f_comb, w/o context, ...): DDP must
    then be told (find_unused_parameters). Probed once on two rows in eval mode (BatchNorm statistics and the
    training RNG untouched)."""
    policy = objective.policy
    was = policy.training
    policy.eval()
    try:
        loss, _ = objective(data[:2], torch.Generator(device=device).manual_seed(0))
        loss.backward()
        unused = any(p.grad is None for p in policy.parameters())
    finally:
        policy.zero_grad(set_to_none=True)
        policy.train(was)
    return unused


def _init_distributed(device_kind: str) -> _Dist:
    """DDP from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world <= 1:
        return _Dist()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo", timeout=dt.timedelta(minutes=10))
    return _Dist(rank, world, local, True)


def _resolve_device(cfg: TrainConfig, dist_: _Dist) -> torch.device:
    kind = cfg.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError("--device cuda but torch.cuda.is_available() is False")
        torch.cuda.set_device(dist_.local_rank)
        return torch.device("cuda", dist_.local_rank)
    return torch.device("cpu")


def _device_kind(cfg: TrainConfig) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device


def _rank_seed(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank, 0x6E0C0]).generate_state(1, np.uint64)[0] >> np.uint64(1))


# ------------------------------------------------------------------------------------------ checkpoint
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


def _generator_states(gen: torch.Generator, dist_: _Dist) -> list[torch.Tensor]:
    """Every rank's RNG state (gathered onto every rank; gloo/nccl move uint8 tensors)."""
    state = gen.get_state()
    if not dist_.enabled:
        return [state]
    import torch.distributed as dist

    dev = torch.device("cuda", dist_.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    mine = state.to(dev)
    allst = [torch.empty_like(mine) for _ in range(dist_.world_size)]
    dist.all_gather(allst, mine)
    return [s.cpu() for s in allst]


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
    only. The architecture comes from config.json; the policy is in eval mode on ``device``."""
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
        tensors, _ = _load_tensors(out / MODEL_NAME)
        policy.load_state_dict(tensors)
        policy.to(device).eval()
    return policy, meta, vocabs


# ------------------------------------------------------------------------------------------- logging
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


def plot_loss_curve(metrics: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss parts against samples seen (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in metrics if "loss" in r and "samples" in r]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    if rows:
        x = [r["samples"] for r in rows]
        for key in ("loss", "comb", "ele", "rl", "bc"):
            if key in rows[0]:
                ax.plot(x, [r[key] for r in rows], label={"loss": "total L"}.get(key, f"L_{key}"), lw=1.2)
        ax.legend(fontsize=8)
    ax.set_xlabel("training samples")
    ax.set_ylabel("loss (mean over the log interval)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- train
def _prepare_out(cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Check --out; on resume, the saved TrainConfig (only the RESUME_OVERRIDABLE fields given, i.e. not None,
    replace the saved ones) and the saved config.json."""
    out = Path(cfg.out)
    if not cfg.resume:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InvalidInputError(f"--out {out} exists and is not empty; choose a new folder or pass --resume")
        return cfg, None
    meta = read_run_config(out)
    saved = TrainConfig.from_dict(meta["train"])
    if cfg.data is not None and Path(cfg.data).resolve() != Path(saved.data).resolve():
        raise InvalidInputError(f"--resume: the run was trained on {saved.data}, not {cfg.data}")
    given = {k: getattr(cfg, k) for k in RESUME_OVERRIDABLE if getattr(cfg, k) is not None}
    merged = TrainConfig.from_dict({**saved.to_dict(), **given, "resume": True, "out": str(out)})
    return merged, meta


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one training; returns a summary dict (on every rank; only rank 0 writes files)."""
    cfg, saved_meta = _prepare_out(cfg)
    out = Path(cfg.out)
    dist_ = _init_distributed(_device_kind(cfg))
    try:
        return _train(cfg, saved_meta, out, dist_)
    finally:
        if dist_.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _train(cfg: TrainConfig, saved_meta: dict[str, Any] | None, out: Path, dist_: _Dist) -> dict[str, Any]:
    t_start = time.perf_counter()
    device = _resolve_device(cfg, dist_)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    release = Release.open(cfg.data)
    ident = release_identity(release)
    if saved_meta is not None and saved_meta["release"]["manifest_sha256"] != ident["manifest_sha256"]:
        raise InvalidInputError(f"--resume: {cfg.data} is not the release the run started on (manifest sha256 differs)")
    if saved_meta is not None and saved_meta.get("world_size", 1) != dist_.world_size:
        raise InvalidInputError(f"--resume: the run used {saved_meta.get('world_size', 1)} process(es); this one has {dist_.world_size}")
    if dist_.world_size > 1 and cfg.batch_size % dist_.world_size:
        raise InvalidInputError(f"--batch-size {cfg.batch_size} must be divisible by the {dist_.world_size} DDP processes")
    if dist_.enabled and cfg.sparse_embeddings:
        raise InvalidInputError("--sparse-embeddings is not supported with DDP")

    # ---- data: vocabularies from the train rows, the rank's chronological shard padded once
    table = read_split(release, "train", cfg.max_rows)
    if table.num_rows < dist_.world_size:
        raise InvalidInputError(f"{cfg.data}: {table.num_rows} train rows, fewer than {dist_.world_size} processes")
    if saved_meta is not None:
        vocabs = Vocabularies.load(out / VOCAB_NAME)
        if vocabs.fingerprint() != saved_meta["vocab_fingerprint"]:
            raise InvalidInputError(f"--resume: {out / VOCAB_NAME} does not match {CONFIG_NAME}")
    else:
        vocabs = Vocabularies.build(table)
    method = cfg.method
    gradient = method in GRADIENT_METHODS
    # gradient methods: the rank's chronological shard; counting methods (DCO): every rank the whole split
    start, stop = shard_bounds(table.num_rows, dist_.rank, dist_.world_size) if gradient else (0, table.num_rows)
    data = pad_table(table.slice(start, stop - start), vocabs)
    del table
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        need = sum(t.numel() * t.element_size() for t in data.tensors().values())
        if need < 0.5 * free:  # device-resident: batches are slices of GPU tensors, no host copies
            data = data.to(device)
    resident = data.candidates.device.type == device.type

    # ---- policy, optimizer, RNG
    policy = build_policy(method, vocabs.sizes(), cfg, saved_meta.get("model") if saved_meta else None)
    meta = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "genco_data_version": __version__,
        "torch_version": torch.__version__,
        "method": method,
        "model": _model_config(method, policy),
        "n_parameters": n_parameters(policy),
        "train": {**cfg.to_dict(), "resume": False},
        "vocab_fingerprint": vocabs.fingerprint(),
        "vocab_sizes": vocabs.sizes(),
        "release": ident,
        "train_rows": int(stop - start) * (dist_.world_size if gradient else 1),
        "world_size": dist_.world_size,
        "device": str(device),
        "created": (saved_meta or {}).get("created") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if dist_.master:
        out.mkdir(parents=True, exist_ok=True)
        if saved_meta is None:
            _atomic_write(out / VOCAB_NAME, lambda p: vocabs.save(p))
            _write_json(out / CONFIG_NAME, {**meta, "progress": dataclasses.asdict(_Progress())})
    if not gradient:
        return _fit_counting(cfg, policy, data, out, dist_, meta, t_start)

    if isinstance(policy, GenCO):
        check_batch(data, policy.config)  # index ranges once for the whole shard (not per step)
    policy.to(device)
    params = list(policy.parameters())
    opt = torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(_rank_seed(cfg.seed, dist_.rank))
    prog = _Progress()
    if saved_meta is not None:
        prog, trainer_name, _ = _read_checkpoint_progress(out)
        if prog.step > 0:
            tensors, _ = _load_tensors(out / MODEL_NAME)
            policy.load_state_dict(tensors)
            if not trainer_name or not (out / trainer_name).is_file():
                raise InvalidInputError(f"--resume: {out / (trainer_name or 'trainer-*.safetensors')} is missing")
            ttensors, _ = _load_tensors(out / trainer_name)
            _load_optimizer(opt, ttensors)
            gen.set_state(ttensors[f"rng.rank{dist_.rank}"])
        if dist_.master:
            _truncate_metrics(out / METRICS_NAME, prog.step)
    objective: nn.Module = Objective(policy)
    parts_names = objective.part_names
    if dist_.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        objective = DDP(objective, find_unused_parameters=_has_unused_parameters(objective, data, device))

    # ---- the loop: chronological slices of the rank's shard
    local_bs = cfg.batch_size // dist_.world_size
    n_local = len(data)
    steps_per_epoch = max(1, math.ceil(n_local / local_bs))
    total_steps = steps_per_epoch * cfg.epochs
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.bf16 else nullcontext()
    bar = None
    if dist_.master and not cfg.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=min(prog.step, total_steps), unit="step", desc=f"train {method}", file=sys.stderr, dynamic_ncols=True)
    if dist_.master and not any(r.get("event") == "start" for r in read_metrics(out / METRICS_NAME)):
        _append_metrics(out / METRICS_NAME, {"event": "start", "step": 0, "world_size": dist_.world_size, "method": method,
                                             "train_rows": meta["train_rows"], "steps_per_epoch": steps_per_epoch})
    policy.train()
    acc = torch.zeros(len(parts_names), device=device)
    acc_n = 0
    t_log, samples_log = time.perf_counter(), prog.samples
    rank_samples = 0
    t_loop = time.perf_counter()
    samples_at_start, steps_at_start = prog.samples, prog.step

    def save(finished: bool) -> None:
        states = _generator_states(gen, dist_)
        if dist_.master:
            _checkpoint(out, policy, method, opt, states, prog, meta, finished)

    while prog.epoch < cfg.epochs:
        while prog.batch < steps_per_epoch:
            s0 = prog.batch * local_bs
            batch = data[s0 : min(n_local, s0 + local_bs)]
            if not resident:
                batch = batch.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss, parts = objective(batch, gen)
            loss.backward()
            opt.step()
            acc += parts.float()
            acc_n += 1
            prog.step += 1
            prog.batch += 1
            prog.samples += len(batch) * dist_.world_size
            rank_samples += len(batch)
            last_of_epoch = prog.batch == steps_per_epoch
            if prog.step % cfg.log_every == 0 or last_of_epoch:
                if dist_.enabled:  # the logged loss is the mean over ranks; every rank sees a divergence
                    import torch.distributed as dist

                    dist.all_reduce(acc)
                    acc /= dist_.world_size
                vals = (acc / acc_n).tolist()
                if not all(math.isfinite(v) for v in vals):
                    raise InvalidInputError(f"training diverged at step {prog.step} (loss {vals[0]}); lower --lr")
            if dist_.master and (prog.step % cfg.log_every == 0 or last_of_epoch):
                now = time.perf_counter()
                sps = (prog.samples - samples_log) / max(now - t_log, 1e-9)
                rec = {"step": prog.step, "epoch": prog.epoch + prog.batch / steps_per_epoch, "samples": prog.samples,
                       **dict(zip(parts_names, vals)), "samples_per_s": sps, "elapsed_s": now - t_start}
                _append_metrics(out / METRICS_NAME, rec)
                if bar is not None:
                    bar.set_postfix(loss=f"{vals[0]:.4f}", samples_per_s=f"{sps:,.0f}", refresh=False)
                acc.zero_()
                acc_n = 0
                t_log, samples_log = now, prog.samples
            elif not dist_.master and (prog.step % cfg.log_every == 0 or last_of_epoch):
                acc.zero_()
                acc_n = 0
            if bar is not None:
                bar.update(1)
            if last_of_epoch:
                prog.epoch += 1
                prog.batch = 0
                t0 = time.perf_counter()
                save(finished=prog.epoch >= cfg.epochs)
                if dist_.master:
                    plot_loss_curve(read_metrics(out / METRICS_NAME), out / CURVE_NAME, f"{method} (seed {cfg.seed})")
                t_log += time.perf_counter() - t0  # samples/s measures training, not writing
                break
            if cfg.save_every and prog.step % cfg.save_every == 0:
                t0 = time.perf_counter()
                save(finished=False)
                t_log += time.perf_counter() - t0
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t_loop
    # every rank reports its shard and how many rows it stepped on (proof of disjoint shards)
    shard = torch.tensor([start, stop, rank_samples], dtype=torch.int64)
    shards = [shard]
    if dist_.enabled:
        import torch.distributed as dist

        dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
        mine = shard.to(dev)
        shards = [torch.empty_like(mine) for _ in range(dist_.world_size)]
        dist.all_gather(shards, mine)
    shard_info = [{"rank": r, "rows": [int(s[0]), int(s[1])], "samples": int(s[2])} for r, s in enumerate(shards)]
    summary = {
        "out": str(out),
        "method": method,
        "steps": prog.step,
        "epochs": prog.epoch,
        "samples": prog.samples,
        "seconds": seconds,
        "samples_per_s": (prog.samples - samples_at_start) / max(seconds, 1e-9),
        "n_parameters": meta["n_parameters"],
        "world_size": dist_.world_size,
        "device": str(device),
        "shards": shard_info,
    }
    if dist_.master:
        final = [r for r in read_metrics(out / METRICS_NAME) if "loss" in r]
        summary["final_loss"] = final[-1]["loss"] if final else None
        if prog.step > steps_at_start:  # (a resumed run that was already finished trains nothing)
            _append_metrics(out / METRICS_NAME, {"event": "end", "step": prog.step, "shards": shard_info, "seconds": seconds})
            cfgd = read_run_config(out)
            _write_json(out / CONFIG_NAME, {**cfgd, "shards": shard_info})
    return summary


def _fit_counting(cfg: TrainConfig, policy: Any, data: Batch, out: Path, dist_: _Dist, meta: dict[str, Any], t0: float) -> dict[str, Any]:
    """DCO: one counting pass over the whole train split (every rank counts the same rows; rank 0 writes);
    uniform: nothing to learn. Writes the checkpoint (no trainer file: nothing to resume)."""
    if policy is not None:
        policy.fit([data])
        meta["n_parameters"] = n_parameters(policy)
    prog = _Progress(step=1, epoch=cfg.epochs, batch=0, samples=len(data))
    if dist_.master:
        _checkpoint(out, policy, cfg.method, None, [], prog, meta, True)
        _append_metrics(out / METRICS_NAME, {"event": "end", "step": 1, "samples": prog.samples})
    seconds = time.perf_counter() - t0
    return {"out": str(out), "method": cfg.method, "steps": 1, "epochs": cfg.epochs, "samples": prog.samples, "seconds": seconds,
            "samples_per_s": prog.samples / max(seconds, 1e-9), "n_parameters": meta["n_parameters"], "world_size": dist_.world_size,
            "device": "cpu", "final_loss": None}


# ------------------------------------------------------------------------------------------------ CLI
def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``genco train`` / ``python -m reference_model.train`` (defaults: TrainConfig's)."""
    d = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(TrainConfig)})
    p.add_argument("--data", default=None, help="release folder (its impressions train split)")
    p.add_argument("--out", required=True, help="run folder: model.safetensors, config.json, vocab.npz, metrics.jsonl, loss_curve.png")
    p.add_argument("--method", default=d.method, help=f"one of {', '.join(METHODS)} (default {d.method})")
    p.add_argument("--epochs", type=int, default=None, help=f"passes over the train rows (default {d.epochs}; with --resume: "
                   "the run's, or more to extend it)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"global batch size (default {d.batch_size}, paper)")
    p.add_argument("--optimizer", default=d.optimizer, help="sgd (default, paper) or adam")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr}, paper)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward pass")
    p.add_argument("--threads", type=int, default=None, help=f"CPU intra-op threads per process (default {d.threads})")
    p.add_argument("--max-rows", type=int, default=None, help="train on the most recent N rows only")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--padded", action="store_true", help="GenCO's padded reference path instead of the packed one")
    p.add_argument("--sparse-embeddings", action="store_true", help="sparse id-table gradients (SGD, single process)")
    add_genco_set_argument(p)
    p.add_argument("--log-every", type=int, default=None, help=f"steps between metrics lines (default {d.log_every})")
    p.add_argument("--save-every", type=int, default=None, help=f"steps between checkpoints, 0 = epoch ends only (default {d.save_every})")


def add_genco_set_argument(p: argparse.ArgumentParser) -> None:
    """``--genco-set NAME=VALUE`` (repeatable): GenCOConfig overrides (genco train and genco reproduce)."""
    p.add_argument("--genco-set", action="append", default=[], metavar="NAME=VALUE",
                   help="GenCO config override, repeatable, e.g. --genco-set off_policy_clip=10 --genco-set logged_baseline=value "
                        "--genco-set emb_init_std=0.01 --genco-set pool_context=false (see reference_model/model.py: GenCOConfig)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from parsed options; options left out stay None under --resume (the run's values)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    opt = {k: getattr(args, k) for k in RESUME_OVERRIDABLE if k != "quiet"}
    if not args.resume:
        opt = {k: defaults[k] if v is None else v for k, v in opt.items()}
    return TrainConfig(
        data=args.data, out=args.out, method=args.method, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        seed=args.seed, bf16=args.bf16, max_rows=args.max_rows, resume=args.resume, packed=not args.padded,
        sparse_embeddings=args.sparse_embeddings, genco_options=GenCOConfig.parse_options(args.genco_set),
        quiet=getattr(args, "quiet", False), **opt,
    )


def format_summary(s: dict[str, Any]) -> str:
    loss = s.get("final_loss")
    return (f"trained {s['method']} in {s['out']}: {s['steps']:,} steps, {s['epochs']} epoch(s), {s['samples']:,} samples, "
            f"{s['samples_per_s']:,.0f} samples/s on {s['world_size']} process(es)" + (f", final loss {loss:.4f}" if loss is not None else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reference_model.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    try:
        summary = train(config_from_args(args))
    except GencoError as exc:
        print(f"reference_model.train: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"reference_model.train: error: no such file: {exc.filename or exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2, sort_keys=True) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
