"""Property-based tests (hypothesis, bounded examples) that complete the ones living beside their modules:

* pydantic row <-> Arrow row round trip: ``tests/test_schema.py::test_pydantic_row_roundtrips_through_arrow``;
* padding / truncation invariants: ``tests/test_torch_data.py::test_truncation_property``;
* vectorized metrics == a row-by-row reference on random logs:
  ``tests/test_evaluate.py::test_property_vectorized_equals_reference_on_random_logs``.

Here: the **builder's output does not depend on how the input is cut** (batch size, block size, files,
formats, shard and row-group sizes, ordering path), and the **evaluator over a built release equals the
paper's Algorithm 1** computed row by row from the raw rows of random uniform logs and random policies.
"""
from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genco_data.card.card as card_module
from factories import START, TSD, make_impressions, set_cells, write_csv, write_jsonl, write_parquet
from genco_data import BuildConfig, build_release
from genco_data.format.components import COMPONENTS, candidates_col, exposed_col
from genco_data.release import Release

ROWS = 300
WRITERS = {"parquet": write_parquet, "csv": write_csv, "jsonl": write_jsonl}
PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _no_card_figures(monkeypatch):
    """PNG figures cost ~0.5 s per build and play no part in these properties (the card text still renders)."""
    monkeypatch.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])


@lru_cache(maxsize=2)
def raw_rows(shuffled: bool) -> pa.Table:
    """300 rows with three bad rows and a duplicate id; chronological, or shuffled (the spill path)."""
    t = make_impressions(ROWS, seed=17)
    t = set_cells(t, "click", {7: 3})
    t = set_cells(t, "title_exposed", {50: 99})
    t = set_cells(t, "user_id", {200: -1})
    t = set_cells(t, "impression_id", {120: t.column("impression_id")[10].as_py()})
    if shuffled:
        t = t.take(np.random.default_rng(3).permutation(ROWS))
    return t


def _build(sources: list[Path], out: Path, **kw) -> None:
    kw = {"version": "1.0.0", "test_start_day": TSD, "max_reject_rate": 0.1, "sample_rows": 40, **kw}
    build_release(BuildConfig(sources=sources, out=out, **kw), progress=False)


def _snapshot(out: Path) -> dict:
    """Everything a build decides about rows: data rows per config/split (in order), rejects as
    (impression_id, reason), manifest counts and statistics."""
    rel = Release.open(out)
    snap: dict = {}
    for config in ("impressions", "sample"):
        for split in ("train", "test"):
            files = rel.data_files(config, split)
            snap[(config, split)] = pa.concat_tables([pq.read_table(f) for f in files])
    rejects = sorted((out / "rejects").glob("*.parquet"))
    snap["rejects"] = Counter(
        (r["impression_id"], r["reason"]) for f in rejects for r in pq.read_table(f, columns=["impression_id", "reason"]).to_pylist()
    )
    m = rel.manifest
    snap["manifest"] = (m.splits, m.rows_in, m.rows_rejected, m.stats)
    return snap


@lru_cache(maxsize=2)
def reference(shuffled: bool) -> dict:
    """The release built the plainest way: one Parquet file, default batch/shard/row-group sizes."""
    with tempfile.TemporaryDirectory() as d:
        src = write_parquet(raw_rows(shuffled), Path(d) / "raw.parquet")
        _build([src], Path(d) / "rel")
        return _snapshot(Path(d) / "rel")


@st.composite
def layouts(draw):
    cuts = sorted(draw(st.sets(st.integers(1, ROWS - 1), max_size=3)))
    return {
        "cuts": cuts,
        "formats": draw(st.lists(st.sampled_from(sorted(WRITERS)), min_size=len(cuts) + 1, max_size=len(cuts) + 1)),
        "shuffled": draw(st.booleans()),
        "batch_rows": draw(st.integers(7, 400)),
        "block_bytes": draw(st.sampled_from([4_096, 20_000, 1 << 20])),
        "rows_per_shard": draw(st.integers(20, 400)),
        "row_group_rows": draw(st.integers(10, 200)),
        "ordering": draw(st.sampled_from(["auto", "spill"])),
    }


@PROPERTY
@given(layout=layouts())
def test_builder_output_does_not_depend_on_batches_blocks_files_formats_or_shards(layout):
    table = raw_rows(layout["shuffled"])
    bounds = [0, *layout["cuts"], ROWS]
    with tempfile.TemporaryDirectory() as d:
        sources = [
            WRITERS[fmt](table.slice(a, b - a), Path(d) / f"part-{k}.{fmt}")
            for k, (a, b, fmt) in enumerate(zip(bounds[:-1], bounds[1:], layout["formats"]))
        ]
        out = Path(d) / "rel"
        _build(sources, out, **{k: layout[k] for k in ("batch_rows", "block_bytes", "rows_per_shard", "row_group_rows", "ordering")})
        got = _snapshot(out)
        for split in ("train", "test"):  # the layout asked for is the layout written
            for f in Release.open(out).data_files("impressions", split):
                meta = pq.ParquetFile(f).metadata
                assert meta.num_rows <= layout["rows_per_shard"]
                assert all(meta.row_group(i).num_rows <= layout["row_group_rows"] for i in range(meta.num_row_groups))
    want = reference(layout["shuffled"])
    for key in want:
        if isinstance(want[key], pa.Table):
            assert got[key].equals(want[key]), key
        else:
            assert got[key] == want[key], key
    assert sum(want["rejects"].values()) == 4


