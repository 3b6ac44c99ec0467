"""The compiled padding path (load/kernels.py + load/fused.py) equals the numpy reference path byte for byte.

Random tables with long pools (> 15, shown element beyond slot 14), empty pools, nulls, sliced / chunked
columns, other integer and float widths; a real small release; the same one-line errors; the hash itself;
DataLoader workers (fork and spawn) and numba without a writable cache dir.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genco_data import load as td
from genco_data.errors import InvalidInputError
from genco_data.format.components import COMPONENTS, PAD_TO, candidates_col, exposed_col, propensity_col
from genco_data.load import fused, kernels
from genco_data.load.hashing import hash_buckets, table_salt
from genco_data.load.padding import FIRST_INDEX, PAD_INDEX, TENSOR_FIELDS, _pad_block, _pad_block_numpy, pad_engine
from tests.factories import make_impressions, set_cells

ROOT = Path(__file__).resolve().parents[1]


def _long_pools(n: int, seed: int) -> pa.Table:
    """make_impressions rows (pools up to 20) plus pools of 16-40 whose shown element is often >= 15, and
    query segments beyond 16."""
    t = make_impressions(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for comp in ("title", "highlight"):
        sizes = np.where(rng.random(n) < 0.8, rng.integers(16, 41, n), 0)
        offs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
        vals = pa.array(rng.integers(-(2**63), 2**63 - 1, int(offs[-1]), dtype=np.int64))
        exposed = np.where(rng.random(n) < 0.5, sizes - 1, (rng.random(n) * np.maximum(sizes, 1)).astype(np.int64))
        for name, arr in ((candidates_col(comp), pa.ListArray.from_arrays(pa.array(offs), vals)),
                          (exposed_col(comp), pa.array(exposed, pa.int16(), mask=sizes == 0)),
                          (propensity_col(comp), pa.array(1.0 / np.maximum(sizes, 1), pa.float32(), mask=sizes == 0))):
            t = t.set_column(t.schema.get_field_index(name), t.schema.field(name), arr)
    ns = rng.integers(0, 24, n)
    segs = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(ns)]).astype(np.int32)),
                                    pa.array(rng.integers(0, 2**40, int(ns.sum()))))
    return t.set_column(t.schema.get_field_index("query_segments"), t.schema.field("query_segments"), segs)


def _assert_same_blocks(a: dict, b: dict) -> None:
    for k in TENSOR_FIELDS:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k
    assert a["impression_id"].equals(b["impression_id"])


def _fused_block(table: pa.Table, vocabs, max_segments: int = 16) -> dict:
    """The fused path's block, asserting that it ran (not the numpy fallback)."""
    tables = vocabs.kernel_tables()
    return fused.pad_block_fused(table, vocabs, tables, max_segments, None)


@pytest.mark.parametrize("sizes", [None, 7, 1 << 33])  # default 2**18 / tiny tables / K >= 2**32 (the `mod K` branch)
def test_fused_equals_numpy_on_random_tables(sizes):
    v = td.Vocabularies.hashed(sizes)
    t = _long_pools(700, seed=3)
    assert (np.diff(t.column("title_candidates").chunk(0).offsets.to_numpy()) > PAD_TO).any()
    whole = _fused_block(t, v)
    _assert_same_blocks(whole, _pad_block_numpy(t, v))
    assert (whole["exposed"] == PAD_TO - 1).any() and (whole["original_index"][:, :, PAD_TO - 1] >= PAD_TO).any()
    # slices (non-zero Arrow offsets: bitmaps start mid-byte) and chunked columns
    for a, b in ((1, 300), (13, 687), (699, 700)):
        s = t.slice(a, b - a)
        _assert_same_blocks(_fused_block(s, v), _pad_block_numpy(s, v))
    chunked = pa.concat_tables([t.slice(0, 333), t.slice(333)])
    _assert_same_blocks(_pad_block(chunked, v), _pad_block_numpy(chunked, v))
    _assert_same_blocks(_fused_block(t, v, max_segments=3), _pad_block_numpy(t, v, max_segments=3))


