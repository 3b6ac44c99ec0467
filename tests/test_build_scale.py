"""The builder at scale (issue #13) and its hardening (issue #16): workers, exact uniqueness, shard defaults,
the statistics' sketches, symlinks, the writer lock, one-line refusals."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import genco_data.build.engines.local as local_engine
import genco_data.build.ingest as ingest_module
import genco_data.build.passes as passes_module
from factories import TSD, make_impressions, set_cells, write_jsonl, write_parquet, write_world
from genco_data.build.builder import build_release
from genco_data.build.plan import MIN_SHARD_ROWS, BuildConfig, auto_rows_per_shard
from genco_data.build.sketch import DistinctCounter, DistinctValues, _clz64, _largest_per_slot, _settled, hll_slot_values
from genco_data.build.stats import AdSample, StatsAccumulator, format_stats
from genco_data.cli import main
from genco_data.errors import BuildError, InvalidInputError, LockedError
from genco_data.release import Release

ROOT = Path(__file__).resolve().parents[1]


def _build(sources, out, **kw):
    kw = {"version": "1.0.0", "test_start_day": TSD, "rows_per_shard": 900, "row_group_rows": 250, "sample_rows": 200, **kw}
    return build_release(BuildConfig(sources=[Path(s) for s in sources], out=Path(out), **kw), progress=False)


def _everything(out: Path) -> dict[str, bytes]:
    """Every file of the release and its rejects, by path (the card is not built here)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """6,000 rows in three Parquet files (small row groups), out of day order, with bad rows and duplicates
    across files."""
    src = tmp_path_factory.mktemp("messy")
    t = make_impressions(6000, seed=5)
    ids = t.column("impression_id").to_pylist()
    t = set_cells(t, "click", {17: 4, 4100: 9})
    t = set_cells(t, "impression_id", {3000: ids[12], 5999: ids[4000], 5998: ids[4000]})
    t = t.take(np.random.default_rng(1).permutation(6000))
    for k, (a, b) in enumerate([(0, 2500), (2500, 4000), (4000, 6000)]):
        write_parquet(t.slice(a, b - a), src / "raw" / f"part-{k}.parquet", row_group_size=400)
    return src


# ------------------------------------------------------------------------------------------- workers
def test_any_number_of_workers_writes_the_same_bytes(messy, tmp_path, monkeypatch):
    monkeypatch.setattr(local_engine, "PARALLEL_MIN_ROWS", 0)  # a pool even for small data
    monkeypatch.setattr(ingest_module, "TASK_ROWS", 800)  # many tasks (row groups of 400 rows, grouped by 2)
    monkeypatch.setattr(passes_module, "PARTITION_ROWS", 1000)  # several id partitions
    assert passes_module.n_partitions(6000) == 8
    one = _build([messy], tmp_path / "w1", workers=1)
    two = _build([messy], tmp_path / "w2", workers=2)
    assert one.rows_rejected == two.rows_rejected == 5
    assert one.reject_reasons == {"duplicate_id:impression_id": 3, "not_binary:click": 2}
    assert one.ordering == "spill"
    assert _everything(tmp_path / "w1") == _everything(tmp_path / "w2")  # data, sample, manifest, rejects



def test_the_first_occurrence_in_input_order_is_kept(messy, tmp_path):
    r = _build([messy], tmp_path / "rel")
    kept = pa.concat_tables([pq.read_table(f) for s in ("train", "test") for f in Release.open(tmp_path / "rel").data_files("impressions", s)])
    ids = kept.column("impression_id").to_pylist()
    assert len(ids) == len(set(ids)) == 6000 - r.rows_rejected
    rej = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / "rel" / "rejects").glob("*.parquet"))])
    raw = [pq.read_table(messy / "raw" / f"part-{k}.parquet") for k in range(3)]
    first_seen: dict[str, tuple[int, int]] = {}
    for k, t in enumerate(raw):
        for i, v in enumerate(t.column("impression_id").to_pylist()):
            first_seen.setdefault(v, (k, i))
    for row in rej.filter(pa.compute.equal(rej.column("reason"), "duplicate_id:impression_id")).to_pylist():
        k = int(row["source_file"].split("part-")[1][0])
        assert (k, row["source_row"]) > first_seen[row["impression_id"]]  # a later occurrence was rejected


