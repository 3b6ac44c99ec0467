"""Tiny, fast factories of valid impression tables (pyarrow + numpy only; no simulator needed).

``make_impressions(n, ...)`` returns ``n`` valid rows in :func:`genco_data.format.arrow.impressions_schema`:
train days logged by ``production`` (random propensities), test days by ``uniform`` (1/n), rows in
chronological order, ids ``f"{prefix}{i:08d}"``.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import (
    COMPONENTS,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    candidates_col,
    exposed_col,
    propensity_col,
)

START = dt.date(2024, 3, 1)
#: The first test day of :func:`make_impressions`' default days (4 train days from START, then 2 test days).
TSD = START + dt.timedelta(days=4)


def make_impressions(
    n: int,
    *,
    seed: int = 0,
    train_days: int = 4,  # TSD assumes this default
    test_days: int = 2,
    start: dt.date = START,
    prefix: str = "imp",
    first_id: int = 0,
    vocab: int = 500,
) -> pa.Table:
    """``n`` valid rows over ``train_days + test_days`` days (test days last), chronological."""
    rng = np.random.default_rng(seed)
    days_n = train_days + test_days
    day_idx = np.sort(rng.integers(0, days_n, n))
    test = day_idx >= train_days
    day = pa.array([start + dt.timedelta(days=int(d)) for d in range(days_n)], pa.date32()).take(pa.array(day_idx))
    cols: dict[str, pa.Array] = {
        "impression_id": pa.array([f"{prefix}{first_id + i:08d}" for i in range(n)], pa.string()),
        "day": day,
        "logging_policy": pa.array(np.where(test, "uniform", "production"), pa.string()),
        "user_id": pa.array(rng.integers(0, 10_000, n), pa.int64()),
        "user_age": pa.array(rng.integers(0, 7, n), pa.int8(), mask=rng.random(n) < 0.1),
        "user_gender": pa.array(rng.integers(0, 3, n), pa.int8()),
        "ad_id": pa.array(rng.integers(0, 2_000, n), pa.int64()),
        "category": pa.array(rng.choice(["phone", "computer", "wine", "clothing", "bedding"], n), pa.string()),
        "query_id": pa.array(rng.integers(0, 5_000, n), pa.int64(), mask=rng.random(n) < 0.2),
        "query_segments": _lists(rng, rng.integers(0, 4, n), 100_000),
    }
    for comp_i, comp in enumerate(COMPONENTS):
        mean = PAPER_AVG_CANDIDATES[comp]
        has = rng.random(n) < PAPER_COVERAGE[comp]
        sizes = np.where(has, np.clip(rng.poisson(mean - 1, n) + 1, 1, 20), 0)
        # pools: distinct ids drawn from a per-component vocabulary, big ids like real hashes
        base = np.int64(comp_i + 1) << np.int64(40)
        cols[candidates_col(comp)] = _distinct_lists(rng, sizes, vocab, base)
        exposed = (rng.random(n) * np.maximum(sizes, 1)).astype(np.int64)
        prop = np.where(test, 1.0 / np.maximum(sizes, 1), rng.uniform(0.05, 1.0, n))
        cols[exposed_col(comp)] = pa.array(exposed, pa.int16(), mask=~has)
        cols[propensity_col(comp)] = pa.array(prop, pa.float32(), mask=~has)
    cols["click"] = pa.array((rng.random(n) < 0.07).astype(np.int8), pa.int8())
    return pa.Table.from_pydict(cols, schema=impressions_schema())


def _lists(rng: np.random.Generator, sizes: np.ndarray, high: int) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    values = rng.integers(0, high, int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))


def _distinct_lists(rng: np.random.Generator, sizes: np.ndarray, vocab: int, base: np.int64) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    total = int(offsets[-1])
    # element j of a row = (start + j * step) mod vocab with step coprime to vocab -> distinct within a row
    start = np.repeat(rng.integers(0, vocab, len(sizes)), sizes)
    j = np.arange(total) - np.repeat(offsets[:-1], sizes)
    values = (start + 7 * j) % vocab + base
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values, pa.int64()))


# ------------------------------------------------------------------------------------------ writers
def write_parquet(table: pa.Table, path: Path, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_jsonl(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row, default=str) + "\n")
    return path


def write_csv(table: pa.Table, path: Path) -> Path:
    """CSV with list columns as JSON-array text (the builder's documented CSV encoding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_list(col.type):
            cols[name] = pa.array([None if v is None else json.dumps(v, separators=(",", ":")) for v in col.to_pylist()], pa.string())
        else:
            cols[name] = col
    pa_csv.write_csv(pa.table(cols), path)
    return path


def write_world(folder: Path, test_start_day: dt.date, seed: int = 7) -> Path:
    """A stand-in simulator ``world/`` (world.json + a small npz)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world.json").write_text(
        json.dumps({"generator": "tests.factories 0", "seed": seed, "test_start_day": test_start_day.isoformat(),
                    "parameters": {"n_ads": 2000}}),
        encoding="utf-8",
    )
    np.savez(folder / "world.npz", quality=np.arange(10, dtype=np.float32))
    return folder


def set_cells(table: pa.Table, column: str, rows: dict[int, object]) -> pa.Table:
    """``table`` with ``column[row] = value`` for each item (values in Python form, type kept if possible)."""
    values = table.column(column).to_pylist()
    for i, v in rows.items():
        values[i] = v
    field = table.schema.field(column)
    try:
        arr = pa.array(values, field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = pa.array(values)
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, pa.field(column, arr.type, nullable=True), arr)


def read_manifest(release: Path) -> dict:
    """A release's manifest.json as a plain dict (for tests that edit it by hand)."""
    return json.loads((Path(release) / "manifest.json").read_text())


def write_manifest(release: Path, manifest: dict) -> None:
    (Path(release) / "manifest.json").write_text(json.dumps(manifest, indent=2))