def test_fused_equals_numpy_on_other_widths_and_mixed_vocabularies():
    t = make_impressions(300, seed=5)
    for comp in COMPONENTS[:3]:  # exposed as int32/int64, propensity as float64: cast as the numpy path casts
        i = t.schema.get_field_index(exposed_col(comp))
        t = t.set_column(i, exposed_col(comp), t.column(i).cast(pa.int64() if comp == "title" else pa.int32()))
        j = t.schema.get_field_index(propensity_col(comp))
        t = t.set_column(j, propensity_col(comp), t.column(j).cast(pa.float64()))
    v = td.Vocabularies.hashed(1000)
    _assert_same_blocks(_fused_block(t, v), _pad_block_numpy(t, v))
    # pools hashed, context ids exact (Vocabularies.build with hash_buckets for the pools only): fused + lookups
    mixed = td.Vocabularies.build(t, hash_buckets={n: 500 for n in fused.FUSED_NAMES})
    _assert_same_blocks(_fused_block(t, mixed), _pad_block_numpy(t, mixed))
    # exact vocabularies take the numpy path
    exact = td.Vocabularies.build(t)
    assert all(exact.kernel_tables().get(n, ("",))[0] != "hash" for n in fused.FUSED_NAMES)
    _assert_same_blocks(_pad_block(t, exact), _pad_block_numpy(t, exact))


def test_pad_engine_switch_and_default_path(monkeypatch):
    v, t = td.Vocabularies.hashed(), make_impressions(50, seed=1)
    calls = []
    real = fused.pad_block_fused
    monkeypatch.setattr(fused, "pad_block_fused", lambda *a: calls.append(1) or real(*a))
    _pad_block(t, v)
    assert calls == [1]  # hashed vocabularies (the default) take the kernels
    with pad_engine("numpy"):
        _pad_block(t, v)
    assert calls == [1]
    with pytest.raises(ValueError, match="unknown pad engine"):
        with pad_engine("cuda"):
            pass


BAD_CELLS = [
    ("title_exposed", {4: 99}),  # out of range
    ("title_exposed", {4: -1}),
    ("image_exposed", {7: None}),  # null with a non-empty pool (image coverage is 100 %)
    ("title_propensity", {2: 0.0}),
    ("image_propensity", {3: None}),
    ("image_propensity", {3: 1.5}),
    ("click", {5: None}),
    ("click", {5: 2}),
    ("user_id", {6: None}),
]


@pytest.mark.parametrize("column,cells", BAD_CELLS)
def test_bad_rows_give_the_numpy_paths_one_line(column, cells):
    v = td.Vocabularies.hashed()
    t = set_cells(make_impressions(40, seed=2), column, cells)
    with pad_engine("numpy"), pytest.raises(InvalidInputError) as ref:
        _pad_block(t, v, where=lambda i: f"file x.parquet row {i}")
    with pytest.raises(InvalidInputError) as got:
        _pad_block(t, v, where=lambda i: f"file x.parquet row {i}")
    assert str(got.value) == str(ref.value) and "\n" not in str(got.value)
    assert "x.parquet row" in str(got.value)
    with pytest.raises(fused.NeedsReference) if column.endswith(("_exposed", "_propensity")) else pytest.raises(InvalidInputError):
        _fused_block(t, v)


def test_exposed_set_on_an_empty_pool_and_null_list_ids_are_refused_alike():
    v = td.Vocabularies.hashed()
    t = make_impressions(60, seed=4)
    empty = int(np.flatnonzero(np.diff(t.column("marketing_candidates").chunk(0).offsets.to_numpy()) == 0)[0])
    bad = set_cells(t, "marketing_exposed", {empty: 0})
    msgs = []
    for engine in ("numpy", "auto"):
        with pad_engine(engine), pytest.raises(InvalidInputError) as e:
            _pad_block(bad, v)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "marketing_exposed" in msgs[0] and "pool of 0" in msgs[0]
    pools = t.column("title_candidates").to_pylist()
    pools[3] = [1, None, 2]
    nul = t.set_column(t.schema.get_field_index("title_candidates"), "title_candidates", pa.array(pools, pa.list_(pa.int64())))
    for engine in ("numpy", "auto"):
        with pad_engine(engine), pytest.raises(InvalidInputError, match="null id inside a list"):
            _pad_block(nul, v)