def test_a_hash_collision_never_rejects_a_row(tmp_path, monkeypatch):
    """Two distinct ids whose cheap hash collides are both kept; a true duplicate still is not."""
    t = make_impressions(400, seed=2)
    t = set_cells(t, "impression_id", {300: t.column("impression_id")[3].as_py()})
    write_parquet(t, tmp_path / "raw.parquet")

    def colliding(arr):  # every id hashes to one of two values: thousands of collisions
        n = len(arr)
        return (np.arange(n, dtype=np.uint64) % np.uint64(2)) * np.uint64(0x9E3779B97F4A7C15)

    monkeypatch.setattr(ingest_module, "hash_strings", colliding)
    r = _build([tmp_path / "raw.parquet"], tmp_path / "rel", workers=1)
    assert r.reject_reasons == {"duplicate_id:impression_id": 1}
    assert sum(r.splits["impressions"].values()) == 399


# ----------------------------------------------------------------------------------------- shards
@pytest.mark.parametrize("rows", [1_000_000, 1_048_577, 7_200_000, 50_000_000, 5_000_000_000])
def test_splits_of_a_million_rows_or_more_get_at_least_16_shards(rows):
    per = auto_rows_per_shard(rows)
    assert -(-rows // per) >= 16
    assert per <= 1_000_000  # and with ~600 B a row, shards stay well under 500 MB (also capped by bytes)


def test_automatic_shards_for_a_small_split(tmp_path):
    write_parquet(make_impressions(3000, seed=1), tmp_path / "raw.parquet")
    _build([tmp_path / "raw.parquet"], tmp_path / "rel", rows_per_shard=None, row_group_rows=100_000)
    files = Release.open(tmp_path / "rel").data_files("impressions", "train")
    assert len(files) == 1 and auto_rows_per_shard(3000) == MIN_SHARD_ROWS


# ------------------------------------------------------------------------------------ statistics
def test_the_hll_prefilter_leaves_the_sketch_exactly_as_feeding_every_item():
    import datasketches

    v = np.random.default_rng(0).integers(0, 2**62, 100_000)
    full = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_8)
    for x in v.tolist():
        full.update(x)
    c = DistinctCounter()
    for part in np.array_split(np.concatenate([v, v[:5000]]), 13):  # repeats change nothing
        c.update(part)
    assert not c.exact
    assert _settled(full, 12).serialize_compact() == _settled(c._hll, 12).serialize_compact()
    r = c.result()
    assert r["low"] <= 100_000 <= r["high"] and abs(r["value"] - 100_000) < 0.05 * 100_000


