"""Train a reference policy on the train split of a release: one flat script, nanoGPT style.

    python -m reference_model.train --data rel --out runs/genco                     # the reference protocol
    genco train --data rel --out runs/genco_paper --paper-defaults                  # the paper's literal settings
    genco train --data rel --out runs/wo_rl --method wo_rl --seed 1                  # an ablation, via the CLI
    torchrun --standalone --nproc-per-node 2 -m reference_model.train --data rel --out runs/ddp   # DDP
    python -m reference_model.train --out runs/genco --resume                        # continue a run

Data (:mod:`reference_model.train_data`). The id tables are hashed as the paper's, sized by the manifest's
distinct-id counts (``--vocab exact`` builds vocabularies from the train rows; ``--max-rows`` keeps the most
recent ones); the rows are padded ONCE into one :class:`genco_data.load.Batch` when they fit the memory budget
(on a GPU moved to the device when they fit, so no step copies from the host), else streamed from the shards
(``--stream``); either way batches come in chronological order — the paper trains in log order, without
shuffling. Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) each rank takes and reads only its own contiguous
chronological range (``N // world_size`` rows; the remainder, < world_size rows, is dropped),
``--batch-size`` stays the *global* batch (each rank steps on ``batch_size / world_size`` rows), gradients
are averaged by ``DistributedDataParallel`` (gloo on CPU, nccl on GPU) and only rank 0 logs and writes.

The methods (``--method``) and :class:`TrainConfig` are :mod:`reference_model.train_config`'s; the run folder
(``--out``: checkpoints, config.json, metrics.jsonl, the loss curve) :mod:`reference_model.checkpoint`'s; DDP
set-up and sharding :mod:`reference_model.distributed`'s; the policy of each method
:mod:`reference_model.policies`'s.
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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genco_data import __version__
from genco_data.errors import GencoError, InvalidInputError
from genco_data.fsutil import atomic_write as _atomic_write  # temp file + fsync + os.replace
from genco_data.format.components import CONFIGS
from genco_data.load import StreamingDataset, Vocabularies
from genco_data.release import Release, verify_checksums
from reference_model.checkpoint import (
    CONFIG_NAME,
    CURVE_NAME,
    METRICS_NAME,
    MODEL_NAME,
    RUN_FORMAT,
    RUN_VERSION,
    VOCAB_NAME,
    _append_metrics,
    _checkpoint,
    _load_optimizer,
    _load_tensors,
    _Progress,
    _read_checkpoint_progress,
    _truncate_metrics,
    _write_json,
    load_run,
    plot_loss_curve,
    read_metrics,
    read_run_config,
)
from reference_model.data import release_identity
from reference_model.distributed import (
    _device_kind,
    _Dist,
    _generator_states,
    _has_unused_parameters,
    _init_distributed,
    _rank_seed,
    _resolve_device,
)
from reference_model.config import GenCOConfig
from reference_model.inputs import check_batch
from reference_model.model import GenCO
from reference_model.policies import Objective, _model_config, build_policy, n_parameters, start_heads
from reference_model.train_config import GENCO_METHODS, GRADIENT_METHODS, METHODS, PROTOCOLS, RESUME_OVERRIDABLE, TrainConfig, sparse_auto
from reference_model.train_data import TrainRows, describe_rows, plan_rows, train_vocabularies
from reference_model.validation import VALIDATION_BLOCK, VALIDATION_METRIC, EarlyStopping, validate_epoch, validation_boundary

# The script's public names (those of its parts included, so ``reference_model.train`` stays their address).
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


# ---------------------------------------------------------------------------------------------- train

def _param_groups(policy: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """One group, or two when ``weight_decay`` > 0: the fused id table (L2-decayed) and the rest (not decayed)."""
    if not weight_decay:
        return [{"params": list(policy.parameters())}]
    named = list(policy.named_parameters())
    table = [p for n, p in named if n.endswith("ids.table.weight")]
    rest = [p for n, p in named if not n.endswith("ids.table.weight")]
    return [{"params": rest}, {"params": table, "weight_decay": weight_decay}]

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
    if cfg.sparse_embeddings and dist_.enabled and device.type == "cuda":
        raise InvalidInputError("--sparse-embeddings is not supported with DDP on GPUs (NCCL has no sparse all-reduce)")
    release = Release.open(cfg.data)
    ident = release_identity(release)
    if saved_meta is not None and saved_meta["release"]["manifest_sha256"] != ident["manifest_sha256"]:
        raise InvalidInputError(f"--resume: {cfg.data} is not the release the run started on (manifest sha256 differs)")
    if saved_meta is not None and saved_meta.get("world_size", 1) != dist_.world_size:
        raise InvalidInputError(f"--resume: the run used {saved_meta.get('world_size', 1)} process(es); this one has {dist_.world_size}")
    if dist_.world_size > 1 and cfg.batch_size % dist_.world_size:
        raise InvalidInputError(f"--batch-size {cfg.batch_size} must be divisible by the {dist_.world_size} DDP processes")

    # ---- data: vocabularies (hashed from the manifest by default), the rank's chronological range (train_data.py)
    verify_checksums(release)  # the release is exactly its manifest before any row is read (cached per process)
    if saved_meta is not None:
        vocabs = Vocabularies.load(out / VOCAB_NAME)
        if vocabs.fingerprint() != saved_meta["vocab_fingerprint"]:
            raise InvalidInputError(f"--resume: {out / VOCAB_NAME} does not match {CONFIG_NAME}")
    else:
        vocabs = train_vocabularies(cfg, release)
    if cfg.sparse_embeddings is None:  # auto: sparse table gradients with SGD on large tables; NCCL has no sparse all-reduce
        cfg = dataclasses.replace(cfg, sparse_embeddings=sparse_auto(cfg.optimizer, vocabs.sizes(), dist_.enabled and device.type == "cuda"))
    method = cfg.method
    gradient = method in GRADIENT_METHODS
    local_bs = cfg.batch_size // dist_.world_size
    # gradient methods: the rank's chronological range before the validation days; counting methods (DCO): every
    # rank the whole split (nothing to select)
    files = release.data_files(CONFIGS[0], "train")
    v_lo, v_hi, v_days = validation_boundary(files, cfg.validation_days if gradient else 0)
    rows = plan_rows(cfg, release, vocabs, rank=dist_.rank, world_size=dist_.world_size, local_batch=local_bs,
                     whole=not gradient, local_procs=int(os.environ.get("LOCAL_WORLD_SIZE", dist_.world_size)), hi=v_lo)
    start, stop = rows.lo, rows.hi
    rows.to(device)
    resident = rows.on(device)

    # ---- policy, optimizer, RNG
    policy = build_policy(method, vocabs.sizes(), cfg, saved_meta.get("model") if saved_meta else None)
    init = start_heads(policy, release.manifest.stats)  # CTR heads at the base rate (a resume's checkpoint overwrites them)
    meta = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "genco_data_version": __version__,
        "torch_version": torch.__version__,
        "method": method,
        "model": _model_config(method, policy),
        "init": init,
        "n_parameters": n_parameters(policy),
        "train": {**cfg.to_dict(), "resume": False},
        "vocab_fingerprint": vocabs.fingerprint(),
        "vocab_sizes": vocabs.sizes(),
        "vocab": vocabs.describe(),
        "data": describe_rows(rows),
        "protocol": cfg.protocol,
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
        return _fit_counting(cfg, policy, rows, out, dist_, meta, t_start)
    # validation (reference_model.validation): the last train days, scored after every epoch by every rank (same
    # weights, same draws, so every rank takes the same stopping decision without communicating)
    stopper = EarlyStopping(cfg.patience, min_epochs=cfg.min_epochs, min_delta_se=cfg.min_delta_se)
    val_blocks = None
    if v_hi > v_lo:
        stopper.curve = list(((saved_meta or {}).get("validation") or {}).get("curve", []))
        val_blocks = StreamingDataset(files, vocabs, batch_size=VALIDATION_BLOCK, rows=(v_lo, v_hi), verify=False)
        meta["validation"] = {"days": v_days, "rows": [v_lo, v_hi], "metric": VALIDATION_METRIC, **stopper.to_dict()}

    if isinstance(policy, GenCO) and rows.resident is not None:
        check_batch(rows.resident, policy.config)  # index ranges once for the whole shard (not per step)
    policy.to(device)
    params = _param_groups(policy, cfg.weight_decay)
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

        objective = DDP(objective, find_unused_parameters=_has_unused_parameters(objective, rows.probe().to(device), device))

    # ---- the loop: chronological batches of the rank's range (slices of the resident rows, or streamed)
    steps_per_epoch = rows.steps(local_bs)
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

    checked = rows.resident is not None or not isinstance(policy, GenCO)
    while prog.epoch < cfg.epochs and not (val_blocks is not None and stopper.stop):
        for batch in rows.batches(prog.batch, local_bs):
            if not checked:  # streamed: index ranges checked on the first batch (the vocabularies bound them)
                check_batch(batch, policy.config)
                checked = True
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
                if val_blocks is not None:
                    validate_epoch(policy, method, val_blocks, cfg.seed, device, prog, stopper, meta, out, dist_.master, bar)
                save(finished=prog.epoch >= cfg.epochs or (val_blocks is not None and stopper.stop))
                if dist_.master:
                    plot_loss_curve(read_metrics(out / METRICS_NAME), out / CURVE_NAME, f"{method} (seed {cfg.seed})")
                t_log += time.perf_counter() - t0  # samples/s measures training, not writing
                break
            if cfg.save_every and prog.step % cfg.save_every == 0:
                t0 = time.perf_counter()
                save(finished=False)
                t_log += time.perf_counter() - t0
        else:  # the rows ran out before the epoch's last step: the shards changed under the run
            raise InvalidInputError(f"epoch {prog.epoch + 1}: the train rows ended after {prog.batch} of {steps_per_epoch} steps")
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
    if val_blocks is not None:
        summary["validation"] = {k: v for k, v in stopper.to_dict().items() if k != "curve"}
    if dist_.master:
        final = [r for r in read_metrics(out / METRICS_NAME) if "loss" in r]
        summary["final_loss"] = final[-1]["loss"] if final else None
        if prog.step > steps_at_start:  # (a resumed run that was already finished trains nothing)
            _append_metrics(out / METRICS_NAME, {"event": "end", "step": prog.step, "shards": shard_info, "seconds": seconds})
            cfgd = read_run_config(out)
            _write_json(out / CONFIG_NAME, {**cfgd, "shards": shard_info})
    return summary


def _fit_counting(cfg: TrainConfig, policy: Any, rows: TrainRows, out: Path, dist_: _Dist, meta: dict[str, Any], t0: float) -> dict[str, Any]:
    """DCO: one counting pass over the whole train split (every rank counts the same rows; rank 0 writes);
    uniform: nothing to learn. Writes the checkpoint (no trainer file: nothing to resume)."""
    if policy is not None:
        policy.fit([rows.resident] if rows.resident is not None else rows.batches(0, rows.stream.batch_size))
        meta["n_parameters"] = n_parameters(policy)
    prog = _Progress(step=1, epoch=cfg.epochs, batch=0, samples=rows.rows)
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
    ref, paper = PROTOCOLS["reference"], PROTOCOLS["paper"]
    p.add_argument("--paper-defaults", action="store_true", help=f"the paper's literal settings: {paper['optimizer'].upper()}, lr "
                   f"{paper['lr']:g}, {paper['epochs']} epoch, every train day trained on, no validation (default: the reference "
                   f"protocol behind the leaderboard: {ref['optimizer'].capitalize()}, lr {ref['lr']:g}, up to {ref['epochs']} "
                   f"epochs with early stopping, patience {ref['patience']}, on the last {ref['validation_days']} train days)")
    p.add_argument("--epochs", type=int, default=None, help="at most this many passes over the train rows (default: the protocol's, "
                   f"{ref['epochs']} / paper {paper['epochs']}; with --resume: the run's, or more to extend it)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"global batch size (default {d.batch_size}, paper)")
    p.add_argument("--optimizer", default=None, help=f"sgd or adam (default: the protocol's, {ref['optimizer']} / paper {paper['optimizer']})")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default: the protocol's, {ref['lr']:g} / paper {paper['lr']:g})")
    p.add_argument("--validation-days", type=int, default=None, help="the last N train days are validation rows, never trained on: "
                   f"early stopping and model selection on their calibrated sCTR (default {ref['validation_days']} / paper 0 = none)")
    p.add_argument("--patience", type=int, default=None, help="stop after this many epochs without a better validation score, "
                   f"0 = never early (default {ref['patience']})")
    p.add_argument("--min-epochs", type=int, default=None, help="epochs before this one are validated but neither selected nor "
                   f"counted for patience (default {ref['min_epochs']} / paper {paper['min_epochs']})")
    p.add_argument("--min-delta-se", type=float, default=None, help="a later epoch is selected only when its validation score "
                   f"beats the best by this many standard errors of the difference (default {ref['min_delta_se']:g}; 0 = the plain maximum)")
    p.add_argument("--emb-dim", type=int, default=None, help="id-embedding dim of the GenCO methods (default: the protocol's, "
                   f"{ref['emb_dim']} / paper {paper['emb_dim']}; benchmarks/README.md says why)")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 on the id-embedding table only (ours; default "
                   f"{ref['weight_decay']:g} / paper 0)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward pass")
    p.add_argument("--threads", type=int, default=None, help=f"CPU intra-op threads per process (default {d.threads})")
    p.add_argument("--max-rows", type=int, default=None, help="train on the most recent N rows only")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--padded", action="store_true", help="GenCO's padded reference path instead of the packed one")
    emb = p.add_mutually_exclusive_group()
    emb.add_argument("--sparse-embeddings", dest="sparse_embeddings", action="store_const", const=True, default=None,
                     help="sparse gradient of the id table (default with SGD above 2**19 table rows; not with DDP on GPUs)")
    emb.add_argument("--dense-embeddings", dest="sparse_embeddings", action="store_const", const=False,
                     help="dense gradient of the id table (default with Adam, small tables and DDP on GPUs)")
    p.add_argument("--vocab", default=d.vocab, help="hashed (default: the paper's hash embeddings, sized by the manifest's distinct-id "
                   "counts, no pass over the data) or exact (one vocabulary pass over the train rows)")
    p.add_argument("--hash-size-factor", type=float, default=d.hash_size_factor,
                   help=f"hashed tables: buckets per distinct id in the manifest (default {d.hash_size_factor}, the paper's sizing)")
    p.add_argument("--stream", default=None, help="auto (default): stream batches from the shards when the padded split exceeds "
                   "--memory-budget-gb, else pad it once; always; never")
    p.add_argument("--memory-budget-gb", type=float, default=None, help="memory the resident path may use (default: half of the "
                   "available memory, shared by this machine's processes)")
    add_genco_set_argument(p)
    p.add_argument("--log-every", type=int, default=None, help=f"steps between metrics lines (default {d.log_every})")
    p.add_argument("--save-every", type=int, default=None, help=f"steps between checkpoints, 0 = epoch ends only (default {d.save_every})")


def add_genco_set_argument(p: argparse.ArgumentParser) -> None:
    """``--genco-set NAME=VALUE`` (repeatable): GenCOConfig overrides (genco train and genco reproduce)."""
    p.add_argument("--genco-set", action="append", default=[], metavar="NAME=VALUE",
                   help="GenCO config override, repeatable, e.g. --genco-set off_policy_clip=10 --genco-set logged_baseline=value "
                        "--genco-set emb_init_std=0.01 --genco-set pool_context=false (see reference_model/config.py: GenCOConfig)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from parsed options; options left out stay None under --resume (the run's values)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    opt = {k: getattr(args, k) for k in RESUME_OVERRIDABLE if k != "quiet"}
    if not args.resume:
        opt = {k: defaults[k] if v is None else v for k, v in opt.items()}
    return TrainConfig(
        data=args.data, out=args.out, method=args.method, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        protocol="paper" if args.paper_defaults else "reference", validation_days=args.validation_days, patience=args.patience,
        weight_decay=args.weight_decay, min_epochs=args.min_epochs, min_delta_se=args.min_delta_se, emb_dim=args.emb_dim,
        seed=args.seed, bf16=args.bf16, max_rows=args.max_rows, resume=args.resume, packed=not args.padded,
        sparse_embeddings=args.sparse_embeddings, genco_options=GenCOConfig.parse_options(args.genco_set),
        vocab=args.vocab, hash_size_factor=args.hash_size_factor,
        quiet=getattr(args, "quiet", False), **opt,
    )


def format_summary(s: dict[str, Any]) -> str:
    loss = s.get("final_loss")
    v = s.get("validation")
    sel = ""
    if v and v.get("best_epoch") is not None:
        sel = (f"; selected epoch {v['best_epoch']} (validation mean component lift {v['best_score']:+.4f}"
               + (", stopped early" if v.get("stopped_early") else "") + ")")
    return (f"trained {s['method']} in {s['out']}: {s['steps']:,} steps, {s['epochs']} epoch(s), {s['samples']:,} samples, "
            f"{s['samples_per_s']:,.0f} samples/s on {s['world_size']} process(es)" + (f", final loss {loss:.4f}" if loss is not None else "")
            + sel)


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