def test_kernel_hash_is_the_documented_hash():
    rng = np.random.default_rng(0)
    ids = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64), [0, -1, 2**63 - 1, -(2**63)]]).astype(np.int64)
    for k in (1, 2, 1000, (1 << 32) - 1, 1 << 32, (1 << 40) + 7):
        salt = table_salt("title")
        out = np.empty_like(ids)
        kernels.hash_ids(ids, np.uint64(salt), np.uint64(k), out)
        np.testing.assert_array_equal(out, hash_buckets(ids, salt, k))
        assert out.min() >= FIRST_INDEX and out.max() < k + FIRST_INDEX
    # direct codes: null -> padding, in range -> code + 2, else OOV
    codes = pa.array([0, 5, None, 127, 128, -3], pa.int16())
    res = np.empty(len(codes), np.int64)
    kernels.direct_column(*fused._parts(codes), 128, res)
    assert res.tolist() == [2, 7, PAD_INDEX, 129, 1, 1]


def test_real_small_release_identical_and_loader_batches(tmp_path):
    from genco_data import BuildConfig, build_release
    from genco_data.synth import SynthConfig, simulate

    summary = simulate(SynthConfig(train_rows=2500, test_rows=500, seed=0), tmp_path / "raw", progress=False)
    rel = tmp_path / "rel"
    build_release(BuildConfig(sources=[tmp_path / "raw"], out=rel, version="0.0.1",
                              test_start_day=dt.date.fromisoformat(summary["test_start_day"])), progress=False)
    v = td.Vocabularies.for_release(rel)
    for f in td.parquet_files(rel, "train"):
        t = pq.read_table(f)
        _assert_same_blocks(_fused_block(t, v), _pad_block_numpy(t, v))
    got = [b for b in td.StreamingDataset(rel, v, batch_size=256)]
    with pad_engine("numpy"):
        ref = [b for b in td.StreamingDataset(rel, v, batch_size=256)]
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        for k in TENSOR_FIELDS:
            assert getattr(a, k).numpy().tobytes() == getattr(b, k).numpy().tobytes(), k


_WORKER_SCRIPT = """
import sys, torch
from genco_data import load as td
from tests.test_fastpad_kernels import _long_pools
t = _long_pools(400, seed=9)
v = td.Vocabularies.hashed(5000)
ref = td.pad_table(t, v)
for context, workers in (("fork", 2), ("spawn", 1)):
    dl = torch.utils.data.DataLoader(td.StreamingDataset(t, v, batch_size=400), batch_size=None, num_workers=workers,
                                     multiprocessing_context=context)
    got = td.concat_batches(list(dl))
    order = torch.tensor(sorted(range(len(got)), key=lambda i: got.impression_id[i].as_py()))
    assert got.impression_id.take(order.numpy()).equals(ref.impression_id), context
    assert all(torch.equal(getattr(got, k)[order], getattr(ref, k)) for k in ("candidates", "mask", "original_index", "exposed")), context
    print("ok", context)
"""


@pytest.mark.slow
def test_dataloader_workers_fork_and_spawn():
    """Forked workers inherit the compiled kernels, spawned ones load them from numba's cache (or compile)."""
    pytest.importorskip("torch")
    r = subprocess.run([sys.executable, "-c", _WORKER_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and "ok fork" in r.stdout and "ok spawn" in r.stdout, r.stderr[-2000:]


@pytest.mark.slow
def test_no_usable_cache_dir_still_pads(tmp_path):
    """numba finds no cache dir it can write (its locators all refused, as on a read-only install with no writable
    home; NUMBA_CACHE_DIR below a regular file): the kernels compile in memory with one warning and the loader
    still pads."""
    (tmp_path / "file").write_text("x")
    script = ("import warnings\n"
              "import numba.core.caching as c\n"
              "if sys.argv[1] == 'none': c.CacheImpl._locator_classes = []\n"
              "with warnings.catch_warnings(record=True) as w:\n"
              "    warnings.simplefilter('always')\n"
              "    from genco_data import load as td; from tests.factories import make_impressions\n"
              "    b = td.pad_table(make_impressions(30, seed=1), td.Vocabularies.hashed())\n"
              "print('ok', len(b), sum('numba cache unavailable' in str(x.message) for x in w))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "file" / "cache")}
    for mode, warned in (("none", True),):
        r = subprocess.run([sys.executable, "-c", "import sys\n" + script, mode], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env=env)
        assert r.returncode == 0 and r.stdout.startswith("ok 30"), r.stderr[-2000:]
        assert (int(r.stdout.split()[-1]) > 0) == warned, r.stdout
