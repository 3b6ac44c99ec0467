"""genco_data.build: the release layout, every row kept, ordering, determinism, atomicity, the CLI verbs."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from factories import TSD, make_impressions, set_cells, write_csv, write_jsonl, write_parquet, write_world
from genco_data.format.arrow import impressions_schema
from genco_data import BuildConfig, build_release
from genco_data.build import row_bytes
from genco_data.cli import main
from genco_data.format.components import UNIFORM
from genco_data.errors import BuildError, InvalidInputError, SchemaError
from genco_data.release import Release, verify_release

EXTRA = ["reason", "source_file", "source_row"]


def _build(sources, out, **kw) -> object:
    kw.setdefault("version", "1.0.0")
    kw.setdefault("rows_per_shard", 700)
    kw.setdefault("row_group_rows", 200)
    kw.setdefault("sample_rows", 300)
    return build_release(BuildConfig(sources=[Path(s) for s in sources], out=Path(out), **kw), progress=False)


def _read(release: Path, config: str = "impressions", split: str = "train") -> pa.Table:
    files = Release.open(release).data_files(config, split)
    return pa.concat_tables([pq.read_table(f) for f in files])


def _rejects(release: Path) -> pa.Table:
    files = sorted((release / "rejects").glob("rejects-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive") if files else None


def _data_digests(release: Path) -> dict[str, str]:
    m = json.loads((release / "manifest.json").read_text())
    return {f["path"]: f["sha256"] for f in m["files"] if f["path"].startswith("data/")}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_impressions(3000, seed=11)


@pytest.fixture(scope="module")
def synth_src(tmp_path_factory, table) -> Path:
    """A simulator-like source folder: raw/ with two Parquet parts, world/ with world.json."""
    src = tmp_path_factory.mktemp("src")
    write_parquet(table.slice(0, 1800), src / "raw" / "part-00000.parquet", row_group_size=500)
    write_parquet(table.slice(1800), src / "raw" / "part-00001.parquet")
    (src / "raw" / "notes.txt").write_text("ignored: not a data file")
    write_world(src / "world", TSD, seed=7)
    return src


@pytest.fixture(scope="module")
def release(tmp_path_factory, synth_src) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("rel") / "release"
    return out, _build([synth_src], out)


# ---------------------------------------------------------------------------------------- the layout
def test_release_layout_and_splits(release, table):
    out, result = release
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "manifest.json" in names and "README.md" in names
    assert "world/world.json" in names and "world/world.npz" in names
    assert [n for n in names if n.startswith("data/sample/")] == [
        "data/sample/test-00000-of-00001.parquet",
        "data/sample/train-00000-of-00001.parquet",
    ]
    train_shards = [n for n in names if n.startswith("data/impressions/train-")]
    assert train_shards == [f"data/impressions/train-{i:05d}-of-{len(train_shards):05d}.parquet" for i in range(len(train_shards))]
    assert not any(n.startswith("rejects/") for n in names)  # nothing rejected -> no rejects file
    assert not list(out.parent.glob(".release.tmp-*"))

    train, test = _read(out, split="train"), _read(out, split="test")
    assert train.schema.equals(impressions_schema()) and test.schema.equals(impressions_schema())
    days = np.asarray(train.column("day").cast(pa.int32()))
    assert (np.diff(days) >= 0).all()  # chronological
    assert max(train.column("day").to_pylist()) < TSD <= min(test.column("day").to_pylist())
    assert set(test.column("logging_policy").to_pylist()) == {UNIFORM}
    assert pa.concat_tables([train, test]).equals(table)  # chronological input: same rows, same order
    assert result.ordering == "stream" and result.synthetic and result.rows_rejected == 0
    assert result.splits["impressions"] == {"train": train.num_rows, "test": test.num_rows}
    assert result.rows_in == 3000


def test_manifest_records_provenance_and_every_file(release, synth_src):
    out, result = release
    m = Release.open(out).manifest
    assert m.dataset_version == "1.0.0" and m.format_version == "1.0" and m.created_by.startswith("genco-data ")
    assert m.test_start_day == TSD  # read from world/world.json
    assert m.source.kind == "synthetic" and m.source.seed == 7 and m.source.parameters == {"n_ads": 2000}
    raw = sorted((synth_src / "raw").glob("*.parquet"))
    assert [i.path for i in m.source.inputs] == [f"{synth_src.name}/raw/{p.name}" for p in raw]
    assert [i.sha256 for i in m.source.inputs] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in raw]
    assert m.rows_in == m.splits["impressions"]["train"] + m.splits["impressions"]["test"] + m.rows_rejected
    listed = {f.path for f in m.files}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.parts[len(out.parts)] in ("data", "world", "figures", "README.md")}
    assert listed == on_disk
    for f in m.files:
        assert hashlib.sha256((out / f.path).read_bytes()).hexdigest() == f.sha256
        assert (f.rows is not None) == f.path.endswith(".parquet")
    assert m.stats["rows"] == m.splits["impressions"]["train"]
    assert set(m.stats["components"]) == {"title", "image", "marketing", "highlight", "attribute", "structure_attribute"}
    report = verify_release(out)
    assert report["rows"] == 3000 and report["files"] == len(m.files)


def test_parquet_settings(release):
    out, _ = release
    for f in Release.open(out).data_files("impressions", "train"):
        meta = pq.ParquetFile(f).metadata
        assert meta.num_rows <= 700
        assert all(meta.row_group(i).num_rows <= 200 for i in range(meta.num_row_groups))
        col = meta.row_group(0).column(0)
        assert col.compression == "ZSTD"
        assert col.has_offset_index  # page index
        assert meta.row_group(0).sorting_columns[0].column_index == impressions_schema().get_field_index("day")


def test_sample_is_seeded_proportional_and_ordered(release, synth_src, tmp_path):
    out, _ = release
    m = Release.open(out).manifest
    imp, smp = m.splits["impressions"], m.splits["sample"]
    assert smp["train"] + smp["test"] == 300
    assert abs(smp["train"] - round(300 * imp["train"] / (imp["train"] + imp["test"]))) <= 1
    for split in ("train", "test"):
        full, sample = _read(out, split=split), _read(out, "sample", split)
        ids = full.column("impression_id").to_pylist()
        pos = [ids.index(i) for i in sample.column("impression_id").to_pylist()]
        assert pos == sorted(pos)  # split order kept
        assert sample.equals(full.take(pos))
    other = _build([synth_src], tmp_path / "seed1", seed=1)
    assert other.splits["sample"] == m.splits["sample"]
    assert _read(tmp_path / "seed1", "sample").column("impression_id") != _read(out, "sample").column("impression_id")


# ---------------------------------------------------------------------------------- every row is kept
def _broken(table: pa.Table) -> tuple[pa.Table, dict[int, str]]:
    prod = [i for i, p in enumerate(table.column("logging_policy").to_pylist()) if p == "production"]
    test = [i for i, p in enumerate(table.column("logging_policy").to_pylist()) if p == UNIFORM]
    ids = table.column("impression_id").to_pylist()
    cases = {
        prod[1]: ("title_exposed", 60, "exposed_out_of_range:title"),
        prod[2]: ("click", 3, "not_binary:click"),
        prod[3]: ("user_id", -5, "negative_id:user_id"),
        prod[4]: ("image_candidates", [1, 2, 1], "duplicate_candidate:image"),
        prod[5]: ("title_propensity", 0.0, "propensity_out_of_range:title"),
        prod[6]: ("impression_id", ids[prod[0]], "duplicate_id:impression_id"),
        prod[7]: ("logging_policy", "epsilon", "unknown_policy:logging_policy"),
        test[0]: ("logging_policy", "production", "not_uniform_in_test:logging_policy"),
        test[1]: ("ad_id", None, "null:ad_id"),
    }
    bad = table
    for i, (col, val, _) in cases.items():
        bad = set_cells(bad, col, {i: val})
    return bad, {i: reason for i, (_, _, reason) in cases.items()}


def test_broken_rows_go_to_rejects_and_no_row_is_lost(tmp_path, table):
    bad, expected = _broken(table)
    write_parquet(bad, tmp_path / "raw.parquet")
    out = tmp_path / "rel"
    r = _build([tmp_path / "raw.parquet"], out, test_start_day=TSD)
    assert r.rows_rejected == len(expected) and r.rows_in == 3000
    assert sum(r.splits["impressions"].values()) + r.rows_rejected == r.rows_in
    rej = _rejects(out)
    assert dict(zip(rej.column("source_row").to_pylist(), rej.column("reason").to_pylist())) == expected
    assert set(rej.column("source_file").to_pylist()) == {"raw.parquet"}
    # byte-for-byte: the rejected rows are the input rows, original columns and types
    original = pq.read_table(tmp_path / "raw.parquet")
    assert rej.drop_columns(EXTRA).equals(original.take(rej.column("source_row")))
    # together, release + rejects hold every input row exactly once
    kept = pa.concat_tables([_read(out, split="train"), _read(out, split="test")])
    assert kept.num_rows + rej.num_rows == original.num_rows
    good_rows = sorted(set(range(3000)) - set(expected))
    assert kept.equals(original.take(good_rows).cast(impressions_schema()))
    assert r.reject_reasons == {reason: 1 for reason in expected.values()}
    verify_release(out)


def test_csv_and_jsonl_inputs(tmp_path, table, release):
    out_parquet, _ = release
    bad_csv = set_cells(table.slice(0, 1000), "title_exposed", {10: 99})
    write_csv(bad_csv, tmp_path / "a.csv")
    write_jsonl(table.slice(1000, 1000), tmp_path / "b.jsonl")
    write_parquet(table.slice(2000), tmp_path / "c.parquet")
    out = tmp_path / "rel"
    r = _build([tmp_path / "a.csv", tmp_path / "b.jsonl", tmp_path / "c.parquet"], out, test_start_day=TSD)
    assert r.ordering == "stream" and r.rows_rejected == 1  # chronological input keeps its order, whatever the formats
    rej = _rejects(out)
    assert rej.column("reason").to_pylist() == ["exposed_out_of_range:title"]
    # the CSV reject holds the cells as text, exactly as in the file
    raw = pa_csv.read_csv(tmp_path / "a.csv", convert_options=pa_csv.ConvertOptions(
        column_types={c: pa.string() for c in table.column_names}, strings_can_be_null=True, null_values=[""]))
    assert rej.drop_columns(EXTRA).equals(raw.slice(10, 1))
    kept = pa.concat_tables([_read(out, split="train"), _read(out, split="test")])
    keep = [i for i in range(3000) if i != 10]
    assert kept.equals(table.take(keep))
    # the same rows through three formats give the same rows as the Parquet-only release (minus row 10)
    assert _read(out_parquet).take([i for i in range(_read(out_parquet).num_rows) if i != 10]).equals(_read(out))


def test_malformed_csv_cells_reject_their_rows(tmp_path, table):
    write_csv(pa.concat_tables([table.slice(0, 200), table.slice(2800)]), tmp_path / "raw.csv")
    text = (tmp_path / "raw.csv").read_text().splitlines()
    header = text[0].split(",")
    cells = text[5].split(",")
    cells[header.index('"user_id"')] = "12abc"
    text[5] = ",".join(cells)
    (tmp_path / "raw.csv").write_text("\n".join(text) + "\n")
    r = _build([tmp_path / "raw.csv"], tmp_path / "rel", test_start_day=TSD, max_reject_rate=0.01)
    assert r.reject_reasons == {"malformed:user_id": 1}
    assert _rejects(tmp_path / "rel").column("source_row").to_pylist() == [4]  # file line 6 = header + data row 4


def test_unordered_input_is_sorted_stably(tmp_path, table):
    rng = np.random.default_rng(0)
    perm = rng.permutation(table.num_rows)
    shuffled = table.take(perm)
    write_parquet(shuffled.slice(0, 1500), tmp_path / "raw" / "a.parquet")
    write_parquet(shuffled.slice(1500), tmp_path / "raw" / "b.parquet")
    out = tmp_path / "rel"
    r = _build([tmp_path / "raw"], out, test_start_day=TSD, batch_rows=256)
    assert r.ordering == "spill"
    for split in ("train", "test"):
        got = _read(out, split=split)
        days = np.asarray(got.column("day").cast(pa.int32()))
        assert (np.diff(days) >= 0).all()
        # stable: within a day, the input order
        order_in = {i: k for k, i in enumerate(shuffled.column("impression_id").to_pylist())}
        pos = np.array([order_in[i] for i in got.column("impression_id").to_pylist()])
        for d in np.unique(days):
            assert (np.diff(pos[days == d]) > 0).all()
    assert not (out / ".spill").exists()
    verify_release(out)


def test_output_bytes_do_not_depend_on_batches_files_or_ordering_path(tmp_path, table, synth_src, release):
    ref = _data_digests(release[0])
    one = tmp_path / "one-file"
    write_parquet(table, one / "all.parquet")
    write_world(one / "world", TSD, seed=7)
    for name, src, kw in [
        ("batch97", synth_src, {"batch_rows": 97}),
        ("spill", synth_src, {"ordering": "spill", "batch_rows": 1000}),
        ("one-file", one, {}),
    ]:
        _build([src], tmp_path / f"rel-{name}", **kw)
        assert _data_digests(tmp_path / f"rel-{name}") == ref, name


def test_duplicate_ids_across_files(tmp_path, table):
    a, b = table.slice(0, 2000), table.slice(2000)
    ids = a.column("impression_id").to_pylist()
    b = set_cells(b, "impression_id", {k: ids[k] for k in range(5)})
    write_parquet(a, tmp_path / "raw" / "a.parquet")
    write_parquet(b, tmp_path / "raw" / "b.parquet")
    r = _build([tmp_path / "raw"], tmp_path / "rel", test_start_day=TSD)
    assert r.reject_reasons == {"duplicate_id:impression_id": 5}
    rej = _rejects(tmp_path / "rel")
    assert set(rej.column("source_file").to_pylist()) == {"raw/b.parquet"}
    assert rej.column("source_row").to_pylist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------------- failures are atomic
def _nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.glob(f".{out.name}.*") if p.name != f".{out.name}.lock"]  # the writer lock file stays (genco_data.locks)


def test_too_many_rejects_fails_and_writes_nothing(tmp_path, table):
    bad = set_cells(table, "click", {i: 7 for i in range(0, 3000, 50)})  # 2 % bad
    write_parquet(bad, tmp_path / "raw.parquet")
    out = tmp_path / "rel"
    with pytest.raises(BuildError, match=r"60 of 3,000 rows rejected \(2.00 % > --max-reject-rate 1 %\); most common: not_binary:click 60"):
        _build([tmp_path / "raw.parquet"], out, test_start_day=TSD)
    _nothing_left(out)
    r = _build([tmp_path / "raw.parquet"], out, test_start_day=TSD, max_reject_rate=0.05)
    assert r.rows_rejected == 60


def test_no_input_rows_fails(tmp_path):
    write_parquet(make_impressions(0), tmp_path / "empty.parquet")
    with pytest.raises(BuildError, match="no input rows"):
        _build([tmp_path / "empty.parquet"], tmp_path / "rel", test_start_day=TSD)
    _nothing_left(tmp_path / "rel")
    (tmp_path / "none").mkdir()
    with pytest.raises(BuildError, match="no input files"):
        _build([tmp_path / "none"], tmp_path / "rel", test_start_day=TSD)


def _write_bad(kind: str, folder: Path, table: pa.Table) -> Path:
    p = folder / {"csv_quote": "x.csv", "csv_utf8": "x.csv", "jsonl_extra": "x.jsonl", "jsonl_type": "x.jsonl"}.get(kind, "x.parquet")
    if kind == "missing_column":
        write_parquet(table.drop_columns(["category"]), p)
    elif kind == "extra_column":
        write_parquet(table.append_column("extra", pa.array(range(table.num_rows))), p)
    elif kind == "wrong_type":
        write_parquet(table.set_column(table.schema.get_field_index("click"), "click", table.column("click").cast(pa.float64())), p)
    elif kind == "truncated":
        write_parquet(table, p)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif kind == "zero_bytes":
        p.write_bytes(b"")
    elif kind == "csv_quote":
        write_csv(table, p)
        lines = p.read_text().splitlines()
        lines[3] = '"' + lines[3].replace('"', "")  # an opening quote never closed on its line
        p.write_text("\n".join(lines) + "\n")
    elif kind == "csv_utf8":
        write_csv(table, p)
        p.write_bytes(p.read_bytes().replace(b"phone", b"ph\xff\xfene", 1))
    elif kind == "jsonl_extra":
        write_jsonl(table, p)
        p.write_text(p.read_text().replace('{"impression_id"', '{"zzz": 1, "impression_id"', 1))
    elif kind == "jsonl_type":
        write_jsonl(table, p)
        lines = p.read_text().splitlines()
        lines[-1] = lines[-1].replace('"click": 0', '"click": "no"').replace('"click": 1', '"click": "yes"')
        p.write_text("\n".join(lines) + "\n")
    return p


FILE_ERRORS = [
    ("missing_column", SchemaError, r"x\.parquet: missing column 'category'"),
    ("extra_column", SchemaError, r"x\.parquet: unknown column 'extra'"),
    ("wrong_type", SchemaError, r"x\.parquet: column 'click' has type double"),
    ("truncated", InvalidInputError, r"x\.parquet: cannot read as parquet"),
    ("zero_bytes", InvalidInputError, r"x\.parquet: empty file \(0 bytes\)"),
    ("csv_quote", InvalidInputError, r"x\.csv: data row 2, column 'impression_id': a cell spans lines"),
    ("csv_utf8", InvalidInputError, r"x\.csv: cannot read as csv .*UTF8"),
    ("jsonl_extra", SchemaError, r"x\.jsonl: unknown column 'zzz'"),
    ("jsonl_type", InvalidInputError, r"x\.jsonl: cannot read as jsonl .*click"),
]


@pytest.mark.parametrize("kind,error,message", FILE_ERRORS, ids=[k for k, _, _ in FILE_ERRORS])
def test_a_bad_file_refuses_the_build_and_writes_nothing(tmp_path, table, kind, error, message):
    write_parquet(table.slice(0, 100), tmp_path / "src" / "a_good.parquet")
    _write_bad(kind, tmp_path / "src", table.slice(100, 200))
    out = tmp_path / "rel"
    with pytest.raises(error, match=message) as info:
        _build([tmp_path / "src"], out, test_start_day=TSD)
    assert "\n" not in str(info.value)
    _nothing_left(out)


def test_test_start_day_from_config_or_refused(tmp_path, table, synth_src):
    write_parquet(table, tmp_path / "raw.parquet")
    with pytest.raises(BuildError, match="test_start_day required"):
        _build([tmp_path / "raw.parquet"], tmp_path / "rel")
    with pytest.raises(BuildError, match="no test rows: no valid row is on or after test_start_day 2024-04-30"):
        _build([tmp_path / "raw.parquet"], tmp_path / "rel", test_start_day=dt.date(2024, 4, 30), max_reject_rate=1.0)
    with pytest.raises(BuildError, match="no train rows: no valid row is before test_start_day 2024-01-01"):
        _build([tmp_path / "raw.parquet"], tmp_path / "rel", test_start_day=dt.date(2024, 1, 1), max_reject_rate=1.0)
    _nothing_left(tmp_path / "rel")
    r = _build([synth_src], tmp_path / "rel2", test_start_day=TSD + dt.timedelta(days=1), max_reject_rate=1.0)
    # one test day moved into train: its uniform rows are fine there; nothing rejected
    assert r.test_start_day == TSD + dt.timedelta(days=1) and r.rows_rejected == 0


def test_out_exists_overwrite_and_refusals(tmp_path, synth_src):
    out = tmp_path / "rel"
    _build([synth_src], out)
    with pytest.raises(BuildError, match="exists; pass --overwrite"):
        _build([synth_src], out)
    (out / "rejects").mkdir(exist_ok=True)
    (out / "rejects" / "old.parquet").write_bytes(b"x")
    _build([synth_src], out, overwrite=True, version="1.0.1")
    assert Release.open(out).manifest.dataset_version == "1.0.1"
    assert not (out / "rejects" / "old.parquet").exists()
    not_a_release = tmp_path / "home"
    not_a_release.mkdir()
    (not_a_release / "precious.txt").write_text("keep me")
    with pytest.raises(BuildError, match="not a release folder"):
        _build([synth_src], not_a_release, overwrite=True)
    assert (not_a_release / "precious.txt").read_text() == "keep me"
    with pytest.raises(BuildError, match="inside the output folder"):
        _build([out / "data"], out, overwrite=True, test_start_day=TSD)


def test_a_failure_mid_build_leaves_nothing(tmp_path, synth_src, monkeypatch):
    import genco_data.build.writer as b  # row_bytes is looked up by the shard writer

    calls = {"n": 0}
    real = b.row_bytes

    def failing(t):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(t)

    monkeypatch.setattr(b, "row_bytes", failing)
    with pytest.raises(OSError, match="simulated"):
        _build([synth_src], tmp_path / "rel", batch_rows=300)
    _nothing_left(tmp_path / "rel")


def test_a_killed_build_leaves_no_release_and_a_rerun_succeeds(tmp_path, synth_src):
    out = tmp_path / "rel"
    script = (
        "import sys, time, pathlib\n"
        "import genco_data.build.builder as b, genco_data.build.writer as w\n"
        "real = w.row_bytes\n"
        "def slow(t):\n"
        "    time.sleep(0.2)\n"
        "    return real(t)\n"
        "w.row_bytes = slow\n"
        f"b.build_release(b.BuildConfig(sources=[pathlib.Path({str(synth_src)!r})], out=pathlib.Path({str(out)!r}), "
        "version='1.0.0', batch_rows=100, row_group_rows=50), progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not list(tmp_path.glob(".rel.tmp-*/data")):
            time.sleep(0.02)
        assert list(tmp_path.glob(".rel.tmp-*")), "the build never started"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not out.exists()
    assert list(tmp_path.glob(".rel.tmp-*"))  # the killed build's temporary folder
    _build([synth_src], out)
    assert not list(tmp_path.glob(".rel.tmp-*"))  # removed by the rerun: its pid is gone
    verify_release(out)


def test_row_group_and_shard_byte_caps(tmp_path, synth_src, table):
    per_row = row_bytes(table.slice(0, 50))
    assert (per_row > 100).all()
    cap_rg, cap_shard = 20_000, 60_000
    out = tmp_path / "rel"
    _build([synth_src], out, rows_per_shard=10_000, row_group_rows=10_000,
           row_group_max_bytes=cap_rg, shard_max_bytes=cap_shard)
    files = Release.open(out).data_files("impressions", "train")
    assert len(files) > 5
    rows = _read(out)
    sizes = row_bytes(rows)
    start = 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        shard_bytes = 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            g = int(sizes[start:start + n].sum())
            assert g <= cap_rg or n == 1
            shard_bytes += g
            start += n
        assert shard_bytes <= cap_shard
    assert start == rows.num_rows


BAD_CONFIGS = [
    ({"version": "1.0"}, InvalidInputError, "semver"),
    ({"max_reject_rate": 1.5}, InvalidInputError, "max_reject_rate"),
    ({"rows_per_shard": 0}, InvalidInputError, "rows_per_shard"),
    ({"row_group_max_bytes": 200_000_000}, InvalidInputError, "format contract"),
    ({"shard_max_bytes": 10**9}, InvalidInputError, "format contract"),
    ({"sample_rows": 1}, InvalidInputError, "sample_rows"),
    ({"test_start_day": "03/05/2024"}, InvalidInputError, "YYYY-MM-DD"),
    ({"test_start_day": dt.datetime(2024, 3, 5)}, TypeError, "datetime.date"),
    ({"ordering": "sorted"}, InvalidInputError, "ordering"),
    ({"sources": []}, InvalidInputError, "no sources"),
    ({"sources": "raw"}, TypeError, "list of paths"),
]


@pytest.mark.parametrize("change,error,message", BAD_CONFIGS, ids=[next(iter(c)) + "-" + str(i) for i, (c, _, _) in enumerate(BAD_CONFIGS)])
def test_config_is_checked(tmp_path, change, error, message):
    kw = {"sources": [tmp_path], "out": tmp_path / "rel", "version": "1.0.0", **change}
    with pytest.raises(error, match=message):
        BuildConfig(**kw)


def test_config_accepts_an_iso_day():
    cfg = BuildConfig(sources=["a.parquet"], out="rel", version="0.1.0", test_start_day="2024-03-05")
    assert cfg.test_start_day == dt.date(2024, 3, 5) and cfg.out == Path("rel")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_build_verify_stats(tmp_path, synth_src, capsys):
    out = tmp_path / "rel"
    assert main(["build", str(synth_src), "--out", str(out), "--version", "2.0.0", "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"built {out} v2.0.0:") and "0 rejected" in line
    assert main(["verify", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 3000 and report["dataset_version"] == "2.0.0"
    assert main(["stats", str(out), "--split", "test"]) == 0
    text = capsys.readouterr().out
    assert "test split" in text and "structure_attribute" in text
    assert main(["build", str(synth_src), "--out", str(out), "--version", "2.0.1", "--overwrite", "--quiet", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["dataset_version"] == "2.0.1" and d["rows_in"] == 3000


@pytest.mark.parametrize(
    "argv,message",
    [
        (["build", "{tmp}/nope", "--out", "{tmp}/rel", "--version", "1.0.0"], "nope: no such file or folder"),
        (["build", "{src}", "--out", "{tmp}/rel", "--version", "one"], "version must be semver"),
        (["build", "{tmp}/raw.parquet", "--out", "{tmp}/rel", "--version", "1.0.0", "--test-start-day", "2024-03-05",
          "--max-reject-rate", "0.001"], "rows rejected"),
        (["build", "{tmp}/raw.parquet", "--out", "{tmp}/rel", "--version", "1.0.0"], "test_start_day required"),
        (["verify", "{tmp}"], "not a release folder"),
        (["stats", "{tmp}/nope"], "not a release folder"),
    ],
)
def test_cli_unhappy_paths_exit_2_with_one_line(tmp_path, synth_src, table, capsys, argv, message):
    write_parquet(set_cells(table, "click", {0: 5, 1: 5, 2: 5, 3: 5}), tmp_path / "raw.parquet")
    args = [a.format(tmp=tmp_path, src=synth_src) for a in argv]
    assert main(args + (["--quiet"] if args[0] == "build" else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"genco {args[0]}: error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "rel").exists()


# ------------------------------------------------------------------------------------- the simulator
def test_build_from_the_simulator(tmp_path):
    """``genco synth``'s output (raw/ parts + world/) builds as is: every simulated row lands in its split,
    the manifest records the simulator's test start day and seed, and the world travels byte for byte."""
    from genco_data.synth import SynthConfig, simulate

    summary = simulate(SynthConfig(train_rows=4000, test_rows=1000, seed=3), tmp_path / "sim", progress=False)
    r = _build([tmp_path / "sim"], tmp_path / "rel", rows_per_shard=100_000, row_group_rows=10_000)
    assert r.synthetic and r.ordering == "stream" and r.rows_rejected == 0
    assert r.splits["impressions"] == {"train": summary["train_rows"], "test": summary["test_rows"]} == {"train": 4000, "test": 1000}
    m = Release.open(tmp_path / "rel").manifest
    assert m.test_start_day.isoformat() == summary["test_start_day"] and m.source.seed == 3
    raw = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / "sim" / "raw").glob("part-*.parquet"))])
    built = pa.concat_tables([_read(tmp_path / "rel", split="train"), _read(tmp_path / "rel", split="test")])
    assert sorted(built["impression_id"].to_pylist()) == sorted(raw["impression_id"].to_pylist())
    assert pc.sum(built["click"]).as_py() == pc.sum(raw["click"]).as_py()
    for name in ("world.json", "world.npz"):
        assert (tmp_path / "rel" / "world" / name).read_bytes() == (tmp_path / "sim" / "world" / name).read_bytes()
    verify_release(tmp_path / "rel")
