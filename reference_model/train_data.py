"""The rows a training run steps on, and the vocabularies it embeds them with.

**Vocabularies** (``--vocab``). ``hashed`` (default, the paper's "hash embedding ... whose sparse hash size is
determined by the number of its distinct ids present in the training data"): every id table hashed with the fixed
salted splitmix64 hash of :mod:`genco_data.load.hashing` into ``ceil(--hash-size-factor × distinct ids)`` buckets,
the counts read from the release manifest's ``stats`` (the documented default size where a count is absent;
``config.json`` says which); nothing is read before the first batch except the ``category`` column (one
dictionary-encoded string column, so categories keep names for the MIL-weight figure). ``exact``: one pass over the
train rows (the old behaviour).

**Rows** (``--stream``). Gradient methods step on the rank's contiguous chronological range of the train split —
``[lo + r·(n // R), lo + (r+1)·(n // R))`` of the ``n`` most recent rows before the validation days
(``--max-rows``, else all; ``reference_model.validation``), R processes — in order (the paper trains in log order),
each rank reading only the row groups of its own range. Every batch is full (drop-last): ``n`` is cut to a
multiple of the global batch by leaving out the OLDEST rows (fewer than one batch), so the most recent rows — the
closest to the test days — are all trained on and no short last batch (one row, say) reaches BatchNorm in train
mode. A split smaller than one batch is one batch per rank (at least 2 rows each). Two ways:

- *resident*: the range is padded once into one :class:`genco_data.load.Batch` (moved to the GPU when it fits in
  half of its free memory) and batches are slices of it — the fast path for data that fits;
- *streamed*: batches are padded on the fly from the release's shards by a
  :class:`genco_data.load.StreamingDataset` (memory: one row group + one padded block, whatever the rows).

``auto`` (default) streams when the estimated resident size — padded bytes per row (``padded_row_bytes``) plus the
Arrow bytes decoded per row, times the rank's rows — exceeds ``--memory-budget-gb`` (default: half of the memory
available when the run starts, divided among the processes of this machine). Counting methods (DCO) read the whole
split on every rank, one block at a time.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from genco_data.errors import InvalidInputError
from genco_data.format.components import CONFIGS, N_COMPONENTS, PAD_TO
from genco_data.load import Batch, StreamingDataset, Vocabularies
from genco_data.load.padding import SEGMENTS_PAD_TO
from genco_data.load.vocab import category_values
from genco_data.release import Release
from reference_model.data import read_split
from reference_model.train_config import TrainConfig

__all__ = ["padded_row_bytes", "train_vocabularies", "TrainRows", "plan_rows", "describe_rows"]

#: Rows padded per block when a resident range is materialized.
_RESIDENT_BLOCK = 65536


def padded_row_bytes(max_segments: int = SEGMENTS_PAD_TO) -> int:
    """Bytes of one padded row of a :class:`Batch` (the layout of :mod:`genco_data.load.padding`)."""
    C, P, S = N_COMPONENTS, PAD_TO, max_segments
    return C * P * (8 + 1 + 2) + C * (8 + 8 + 4) + 4 + 6 * 8 + S * (8 + 1)


def train_vocabularies(cfg: TrainConfig, release: Release) -> Vocabularies:
    """The vocabularies of a new run (module docstring)."""
    files = release.data_files(CONFIGS[0], "train")
    if cfg.vocab == "exact":
        if cfg.max_rows is not None:
            return Vocabularies.build(read_split(release, "train", cfg.max_rows))
        return Vocabularies.build(files, verify=False)
    return Vocabularies.for_release(release, factor=cfg.hash_size_factor, categories=category_values(files))


def _memory_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


@dataclass
class TrainRows:
    """The train rows of one process: ``lo``..``hi`` of the chronological split, resident or streamed."""

    mode: str  # "resident" | "streamed"
    lo: int  # first global row (chronological position in the split)
    hi: int  # one past the last
    stream: StreamingDataset
    resident: Batch | None = None
    estimate_bytes: int = 0
    budget_bytes: int = 0

    @property
    def rows(self) -> int:
        return self.hi - self.lo

    def steps(self, local_batch: int) -> int:
        return max(1, math.ceil(self.rows / local_batch))

    def to(self, device: torch.device) -> None:
        """Move a resident range to ``device`` when it fits in half of the device's free memory."""
        if self.resident is None or device.type != "cuda":
            return
        free, _ = torch.cuda.mem_get_info(device)
        need = sum(t.numel() * t.element_size() for t in self.resident.tensors().values())
        if need < 0.5 * free:
            self.resident = self.resident.to(device)

    def on(self, device: torch.device) -> bool:
        """Whether batches already live on ``device`` (no per-step copy)."""
        return self.resident is not None and self.resident.candidates.device.type == device.type

    def probe(self, n: int = 2) -> Batch:
        """The first ``n`` rows (for DDP's unused-parameter probe)."""
        if self.resident is not None:
            return self.resident[:n]
        return next(iter(self.stream))[:n]

    def batches(self, first_batch: int, local_batch: int) -> Iterator[Batch]:
        """The epoch's batches from batch ``first_batch`` on (a resumed epoch skips the ones already done)."""
        if self.resident is not None:
            n = len(self.resident)
            for s in range(first_batch * local_batch, n, local_batch):
                yield self.resident[s : min(n, s + local_batch)]
            return
        if self.stream.batch_size != local_batch:
            raise ValueError(f"stream batch size {self.stream.batch_size} != {local_batch}")
        self.stream.set_start_row(first_batch * local_batch)
        try:
            yield from self.stream
        finally:
            self.stream.set_start_row(0)