@pytest.mark.parametrize("limit", [4 << 12, 1 << 16])
def test_the_switch_to_an_hll_hands_over_one_item_per_slot_and_ends_as_feeding_every_item(limit):
    import datasketches

    v = np.random.default_rng(limit).integers(-(2**62), 2**62, limit + 1)  # one past the limit: the switch
    full = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_8)
    for x in v.tolist():
        full.update(x)
    c = DistinctCounter(exact_limit=limit)
    c.update(v[: limit // 2])
    assert c.exact
    c.update(v[limit // 2:])
    assert not c.exact
    # in HLL mode (its updatable image is the full register array), with the same registers and estimate
    assert c._hll.get_updatable_serialization_bytes() == full.get_updatable_serialization_bytes()
    assert _settled(full, 12).serialize_compact() == _settled(c._hll, 12).serialize_compact()


def test_a_day_and_its_split_share_one_batch_of_distinct_values():
    rng = np.random.default_rng(4)
    batches = [rng.integers(0, 40_000, 30_000) for _ in range(6)]
    shared_day, shared_all = DistinctCounter(exact_limit=4 << 12), DistinctCounter()
    alone_day, alone_all = DistinctCounter(exact_limit=4 << 12), DistinctCounter()
    for b in batches:
        u = DistinctValues(np.unique(b)[::-1].copy())  # distinct, in no particular order
        shared_day.add(u)
        shared_all.add(u)
        alone_day.update(b)
        alone_all.update(b)
    assert not shared_day.exact and shared_all.exact  # one counter past its limit, the other not
    assert shared_day.result() == alone_day.result()
    assert shared_all.result() == alone_all.result() == {"value": len(np.unique(np.concatenate(batches))), "exact": True}


def test_leading_zeros_are_exact_at_every_bit_length():
    edges = [0, 1, 2, 3, 0x7FF, 0x800, 2**52, 2**53 - 1, 2**53, 2**53 + 1, 2**63, 2**64 - 1]
    rng = np.random.default_rng(5)
    rand = rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64) >> rng.integers(0, 64, 5000).astype(np.uint64)
    x = np.concatenate([np.array(edges, dtype=np.uint64), rand])
    assert _clz64(x).tolist() == [64 - int(v).bit_length() for v in x.tolist()]


def test_the_largest_item_per_slot_is_the_first_one_offering_the_slots_maximum():
    slot = np.array([3, 1, 3, 1, 3, 0])
    value = np.array([2, 5, 7, 5, 7, 1])
    assert _largest_per_slot(slot, value, 2).tolist() == [5, 1, 2]  # slots 0, 1, 3; ties: the first index
    s, val = hll_slot_values(np.arange(50_000))
    pick = _largest_per_slot(s, val, 12)
    best = np.zeros(4096, dtype=np.int64)
    np.maximum.at(best, s, val)
    assert np.array_equal(val[pick], best[s[pick]]) and len(np.unique(s[pick])) == len(pick) == np.count_nonzero(best)


def test_distinct_counts_do_not_depend_on_how_rows_are_split():
    v = np.random.default_rng(1).integers(0, 10**12, 80_000)
    whole = DistinctCounter()
    whole.update(v)
    for k in (2, 3, 7):
        parts = [DistinctCounter() for _ in range(k)]
        for i, chunk in enumerate(np.array_split(v, 23)):
            parts[i % k].update(chunk)
        merged = parts[0]
        for p in parts[1:]:
            merged.merge(p)
        assert merged.result() == whole.result()
    small = DistinctCounter()
    small.update(np.array([5, 5, 7, -1]))
    assert small.result() == {"value": 3, "exact": True}


def test_stats_merged_from_parts_equal_the_whole():
    t = make_impressions(5000, seed=8, vocab=50_000)
    whole = StatsAccumulator()
    whole.update(t)
    a, b = StatsAccumulator(), StatsAccumulator()
    for i, batch in enumerate(t.to_batches(max_chunksize=333)):
        (a if i % 3 else b).update(batch)
    a.merge(b)
    assert a.result() == whole.result()
    res = whole.result()
    assert set(res["distinct_ids"]) == {"user_id", "ad_id", "query_id", "query_segments"}
    assert res["estimates"] == {}  # small: every figure exact
    text = format_stats(res)
    assert "ids/ad" in text and "coverage of ads" in text and "expo/cand./day" in text


def test_the_ad_sample_is_exact_per_ad_and_mergeable():
    rng = np.random.default_rng(3)
    ads = rng.integers(0, 500, 4000)
    lengths = rng.integers(0, 4, (4000, 6))
    whole, a, b = AdSample(k=100), AdSample(k=100), AdSample(k=100)
    whole.update(ads, lengths)
    a.update(ads[:1500], lengths[:1500])
    b.update(ads[1500:], lengths[1500:])
    a.merge(b)
    assert np.array_equal(a.keys, whole.keys) and np.array_equal(a.agg, whole.agg)
    from genco_data.build.unique import splitmix64

    key_of = {int(k): ad for ad, k in zip(range(500), splitmix64(np.arange(500).astype(np.uint64)))}
    for key, agg in zip(whole.keys[:5], whole.agg[:5]):
        rows = ads == key_of[int(key)]
        assert agg[0] == rows.sum() and agg[1] == (lengths[rows, 0] > 0).sum() and agg[7] == lengths[rows, 0].sum()


def test_estimates_are_flagged_with_their_bounds():
    t = make_impressions(30_000, seed=9, vocab=10_000_000)  # > 65,536 distinct candidates of some components
    acc = StatsAccumulator()
    acc.update(t)
    res = acc.result()
    est = res["estimates"]
    assert any(k.endswith(".distinct_ids") for k in est)
    for key, e in est.items():
        *path, leaf = key.split(".")
        node = res
        for p in path:
            node = node[p]
        assert e["low"] <= node[leaf] <= e["high"], key
    truth = len(np.unique(pa.compute.list_flatten(t.column("highlight_candidates")).to_numpy()))
    e = est["components.highlight.distinct_ids"]
    assert e["low"] <= truth <= e["high"]


# ---------------------------------------------------------------------------------- symlinks (#16)
def _good(folder: Path) -> None:
    write_parquet(make_impressions(300, seed=3), folder / "a.parquet")


@pytest.mark.parametrize("kind", ["dangling", "outside", "loop", "world_symlink", "world_loop"])
def test_symlinks_that_leave_the_source_refuse_the_build_with_one_line(tmp_path, kind, capsys):
    src = tmp_path / "src"
    _good(src)
    secret = tmp_path / "secret.parquet"
    write_parquet(make_impressions(10, seed=4, prefix="s"), secret)
    if kind == "dangling":
        os.symlink(tmp_path / "nowhere.parquet", src / "b.parquet")
    elif kind == "outside":
        os.symlink(secret, src / "b.parquet")
    elif kind == "loop":
        (src / "sub").mkdir()
        os.symlink(src, src / "sub" / "again")
    else:
        write_world(src / "world", TSD, seed=1)
        target = secret if kind == "world_symlink" else src / "world"
        os.symlink(target, src / "world" / "extra")
    out = tmp_path / "rel"
    with pytest.raises(InvalidInputError) as info:
        _build([src], out)
    assert "\n" not in str(info.value) and "symlink" in str(info.value)
    assert not out.exists()
    assert main(["build", str(src), "--out", str(out), "--version", "1.0.0", "--test-start-day", TSD.isoformat(), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "symlink" in err and "Traceback" not in err


def test_a_symlinked_subfolder_inside_the_source_is_read_and_other_files_are_counted(tmp_path):
    src = tmp_path / "src"
    _good(src)
    write_parquet(make_impressions(200, seed=6, prefix="z"), tmp_path / "src" / "real" / "b.parquet")
    os.symlink(src / "real", src / "linked")  # a second way to the same folder: refused, not read twice
    with pytest.raises(InvalidInputError, match="reached twice"):
        _build([src], tmp_path / "rel")
    os.unlink(src / "linked")
    write_parquet(make_impressions(200, seed=7, prefix="y"), src / ".store" / "c.parquet")  # hidden: not read itself
    os.symlink(src / ".store", src / "view")  # ... but through a link that stays inside the source: read once
    (src / "notes.txt").write_text("x")
    r = _build([src], tmp_path / "rel")
    assert r.rows_in == 700
    assert "notes.txt" in r.ignored and ".store" in r.ignored
    assert "not read" in r.summary()


# ------------------------------------------------------------------------------- lock and --out (#16)
def test_a_second_build_of_the_same_out_fails_at_once_naming_the_holder(tmp_path, capsys):
    _good(tmp_path / "src")
    out = tmp_path / "rel"
    code = ("import sys, time\nfrom genco_data.locks import writer_lock\n"
            f"with writer_lock({str(out)!r}, 'genco build'):\n    print('held', flush=True)\n    time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        for overwrite in (False, True):
            with pytest.raises(LockedError, match=rf"rel: another writer holds it \(genco build, pid {proc.pid} on "):
                _build([tmp_path / "src"], out, overwrite=overwrite)
        assert main(["build", str(tmp_path / "src"), "--out", str(out), "--version", "1.0.0",
                     "--test-start-day", TSD.isoformat(), "--quiet", "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another writer holds it" in err
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    _build([tmp_path / "src"], out)  # the holder died: no stale lock


@pytest.mark.parametrize("kind", ["under_a_file", "name_too_long"])
def test_an_impossible_out_is_one_line(tmp_path, kind, capsys):
    _good(tmp_path / "src")
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "rel" if kind == "under_a_file" else tmp_path / ("r" * 250)
    with pytest.raises(BuildError) as info:
        _build([tmp_path / "src"], out)
    assert "\n" not in str(info.value)
    assert main(["build", str(tmp_path / "src"), "--out", str(out), "--version", "1.0.0", "--test-start-day", TSD.isoformat(), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


# ---------------------------------------------------------------------------------------- JSONL (#16)
def test_a_jsonl_line_that_omits_a_nullable_key_is_rejected_by_name(tmp_path):
    t = make_impressions(300, seed=12)
    write_jsonl(t, tmp_path / "raw.jsonl")
    lines = (tmp_path / "raw.jsonl").read_text().splitlines()
    for k, key in ((5, "user_age"), (9, "marketing_exposed")):
        row = json.loads(lines[k])
        del row[key]
        lines[k] = json.dumps(row)
    lines.insert(7, "   ")  # a blank line is not a row
    (tmp_path / "raw.jsonl").write_text("\n".join(lines) + "\n")
    r = _build([tmp_path / "raw.jsonl"], tmp_path / "rel", max_reject_rate=0.05)
    assert r.reject_reasons == {"missing:user_age": 1, "missing:marketing_exposed": 1}
    rej = pq.read_table(next((tmp_path / "rel" / "rejects").glob("*.parquet")))
    assert rej.column("source_row").to_pylist() == [5, 9]


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_build_options_are_honoured(messy, tmp_path, capsys):
    out = tmp_path / "rel"
    assert main(["build", str(messy), "--out", str(out), "--version", "1.0.0", "--test-start-day", TSD.isoformat(),
                 "--workers", "2", "--rows-per-shard", "1000", "--row-group-rows", "300", "--quiet", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["workers"] == 2 and d["engine"] == "local"
    for f in Release.open(out).data_files("impressions", "train"):
        meta = pq.ParquetFile(f).metadata
        assert meta.num_rows <= 1000 and all(meta.row_group(i).num_rows <= 300 for i in range(meta.num_row_groups))
    assert main(["build", str(messy), "--out", str(tmp_path / "x"), "--version", "1.0.0", "--workers", "0", "--quiet"]) == 2
    assert "workers must be a positive integer" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- Ray
def test_the_ray_engine_agrees_with_the_local_engine_and_keeps_the_callers_sigterm_handler(tmp_path):
    """A local Ray with 2 CPUs: Parquet (two files, a duplicate across them, a bad row) and JSONL (a line
    without a key): the same rows, rejects and statistics — in fact the same bytes — as the local engine. And
    ``ray.init``'s own SIGTERM handler (a bare ``sys.exit``) does not outlive the engine's start."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (pip install 'genco-data[ray]')")
    t = make_impressions(2000, seed=21)
    ids = t.column("impression_id").to_pylist()
    t = set_cells(t, "click", {15: 2})
    t = set_cells(t, "impression_id", {1100: ids[20]})
    src = tmp_path / "src"
    write_parquet(t.slice(0, 900), src / "a.parquet", row_group_size=300)
    write_parquet(t.slice(900, 700), src / "b.parquet")
    write_jsonl(t.slice(1600), src / "c.jsonl")
    lines = (src / "c.jsonl").read_text().splitlines()
    row = json.loads(lines[3])
    del row["query_id"]
    lines[3] = json.dumps(row)
    (src / "c.jsonl").write_text("\n".join(lines) + "\n")
    local = _build([src], tmp_path / "local", workers=1)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    def callers_handler(signum, frame):  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, callers_handler)
    try:
        remote = _build([src], tmp_path / "ray", workers=2, engine="ray")
        assert signal.getsignal(signal.SIGTERM) is callers_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert local.reject_reasons == remote.reject_reasons == {"duplicate_id:impression_id": 1, "not_binary:click": 1, "missing:query_id": 1}
    assert _everything(tmp_path / "local") == _everything(tmp_path / "ray")


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ray_address_where_nothing_listens_is_refused_in_one_line_at_once(messy, tmp_path, capsys):
    """ray.init retries a dead address for minutes; the build refuses it before calling Ray."""
    pytest.importorskip("ray.data")
    address = f"127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    code = main(["build", str(messy), "--out", str(tmp_path / "r"), "--version", "1.0.0", "--quiet",
                 "--test-start-day", TSD.isoformat(), "--engine", "ray", "--ray-address", address])
    err = capsys.readouterr().err
    assert code == 2
    assert time.perf_counter() - t0 < 30
    assert f"--ray-address {address}: nothing accepts connections" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_ray_address_check_names_an_unknown_host_and_lets_a_listening_one_and_auto_through():
    from genco_data.build.engines.ray_engine import check_reachable

    with pytest.raises(BuildError, match=r"unknown host 'no-such-host\.invalid'"):
        check_reachable("no-such-host.invalid:6379")
    with pytest.raises(BuildError, match="nothing accepts connections at 127.0.0.1"):
        check_reachable(f"ray://127.0.0.1:{_closed_port()}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # accepts: no error
        check_reachable(f"ray://127.0.0.1:{port}")
    for left_to_ray in ("auto", "local", "headnode"):  # no port: Ray resolves these itself
        check_reachable(left_to_ray)
