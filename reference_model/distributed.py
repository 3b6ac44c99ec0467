"""DDP for the training script: the process group from torchrun's environment (``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; gloo on CPU, nccl on GPU), the device of a rank, each rank's contiguous chronological shard
and seed, whether DDP must look for unused parameters, and every rank's RNG state gathered for a checkpoint.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import torch

from genco_data.errors import InvalidInputError
from genco_data.load import Batch
from reference_model.policies import Objective
from reference_model.train_config import TrainConfig

__all__ = ["shard_bounds"]


def shard_bounds(n_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous chronological shard ``[start, stop)`` of ``rank``: ``n_rows // world_size`` rows each."""
    per = n_rows // world_size
    return rank * per, (rank + 1) * per


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