def plan_rows(cfg: TrainConfig, release: Release, vocabs: Vocabularies, *, rank: int, world_size: int, local_batch: int,
              whole: bool, local_procs: int = 1, hi: int | None = None) -> TrainRows:
    """The rows of this process (module docstring). ``whole``: every rank reads the whole split (counting methods;
    no drop-last). ``local_procs``: processes of this run on this machine (they share its memory). ``hi``: rows
    from this position on are not trained on (the validation days); default: the split's end."""
    files = release.data_files(CONFIGS[0], "train")
    if not files:
        raise InvalidInputError(f"{release.root}: no train shards in the manifest")
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files) if hi is None else hi
    lo_all = max(0, total - cfg.max_rows) if cfg.max_rows is not None else 0
    n = total - lo_all
    R, r = (1, 0) if whole else (world_size, rank)
    if not whole:  # drop-last: full batches only; the oldest rows make way (module docstring)
        global_batch = local_batch * R
        if n >= global_batch:
            lo_all = total - (n // global_batch) * global_batch
            n = total - lo_all
        elif n // R < 2:
            raise InvalidInputError(f"{cfg.data}: {n} train rows for {R} process(es); BatchNorm needs at least 2 rows per batch")
    if n < R:
        raise InvalidInputError(f"{cfg.data}: {n} train rows, fewer than {R} processes")
    lo, hi = lo_all + r * (n // R), lo_all + (r + 1) * (n // R)
    stream = StreamingDataset(files, vocabs, batch_size=local_batch, rows=(lo_all, total), equal_rows=True,
                              rank=r, world_size=R, verify=False)
    arrow_bytes = sum(pq.ParquetFile(f).metadata.row_group(g).total_byte_size for f in files
                      for g in range(pq.ParquetFile(f).metadata.num_row_groups)) / max(total, 1)
    estimate = int((hi - lo) * (padded_row_bytes() + arrow_bytes))
    budget = int(cfg.memory_budget_gb * 2**30) if cfg.memory_budget_gb is not None else _memory_available() // (2 * max(1, local_procs))
    mode = {"always": "streamed", "never": "resident"}.get(cfg.stream) or ("streamed" if estimate > budget else "resident")
    rows = TrainRows(mode, lo, hi, stream, estimate_bytes=estimate, budget_bytes=budget)
    if mode == "resident":
        block = StreamingDataset(files, vocabs, batch_size=_RESIDENT_BLOCK, rows=(lo_all, total), equal_rows=True,
                                 rank=r, world_size=R, verify=False)
        rows.resident = _materialize(block, hi - lo)
    return rows


def _materialize(stream: StreamingDataset, n: int) -> Batch:
    """All ``n`` rows of ``stream`` in one Batch, each block copied into tensors allocated once (peak memory: the
    result plus one block, not twice the result)."""
    out: dict[str, torch.Tensor] = {}
    ids = []
    pos = 0
    for b in stream:
        if not out:
            out = {k: torch.empty((n, *t.shape[1:]), dtype=t.dtype) for k, t in b.tensors().items()}
        for k, t in b.tensors().items():
            out[k][pos : pos + len(b)] = t
        ids.append(b.impression_id)
        pos += len(b)
    if pos != n:
        raise InvalidInputError(f"read {pos:,} train rows, expected {n:,} (the shards changed while reading?)")
    return Batch(impression_id=pa.concat_arrays(ids), **out)


def describe_rows(rows: TrainRows) -> dict[str, Any]:
    """What config.json records about the data path."""
    return {"mode": rows.mode, "rows": [rows.lo, rows.hi], "estimated_resident_bytes": rows.estimate_bytes,
            "memory_budget_bytes": rows.budget_bytes, "drop_last": True}

