"""Disk space: refuse at once a build that cannot fit, and say so in one line when the disk fills anyway.

A build writes beside ``out`` (its temporary folder, :mod:`genco_data.build.builder`): the spill of every good
row, uncompressed Arrow IPC unless ``BuildConfig.spill_compression`` says otherwise, plus each row's id record
(:mod:`genco_data.build.ingest`), and the release's shards while the spill is still there. So the peak is

    spill + release ≈ rows × (Arrow bytes per row + ID_RECORD_BYTES) + RELEASE_PER_INPUT_BYTE × Parquet input bytes

(1 M simulator rows: 342 + 44 B a row and 1.5 × 85 MB of input → 516 MB estimated, 515 MB measured at the peak).

Decisions:

* **The refusal is a lower bound.** Before anything is written, the build is refused when the free space beside
  ``out`` is less than the spill alone of the Parquet inputs' rows that can be good (``1 - max_reject_rate``),
  measured on the first 8,192 rows of the first Parquet input as they would be spilled (checked and cast to the
  release types; one read for any number of files) — a build that would certainly fill the disk. Text
  inputs (JSONL, CSV) and a compressed spill have no size known before they are read: they count nothing, and
  are left to the second rule.
* **A full disk mid-build is one line.** ``ENOSPC`` / ``EDQUOT`` from any process of the build becomes a
  :class:`~genco_data.errors.BuildError` naming the folder, the estimate and the space free at the start (the
  temporary folder is removed first, as on any failure), where it was an ``OSError`` traceback from a worker.
"""
from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.build.ingest import check_batch
from genco_data.build.plan import BuildConfig, _Plan
from genco_data.errors import BuildError, GencoError

ID_RECORD_BYTES = 44  # the id spill per row: hash 8 + row 8 + a 16-char id and its offset 20 + piece/row 8
RELEASE_PER_INPUT_BYTE = 1.5  # the release's shards per byte of Parquet input (zstd + CDC + page index; measured 1.53)
SIZE_PROBE_ROWS = 8192  # rows read to measure the Arrow bytes of a row
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class SpaceNeed:
    """What a build will write beside ``out``: ``spill`` is a lower bound (0 where unknown), ``release`` a guess."""

    spill: int
    release: int
    free: int  # at the start, on the file system of ``out``'s parent

    @property
    def peak(self) -> int:
        return self.spill + self.release


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def space_need(plan: _Plan, cfg: BuildConfig) -> SpaceNeed:
    rows = release = 0
    per_row: float | None = None
    for inp in plan.inputs:
        if inp.fmt != "parquet":
            continue
        try:
            pf = pq.ParquetFile(inp.path)
            rows += pf.metadata.num_rows
            release += int(RELEASE_PER_INPUT_BYTE * inp.path.stat().st_size)
            if per_row is None and pf.metadata.num_rows:
                # the first batch of the first input stands for every row: one read, whatever the number of files
                first = next(pf.iter_batches(batch_size=SIZE_PROBE_ROWS))
                _, good = check_batch(first, inp.name, plan.test_start_day)  # as spilled: release types, good rows
                per_row = good.nbytes / max(1, first.num_rows)
        except (GencoError, pa.ArrowException, OSError, StopIteration):  # the first pass reports it, with its row
            continue
    spill = 0
    if per_row is not None and cfg.spill_compression == "none":  # a compressed spill's size is not known before
        spill = int((per_row + ID_RECORD_BYTES) * rows * (1.0 - cfg.max_reject_rate))
    return SpaceNeed(spill=spill, release=release, free=shutil.disk_usage(cfg.out.parent).free)


def check_space(need: SpaceNeed, out: Path) -> None:
    if need.spill > need.free:
        raise BuildError(
            f"{out.parent}: {_gb(need.free)} free, but the build's spill alone needs at least {_gb(need.spill)} there "
            f"(about {_gb(need.peak)} at its peak, with the release); free space or choose an --out on a bigger disk")


def out_of_space(exc: BaseException) -> bool:
    """``exc``, or an exception it was raised from, is a full disk or quota (from any process of the build)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def out_of_space_error(need: SpaceNeed, out: Path) -> BuildError:
    size = f"the build needs about {_gb(need.peak)} there at its peak; " if need.spill else ""
    return BuildError(
        f"{out.parent}: no space left on the device while building {out.name} ({size}{_gb(need.free)} was free at "
        "the start); the temporary folder was removed — free space or choose an --out on a bigger disk")


__all__ = ["ID_RECORD_BYTES", "RELEASE_PER_INPUT_BYTE", "SIZE_PROBE_ROWS", "SpaceNeed", "check_space", "out_of_space", "out_of_space_error",
           "space_need"]
