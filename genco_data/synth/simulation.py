r""":func:`simulate`: the logged rows as impressions-schema Arrow tables (:func:`rows_table`), streamed into
raw Parquet parts next to the ground truth (``out/raw/``, ``out/world/``), with a progress bar.

Streaming. Rows are produced in batches of ``batch_rows`` (one Parquet part each; train rows in
chronological order, then test rows), each from its own ``SeedSequence(seed, spawn_key=(2, batch))``
stream, so the bytes depend only on the config and memory stays bounded by the batch.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import (
    COMPONENTS,
    N_COMPONENTS,
    PAD_TO,
    PRODUCTION,
    UNIFORM,
    candidates_col,
    exposed_col,
    propensity_col,
)
from genco_data.errors import InvalidInputError
from genco_data.release import WORLD_DIR
from genco_data.synth.catalog import Catalog, build
from genco_data.synth.config import SynthConfig
from genco_data.synth.draw import NAMESPACES, _STREAM_ROWS, hashed_ids, id_salt
from genco_data.synth.logging import DayPools, Rows, calibrate_base, day_pools, draw_rows
from genco_data.synth.storage import WORLD_JSON, WORLD_NPZ
from genco_data.synth.world import World, sigmoid

RAW_DIR = "raw"
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


# ---------------------------------------------------------------------------------------------- arrow
def _strings(values: np.ndarray) -> pa.Array:
    """Fixed-width byte rows [R, width] (uint8) → pa.string array, without per-row Python."""
    R, width = values.shape
    offsets = np.arange(0, (R + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(R, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(values)))


#: The two hex digits of each byte value, as one uint16 (so one 1-D gather formats a byte).
_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)


def _hex_ids(ids: np.ndarray) -> pa.Array:
    """16 lowercase hex digits per non-negative int64 id (big-endian byte order)."""
    octets = ids.astype(">u8").view(np.uint8)
    return _strings(_HEX_PAIRS.take(octets).view(np.uint8).reshape(len(ids), 16))


def rows_table(world: World, cat: Catalog, pools: DayPools, rows: Rows, first_day: int, click: np.ndarray, row0: int, policy: str, salt: int) -> pa.Table:
    """The impressions-schema table of ``rows`` (global row numbers ``row0 …``)."""
    R = len(rows.ad)
    a = world.arrays
    schema = impressions_schema()
    ad = pa.array(rows.ad)
    has_q = rows.query >= 0
    policy_bytes = np.frombuffer(policy.encode(), dtype=np.uint8)
    cols: dict[str, pa.Array] = {
        "impression_id": _hex_ids(hashed_ids(NAMESPACES["impression"], np.arange(row0, row0 + R), salt)),
        "day": pa.array(np.full(R, first_day + rows.day, dtype=np.int32), type=pa.date32()),
        "logging_policy": _strings(np.broadcast_to(policy_bytes, (R, len(policy_bytes)))),
        "user_id": pa.array(a["user_id"][rows.user]),
        "user_age": pa.array(a["user_age"][rows.user], mask=~cat.age_logged[rows.user]),
        "user_gender": pa.array(a["user_gender"][rows.user], mask=~cat.gender_logged[rows.user]),
        "ad_id": pa.array(a["ad_id"][rows.ad]),
        "category": cat.category_names.take(pa.array(a["ad_category"][rows.ad])),
        "query_id": pa.array(a["query_id"][rows.query], mask=~has_q),  # index -1 is masked anyway
        # cat.segments[q] = the segments of query q; its last entry is the empty list (index -1 = no query)
        "query_segments": cat.segments.take(pa.array(np.where(has_q, rows.query, len(cat.segments) - 1))),
        "click": pa.array(click.astype(np.int8)),
    }
    for j, comp in enumerate(COMPONENTS):
        empty = rows.shown[:, j] < 0
        cols[candidates_col(comp)] = pools.lists[j].take(ad)
        cols[exposed_col(comp)] = pa.array(rows.shown[:, j].astype(np.int16), mask=empty)
        cols[propensity_col(comp)] = pa.array(rows.propensity[:, j].astype(np.float32), mask=empty)
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


# ---------------------------------------------------------------------------------------------- simulate
def simulate(cfg: SynthConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """Write ``out/raw/part-NNNNN.parquet`` (train rows chronological, then test rows) and ``out/world/``.

    Part ``b`` holds rows ``[b·batch_rows, (b+1)·batch_rows)`` of its split (train parts first); row ``i`` of
    a split of ``N`` rows over ``D`` days is on day ``i·D // N``. A previous simulation in ``out`` is replaced
    (only its own files: ``raw/part-*.parquet`` and ``world/``'s two files); ``world/world.json`` is
    written last, so a folder without it is an interrupted run. Returns a summary: ``train_rows``,
    ``test_rows``, ``test_start_day`` (ISO), ``seed``, ``out``, realized CTRs, the intercept ``base`` and
    per-row statistics of the train rows (share of rows with the component, mean pool length over them, share of
    pools over 15; the per-ad Table 1 is :func:`genco_data.synth.table1.table1` of the parts).
    """
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"simulate: expected a SynthConfig, got {type(cfg).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out}: exists and is not a folder")
    world, cat = build(cfg)
    world = world._with_base(calibrate_base(world, cat, cfg))
    _clear_previous(out)
    raw = out / RAW_DIR
    raw.mkdir(parents=True, exist_ok=True)
    salt = id_salt(cfg.seed)
    first_day = cfg.start_day.toordinal() - _EPOCH_ORDINAL
    plan = [(PRODUCTION, s) for s in range(0, cfg.train_rows, cfg.batch_rows)]
    plan += [(UNIFORM, s) for s in range(0, cfg.test_rows, cfg.batch_rows)]
    clicks = {PRODUCTION: 0, UNIFORM: 0}
    present, candidates, over_pad = (np.zeros(N_COMPONENTS, dtype=np.int64) for _ in range(3))
    cache: dict[int, DayPools] = {}
    bar = _progress(cfg.total_rows, progress)
    # Parquet encoding releases the GIL: part b is written by one background thread while part b + 1 is
    # generated (at most one part waits, so memory stays ~2 batches).
    writer = ThreadPoolExecutor(max_workers=1)
    pending: Future | None = None
    try:
        for b, (policy, s) in enumerate(plan):
            rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_STREAM_ROWS, b)))
            total, days, offset = (cfg.train_rows, cfg.train_days, 0) if policy == PRODUCTION else (cfg.test_rows, cfg.test_days, cfg.train_days)
            e = min(total, s + cfg.batch_rows)
            tables = []
            for d, lo, hi in _day_slices(s, e, total, days):  # the batch's rows, one day at a time
                day = offset + d
                if day not in cache:
                    cache = {day: day_pools(world, cat, day)}  # days only move forward
                rows = draw_rows(world, cat, cfg, cache[day], rng, hi - lo, uniform=policy == UNIFORM)
                click = rng.random(hi - lo) < sigmoid(world.base + rows.logit)
                row0 = lo if policy == PRODUCTION else cfg.train_rows + lo
                tables.append(rows_table(world, cat, cache[day], rows, first_day, click, row0, policy, salt))
                clicks[policy] += int(click.sum())
                if policy == PRODUCTION:
                    present += (rows.n > 0).sum(0)
                    candidates += rows.n.sum(0)
                    over_pad += (rows.n > PAD_TO).sum(0)
            if pending is not None:
                bar.update(pending.result())
            pending = writer.submit(_write_part, pa.concat_tables(tables), raw / f"part-{b:05d}.parquet", e - s)
        if pending is not None:
            bar.update(pending.result())
    finally:
        writer.shutdown(wait=True)
        bar.close()
    stats = {
        "train_ctr": clicks[PRODUCTION] / max(cfg.train_rows, 1),
        "test_ctr": clicks[UNIFORM] / max(cfg.test_rows, 1),
        "coverage": {c: float(present[j] / max(cfg.train_rows, 1)) for j, c in enumerate(COMPONENTS)},
        "avg_candidates": {c: float(candidates[j] / max(present[j], 1)) for j, c in enumerate(COMPONENTS)},
        "share_over_pad": {c: float(over_pad[j] / max(present[j], 1)) for j, c in enumerate(COMPONENTS)},
    }
    world.params["stats"] = stats
    world.save(out / WORLD_DIR)
    return {
        "train_rows": cfg.train_rows,
        "test_rows": cfg.test_rows,
        "test_start_day": cfg.test_start_day.isoformat(),
        "start_day": cfg.start_day.isoformat(),
        "seed": cfg.seed,
        "out": str(out),
        "raw_files": len(plan),
        "base": world.base,
        **stats,
    }


def _day_slices(start: int, stop: int, total: int, days: int) -> list[tuple[int, int, int]]:
    """``(day, lo, hi)``: the rows ``[lo, hi)`` of ``[start, stop)`` on each day, row ``i`` of ``total`` being
    on day ``i·days // total`` (so day ``d`` holds rows ``ceil(d·total/days) … ceil((d+1)·total/days) - 1``)."""
    out = []
    for d in range(start * days // total, (stop - 1) * days // total + 1):
        lo, hi = max(start, -(-d * total // days)), min(stop, -(-(d + 1) * total // days))
        if hi > lo:
            out.append((d, lo, hi))
    return out


def _write_part(table: pa.Table, path: Path, rows: int) -> int:
    """Write one part (in the writer thread); returns its rows for the main thread's progress bar."""
    pq.write_table(table, path, compression="zstd")
    return rows


def _clear_previous(out: Path) -> None:
    world_dir = out / WORLD_DIR
    for name in (WORLD_JSON, WORLD_JSON + ".tmp", WORLD_NPZ, WORLD_NPZ + ".tmp"):  # world.json first
        (world_dir / name).unlink(missing_ok=True)
    raw = out / RAW_DIR
    if raw.is_dir():
        for p in sorted(raw.glob("part-*.parquet")):
            p.unlink()


def _progress(total: int, on: bool) -> Any:
    from tqdm.auto import tqdm

    # Only the main thread touches the bar (a bar updated from the writer thread and closed by the main one could be
    # drawn twice), and a finished bar is cleared (leave=False, as the build's): the summary line replaces it.
    return tqdm(total=total, unit="rows", unit_scale=True, desc="genco synth", disable=not on, leave=False, dynamic_ncols=True)


__all__ = [
    "rows_table",
    "simulate",
    "RAW_DIR",
    "WORLD_DIR",
]