# --------------------------------------------------------------------------- evaluator on a built release
def _algorithm1(n: np.ndarray, shown: np.ndarray, y: np.ndarray, choice: np.ndarray) -> float:
    """Paper, Algorithm 1, literally, for one component: Σ n·y·1[choice = shown] / Σ n·1[choice = shown]."""
    exposure = click = 0
    for r in range(len(y)):
        if n[r] == 0:
            continue
        if choice[r] == shown[r]:
            exposure += int(n[r])
            click += int(n[r]) * int(y[r])
    return click / exposure if exposure else math.nan


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(30, 120), p_match=st.sampled_from([0.2, 0.6, 1.0]))
def test_evaluator_on_a_built_release_equals_algorithm_1_on_the_raw_rows(seed, rows, p_match):
    from genco_data.evaluate import Evaluator

    rng = np.random.default_rng(seed)
    raw = make_impressions(rows, seed=seed % 1000, train_days=2, test_days=3)
    raw = set_cells(raw, "click", {i: int(v) for i, v in enumerate(rng.random(rows) < 0.3)})
    raw = raw.take(rng.permutation(rows))  # the builder reorders by day; the evaluator aligns by id
    test = raw.filter(pa.compute.greater_equal(raw.column("day"), pa.scalar(START + dt.timedelta(days=2), pa.date32())))
    n = np.stack([pa.compute.list_value_length(test.column(candidates_col(c))).to_numpy() for c in COMPONENTS], axis=1)
    shown = np.stack([pa.compute.fill_null(test.column(exposed_col(c)), -1).to_numpy() for c in COMPONENTS], axis=1)
    other = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1)
    choices = np.where(rng.random(n.shape) < p_match, shown, other)
    y = test.column("click").to_numpy()
    with tempfile.TemporaryDirectory() as d:
        src = write_parquet(raw, Path(d) / "raw.parquet")
        out = Path(d) / "rel"
        _build([src], out, test_start_day=START + dt.timedelta(days=2), max_reject_rate=0.0)
        cols = {"impression_id": test.column("impression_id")}
        for j, c in enumerate(COMPONENTS):
            cols[f"{c}_choice"] = pa.array(choices[:, j], pa.int16(), mask=choices[:, j] < 0)
        result = Evaluator(out, world=None).evaluate(pa.table(cols)).to_dict()
    for j, c in enumerate(COMPONENTS):
        want = _algorithm1(n[:, j], shown[:, j], y, choices[:, j])
        got = result["components"][c]["calibrated_sctr"]["value"]
        if math.isnan(want):
            assert got is None or math.isnan(got), c
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15), c


# ------------------------------------------------------------- random valid rows through all three readers
_INT64 = st.integers(0, 2**63 - 1)
#: Any Unicode text but line breaks (a CSV cell may not span lines: the builder refuses such a file with one line)
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                min_size=1, max_size=12)


@st.composite
def _pool(draw, uniform: bool):
    ids = draw(st.lists(_INT64, max_size=5, unique=True))
    if not ids:
        return ids, None, None
    exposed = draw(st.integers(0, len(ids) - 1))
    if uniform:
        propensity = float(np.float32(1.0 / len(ids)))
    else:
        propensity = float(np.float32(draw(st.floats(float(np.float32(1e-6)), 1.0, allow_nan=False, width=32))))
    return ids, exposed, propensity


@st.composite
def _row(draw, test: bool, index: int):
    row = {
        "impression_id": f"{index}:{draw(_TEXT)}",
        "day": START + dt.timedelta(days=draw(st.integers(4, 5) if test else st.integers(0, 3))),
        "logging_policy": "uniform" if test else "production",
        "user_id": draw(_INT64),
        "user_age": draw(st.none() | st.integers(-128, 127)),
        "user_gender": draw(st.none() | st.integers(-128, 127)),
        "ad_id": draw(_INT64),
        "category": draw(st.none() | _TEXT),
        "query_id": draw(st.none() | _INT64),
        "query_segments": draw(st.lists(_INT64, max_size=4)),
    }
    for c in COMPONENTS:
        ids, exposed, propensity = draw(_pool(test))
        row[candidates_col(c)], row[exposed_col(c)], row[f"{c}_propensity"] = ids, exposed, propensity
    row["click"] = draw(st.integers(0, 1))
    return row


@st.composite
def _rows(draw):
    n_train, n_test = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    rows = [draw(_row(False, i)) for i in range(n_train)] + [draw(_row(True, n_train + i)) for i in range(n_test)]
    return draw(st.permutations(rows)), draw(st.lists(st.sampled_from(sorted(WRITERS)), min_size=len(rows), max_size=len(rows)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=_rows())
def test_random_valid_rows_round_trip_through_parquet_jsonl_and_csv(data):
    """Any valid row — ids up to 2**63-1, any Unicode text, nulls wherever allowed, float32 propensities —
    comes out of the release exactly as it went in, whichever reader read it: no row lost, changed or added."""
    from genco_data.format.arrow import impressions_schema

    rows, formats = data
    schema = impressions_schema()
    with tempfile.TemporaryDirectory() as d:
        sources = []
        for fmt in sorted(set(formats)):
            mine = [r for r, f in zip(rows, formats) if f == fmt]
            sources.append(WRITERS[fmt](pa.Table.from_pylist(mine, schema=schema), Path(d) / f"part.{fmt}"))
        out = Path(d) / "rel"
        _build(sources, out, max_reject_rate=0.0)
        rel = Release.open(out)
        got = pa.concat_tables([pq.read_table(f) for s in ("train", "test") for f in rel.data_files("impressions", s)])
        assert not list((out / "rejects").glob("*.parquet"))
        assert rel.manifest.rows_in == len(rows) and rel.manifest.rows_rejected == 0
    want = pa.Table.from_pylist(rows, schema=schema).to_pylist()
    key = lambda r: r["impression_id"]  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(want, key=key)
