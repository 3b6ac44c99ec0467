"""The passes of a build, each a set of independent jobs run by an engine, their results used in job order.

1. **Ingest** (:func:`~genco_data.build.ingest.run_task` per task): read, check, spill good rows by
   (split, day), spill the ids hash-partitioned; rejected rows are noted.
2. **Uniqueness** (:func:`~genco_data.build.unique.partition_duplicates` per partition): the exact
   ``duplicate_id`` rule; the duplicates join the rejects.
3. **Counts**: ``rows_in = written + rejected``; refused on too many rejects or an empty split.
4. **Layout** (here, from the 4-byte row sizes only): each split's pieces in final order, cut into shards.
5. **Encode** (:func:`~genco_data.build.encode.encode_shard` per shard): the Parquet files, the train
   split's statistics, the sample candidates — merged here.

Memory of this process: the plan (a few numbers per piece and shard), the duplicates and rejects noted
(8–10 bytes each, at most ``max_reject_rate`` of the rows), one sample per split and the merged sketches;
each job holds one batch, one partition or one row group.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from genco_data.errors import BuildError
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.release import DATA_DIR, sha256_file
from genco_data.build.encode import encode_shard
from genco_data.build.ingest import IngestContext, IngestResult, IngestTask, Piece, run_task
from genco_data.build.layout import ShardSpec, plan_split
from genco_data.build.plan import BuildConfig, _Plan, auto_rows_per_shard
from genco_data.build.rejects import RejectLog
from genco_data.build.stats import StatsAccumulator
from genco_data.build.unique import PIECE_BITS, SEQ_BITS, Duplicates, partition_duplicates
from genco_data.build.validate import CODE
from genco_data.build.writer import SampleMerger

_DUPLICATE = CODE["duplicate_id:impression_id"]
#: Rows per id partition aimed at (the uniqueness check holds one partition in memory: ~40 bytes a row).
PARTITION_ROWS = 1 << 19
MAX_PARTITIONS = 1 << 14


@dataclass
class Passes:
    rows_in: int
    rejects: RejectLog
    split_rows: dict[str, int]
    shards: dict[str, list[tuple[Path, int]]]
    samplers: dict[str, SampleMerger]
    stats: dict[str, Any]
    reordered: bool  # rows were moved into day order (the input was not chronological)
    digests: dict[str, str]  # sha256 of every shard and input file, by path, computed by the jobs


def n_partitions(rows: int) -> int:
    """Id partitions for ~``rows`` rows: a power of two, ~``PARTITION_ROWS`` rows each."""
    p = 1
    while p * PARTITION_ROWS < rows and p < MAX_PARTITIONS:
        p *= 2
    return p


def run_passes(tmp: Path, spill: Path, plan: _Plan, tasks: list[IngestTask], cfg: BuildConfig, engine, bar,
               rows_estimate: int) -> Passes:
    spill.mkdir(parents=True, exist_ok=True)
    ctx = IngestContext(cfg, plan.test_start_day, str(spill), n_partitions(rows_estimate))
    rejects = RejectLog()
    results: list[IngestResult] = []
    rows_in = 0
    dynamic = hasattr(engine, "ingest")  # Ray Data reads and checks; its tasks are made as blocks arrive
    pairs = engine.ingest(plan, ctx) if dynamic else zip(tasks, engine.map(run_task, tasks, ctx))
    if dynamic:
        tasks = []
    for task, r in pairs:
        if dynamic:
            tasks.append(task)
        results.append(r)
        rejects.add(task.input, r.reject_rows, r.reject_codes)
        rows_in += r.rows_in
        bar.update(r.rows_in)
    # 2. uniqueness, exact, per partition
    sources: dict[int, list[tuple[str, list[int]]]] = {}
    for r in results:
        for part, indices in r.partitions.items():
            sources.setdefault(part, []).append((r.ids_file, indices, r.task))
    dups = Duplicates.concat(list(engine.map(partition_duplicates, [sources[p] for p in sorted(sources)])))
    if len(dups):
        task_of = dups.seq >> np.int64(SEQ_BITS)
        local = dups.seq & np.int64((1 << SEQ_BITS) - 1)
        for t in np.unique(task_of).tolist():
            sel = task_of == t
            rejects.add(tasks[t].input, tasks[t].row0 + local[sel], np.full(int(sel.sum()), _DUPLICATE, dtype=np.int16))
    drops: dict[int, np.ndarray] = {}
    for piece in np.unique(dups.piece).tolist():
        drops[piece] = np.sort(dups.prow[dups.piece == piece])
    # 3. counts
    sizes_of = {r.task: r.sizes_file for r in results}
    by_split: dict[str, list[Piece]] = {s: [] for s in SPLITS}
    for r in results:
        for p in r.pieces:
            by_split[SPLITS[p.split]].append(p)
    split_rows = {s: sum(p.rows for p in by_split[s]) - sum(len(drops.get(p.id, ())) for p in by_split[s]) for s in SPLITS}
    check_counts(rows_in, rejects, split_rows, plan, cfg)
    # 4. layout
    reordered = False
    specs: list[ShardSpec] = []
    none = np.zeros(0, dtype=np.int64)
    for s in SPLITS:
        pieces = by_split[s]
        order = sorted(range(len(pieces)), key=lambda i: (pieces[i].day, pieces[i].id))
        reordered |= order != list(range(len(pieces)))
        per_shard = cfg.rows_per_shard or auto_rows_per_shard(split_rows[s])
        layout_cfg = cfg if cfg.rows_per_shard else _with_rows_per_shard(cfg, per_shard)
        specs += plan_split(s, [(pieces[i], sizes_of[pieces[i].id >> PIECE_BITS], drops.get(pieces[i].id, none)) for i in order], layout_cfg)
    # 5. encode
    folder = str(tmp / DATA_DIR / CONFIGS[0])
    samplers = {s: SampleMerger(cfg.sample_rows) for s in SPLITS}
    stats = StatsAccumulator()
    shards: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    digests: dict[str, str] = {}
    for spec, res in zip(specs, engine.map(_encode, specs, folder, cfg.sample_rows, cfg.seed)):
        shards[spec.split].append((Path(folder) / res.name, res.rows))
        digests[str(Path(folder) / res.name)] = res.sha256
        samplers[spec.split].absorb(res.sample.keys, res.sample.positions, res.sample.sources, res.sample.src, res.sample.row)
        if res.stats is not None:
            stats.merge(res.stats)
    inputs = [str(i.path) for i in plan.inputs]
    digests.update(zip(inputs, engine.map(sha256_file, inputs)))  # the provenance's checksums, in parallel too
    return Passes(rows_in, rejects, split_rows, shards, samplers, stats.result(), reordered, digests)


def _encode(spec: ShardSpec, folder: str, sample_rows: int, seed: int):
    return encode_shard(spec, folder, sample_rows, seed, with_stats=spec.split == "train")


def _with_rows_per_shard(cfg: BuildConfig, rows: int) -> BuildConfig:
    return replace(cfg, rows_per_shard=rows)


def check_counts(rows_in: int, rejects: RejectLog, split_rows: dict[str, int], plan: _Plan, cfg: BuildConfig) -> None:
    """Refuse: no input rows; a reject rate above the maximum; an empty split (a release has both)."""
    if rows_in == 0:
        raise BuildError(f"no input rows in {', '.join(str(s) for s in cfg.sources)}")
    n_rej = rejects.total
    rate = n_rej / rows_in
    if rate > cfg.max_reject_rate:
        top = ", ".join(f"{k} {v:,}" for k, v in rejects.reasons().most_common(3))
        raise BuildError(
            f"{n_rej:,} of {rows_in:,} rows rejected ({100 * rate:.2f} % > --max-reject-rate "
            f"{100 * cfg.max_reject_rate:g} %); most common: {top}"
        )
    for split, where in (("train", "before"), ("test", "on or after")):
        if split_rows[split] == 0:
            raise BuildError(
                f"no {split} rows: no valid row is {where} test_start_day {plan.test_start_day.isoformat()} "
                "(a release needs both splits; check --test-start-day)"
            )


__all__ = ["Passes", "run_passes", "check_counts", "n_partitions"]
