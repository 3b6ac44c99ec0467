"""Torch adapters: padding/truncation, vocabularies, datasets, sharding, bad input.

Every table is made here with pyarrow in the impressions schema (no dependency on synth/build).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from genco_data import load as td  # noqa: E402
from genco_data.format.arrow import impressions_schema  # noqa: E402
from genco_data.format.components import COMPONENTS, PAD_TO, candidates_col, exposed_col, propensity_col  # noqa: E402
from genco_data.errors import GencoError, InvalidInputError, SchemaError  # noqa: E402
from genco_data.format.records import FileEntry, Manifest, Source  # noqa: E402
from genco_data.release import MANIFEST_NAME, Release, shard_name  # noqa: E402

C = len(COMPONENTS)


# ---------------------------------------------------------------------------------------------
# Tiny data factories
# ---------------------------------------------------------------------------------------------
def make_table(
    n: int,
    seed: int = 0,
    max_pool: int = 22,
    pools: list[list[tuple[int, int | None]]] | None = None,
    prefix: str = "imp",
) -> pa.Table:
    """``n`` rows in the impressions schema. Pool sizes 0..max_pool (so some are truncated), ids unique
    within a pool, drawn from a small id space so that ids repeat across rows. ``pools`` overrides the
    random pools: per row, per component, ``(size, shown index or None)``."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {name: [] for name in impressions_schema().names}
    for i in range(n):
        rows["impression_id"].append(f"{prefix}-{seed}-{i:06d}")
        rows["day"].append(dt.date(2024, 1, 1) + dt.timedelta(days=i % 5))
        rows["logging_policy"].append("production")
        rows["user_id"].append(int(rng.integers(0, 50)) * 7919)
        rows["user_age"].append(None if rng.random() < 0.2 else int(rng.integers(0, 6)))
        rows["user_gender"].append(None if rng.random() < 0.2 else int(rng.integers(0, 2)))
        rows["ad_id"].append(int(rng.integers(0, 30)) * 104729 + 1)
        rows["category"].append(None if rng.random() < 0.1 else ["phone", "clothing", "food"][int(rng.integers(0, 3))])
        rows["query_id"].append(None if rng.random() < 0.3 else int(rng.integers(0, 2**40)))
        rows["query_segments"].append([int(x) for x in rng.integers(0, 40, int(rng.integers(0, 20)))])
        for ci, c in enumerate(COMPONENTS):
            if pools is not None:
                size, shown = pools[i][ci]
            else:
                size = int(rng.integers(0, max_pool + 1)) if rng.random() < 0.8 else 0
                shown = int(rng.integers(0, size)) if size else None
            pool = [int(x) * 1_000_003 + ci for x in rng.choice(200, size=size, replace=False)] if size else []
            rows[candidates_col(c)].append(pool)
            rows[exposed_col(c)].append(shown)
            rows[propensity_col(c)].append(1.0 / size if size else None)
        rows["click"].append(int(rng.random() < 0.2))
    return pa.table(rows, schema=impressions_schema())


def write_release(root: Path, splits: dict[str, pa.Table], shards: int = 2, row_group_size: int = 37) -> Path:
    """A release folder: ``data/impressions/<split>-NNNNN-of-MMMMM.parquet`` + a valid manifest."""
    files, counts = [], {}
    for split, table in splits.items():
        counts[split] = table.num_rows
        bounds = np.linspace(0, table.num_rows, shards + 1).astype(int)
        for k in range(shards):
            rel = f"data/impressions/{shard_name(split, k, shards)}"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.slice(bounds[k], bounds[k + 1] - bounds[k]), path, row_group_size=row_group_size)
            data = path.read_bytes()
            files.append(FileEntry(path=rel, rows=int(bounds[k + 1] - bounds[k]), bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    manifest = Manifest(
        dataset_version="0.0.1",
        created_by="tests",
        source=Source(kind="synthetic"),
        test_start_day=dt.date(2024, 2, 1),
        splits={"impressions": counts},
        rows_in=sum(counts.values()),
        rows_rejected=0,
        files=files,
    )
    (root / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return root


def kept_originals(n: int, shown: int | None) -> list[int]:
    """The truncation rule, written naively: the original indices a pool keeps, in slot order."""
    if n <= PAD_TO or shown is None or shown < PAD_TO:
        return list(range(min(n, PAD_TO)))
    return list(range(PAD_TO - 1)) + [shown]


def check_against_reference(table: pa.Table, batch: td.Batch, vocabs: td.Vocabularies) -> None:
    """Row by row, the batch equals a naive Python padding of the table."""
    rows = table.to_pylist()
    assert len(batch) == len(rows)
    for b, row in enumerate(rows):
        assert batch.impression_id[b].as_py() == row["impression_id"]
        for ci, c in enumerate(COMPONENTS):
            pool, shown = row[candidates_col(c)], row[exposed_col(c)]
            keep = kept_originals(len(pool), shown)
            assert int(batch.n_candidates[b, ci]) == len(pool)
            assert batch.original_index[b, ci].tolist() == keep + [-1] * (PAD_TO - len(keep))
            assert batch.mask[b, ci].tolist() == [True] * len(keep) + [False] * (PAD_TO - len(keep))
            expected = vocabs.lookup(c, np.array([pool[k] for k in keep], dtype=np.int64)).tolist()
            assert batch.candidates[b, ci].tolist() == expected + [0] * (PAD_TO - len(keep))
            if pool:
                assert keep[int(batch.exposed[b, ci])] == shown
                assert batch.propensity[b, ci].item() == pytest.approx(row[propensity_col(c)])
            else:
                assert int(batch.exposed[b, ci]) == -1 and batch.propensity[b, ci].item() == 0.0
        segs = row["query_segments"][: td.SEGMENTS_PAD_TO]
        want = vocabs.lookup("query_segments", np.array(segs, dtype=np.int64)).tolist()
        assert batch.query_segments[b].tolist() == want + [0] * (td.SEGMENTS_PAD_TO - len(segs))
        assert batch.query_segments_mask[b].tolist() == [True] * len(segs) + [False] * (td.SEGMENTS_PAD_TO - len(segs))
        assert batch.click[b].item() == float(row["click"])
        for name in ("user_age", "user_gender", "query_id"):
            if row[name] is None:
                assert int(getattr(batch, name)[b]) == td.PAD_INDEX
            else:
                assert int(getattr(batch, name)[b]) == int(vocabs.lookup(name, np.array([row[name]]))[0])
        cat = row["category"]
        if cat is None:
            assert int(batch.category[b]) == td.PAD_INDEX
        elif vocabs.kind("category") == "exact":
            assert int(batch.category[b]) == vocabs.categories.index(cat) + td.FIRST_INDEX
        else:
            assert int(batch.category[b]) == int(vocabs.lookup_category(pa.array([cat]))[0])


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_table(300, seed=1)


@pytest.fixture(scope="module")
def vocabs(table: pa.Table) -> td.Vocabularies:
    return td.Vocabularies.build(table)


# ---------------------------------------------------------------------------------------------
# Import rule
# ---------------------------------------------------------------------------------------------
def test_import_genco_data_does_not_import_torch():
    code = "import sys, genco_data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensor_fields_are_the_batch_fields_in_order():
    """padding.py (torch-free) spells TENSOR_FIELDS out; it must stay the Batch dataclass's tensor fields."""
    from dataclasses import fields

    assert td.TENSOR_FIELDS == tuple(f.name for f in fields(td.Batch) if f.name != "impression_id")


# ---------------------------------------------------------------------------------------------
# Padding and truncation
# ---------------------------------------------------------------------------------------------
def test_pad_table_matches_naive_padding(table, vocabs):
    batch = td.pad_table(table, vocabs)
    assert batch.candidates.shape == (len(table), C, PAD_TO) and batch.candidates.dtype == torch.int64
    assert batch.mask.dtype == torch.bool and batch.original_index.dtype == torch.int16
    assert batch.exposed.dtype == batch.n_candidates.dtype == torch.int64
    assert batch.propensity.dtype == batch.click.dtype == torch.float32
    assert batch.query_segments.shape == (len(table), td.SEGMENTS_PAD_TO)
    assert (batch.n_candidates > PAD_TO).any() and (batch.exposed == PAD_TO - 1).any()  # truncation exercised
    check_against_reference(table, batch, vocabs)


def test_pad_table_on_chunked_and_sliced_input(table, vocabs):
    chunked = pa.concat_tables([table.slice(0, 100), table.slice(100, 57), table.slice(157)])
    whole = td.pad_table(table, vocabs)
    for part in (chunked, chunked.slice(90, 120), table.to_batches(max_chunksize=64)[1]):
        got = td.pad_table(part, vocabs)
        start = table["impression_id"].to_pylist().index(got.impression_id[0].as_py())
        for name in td.TENSOR_FIELDS:
            assert torch.equal(getattr(got, name), getattr(whole, name)[start : start + len(got)]), name


def test_pad_table_empty_table(vocabs):
    batch = td.pad_table(make_table(0), vocabs)
    assert len(batch) == 0 and batch.candidates.shape == (0, C, PAD_TO)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.integers(0, 40).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, max(n - 1, 0)))), min_size=C, max_size=C),
        min_size=1,
        max_size=12,
    )
)
def test_truncation_property(raw):
    """For random pools (0..40 candidates, shown index anywhere) padding never loses the shown element,
    original_index maps every slot back to the right id, mask/padding agree, n_candidates = full size."""
    pools = [[(n, (e if n else None)) for n, e in row] for row in raw]
    table = make_table(len(pools), seed=len(pools), pools=pools)
    vocabs = td.Vocabularies.build(table)
    batch = td.pad_table(table, vocabs)
    rows = table.to_pylist()
    for b, row in enumerate(rows):
        for ci, c in enumerate(COMPONENTS):
            pool, shown = row[candidates_col(c)], row[exposed_col(c)]
            n = len(pool)
            orig = batch.original_index[b, ci]
            mask = batch.mask[b, ci]
            assert int(batch.n_candidates[b, ci]) == n
            assert int(mask.sum()) == min(n, PAD_TO)
            assert torch.equal(mask, orig >= 0) and torch.equal(mask, batch.candidates[b, ci] != 0)
            kept = orig[mask].tolist()
            assert kept == sorted(set(kept)) and all(0 <= k < n for k in kept)  # original order, no repeats
            ids = vocabs.lookup(c, np.array([pool[k] for k in kept], dtype=np.int64)).tolist()
            assert batch.candidates[b, ci][mask].tolist() == ids  # every slot maps back to its id
            if n:
                slot = int(batch.exposed[b, ci])
                assert 0 <= slot < min(n, PAD_TO) and int(orig[slot]) == shown  # shown element kept
                if n > PAD_TO:
                    assert kept[: PAD_TO - 1] == list(range(PAD_TO - 1))  # the first 14 others
            else:
                assert int(batch.exposed[b, ci]) == -1


def test_original_choice_maps_slots_back(table, vocabs):
    batch = td.pad_table(table, vocabs)
    orig = batch.original_choice(batch.exposed.clamp(min=0))
    want = torch.tensor([[-1 if r[exposed_col(c)] is None else r[exposed_col(c)] for c in COMPONENTS] for r in table.to_pylist()])
    assert torch.equal(orig, want)
    bad = batch.exposed.clamp(min=0).clone()
    row = int((batch.n_candidates[:, 2] == 1).nonzero()[0])
    bad[row, 2] = 5  # padding slot of a one-candidate pool
    with pytest.raises(InvalidInputError, match="padding"):
        batch.original_choice(bad)


def test_batch_slicing_to_and_pin_memory(table, vocabs):
    batch = td.pad_table(table, vocabs)
    part = batch[10:20]
    assert len(part) == 10 and part.impression_id.to_pylist() == table["impression_id"].to_pylist()[10:20]
    picked = batch[np.array([3, 1])]
    assert torch.equal(picked.candidates, batch.candidates[[3, 1]])
    moved = batch.to("cpu", non_blocking=True)
    assert torch.equal(moved.candidates, batch.candidates)
    if torch.cuda.is_available():  # pragma: no cover - CPU CI
        pinned = batch.pin_memory()
        assert pinned.candidates.is_pinned()
        assert batch.to("cuda", non_blocking=True).candidates.device.type == "cuda"


# ---------------------------------------------------------------------------------------------
# Bad input: a GencoError naming the row and the column
# ---------------------------------------------------------------------------------------------
def _set(table: pa.Table, column: str, row: int, value) -> pa.Table:
    values = table[column].to_pylist()
    values[row] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, type=table.schema.field(column).type))


def _pool_row(table: pa.Table, comp: str, nonempty: bool) -> int:
    sizes = [len(p) for p in table[candidates_col(comp)].to_pylist()]
    return next(i for i, s in enumerate(sizes) if (s > 0) == nonempty)


BAD_INPUT = [
    # (mutation, error, message pattern)
    (lambda t: _set(t, exposed_col("title"), _pool_row(t, "title", True), 999), InvalidInputError, r"'title_exposed' is 999 for a pool of"),
    (lambda t: _set(t, exposed_col("image"), _pool_row(t, "image", True), None), InvalidInputError, r"'image_exposed' is None"),
    (lambda t: _set(t, exposed_col("marketing"), _pool_row(t, "marketing", False), 0), InvalidInputError, r"'marketing_exposed' is 0 for a pool of 0"),
    (lambda t: _set(t, exposed_col("attribute"), _pool_row(t, "attribute", True), -1), InvalidInputError, r"'attribute_exposed' is -1"),
    (lambda t: _set(t, propensity_col("highlight"), _pool_row(t, "highlight", True), None), InvalidInputError, r"'highlight_propensity' is None"),
    (lambda t: _set(t, propensity_col("highlight"), _pool_row(t, "highlight", True), float("nan")), InvalidInputError, r"'highlight_propensity' is nan"),
    (lambda t: _set(t, "click", 4, 2), InvalidInputError, r"'click' is 2"),
    (lambda t: t.drop_columns([exposed_col("structure_attribute")]), SchemaError, r"missing column.*structure_attribute_exposed"),
    (lambda t: t.set_column(t.schema.get_field_index("title_candidates"), "title_candidates", pa.array([str(x) for x in t["title_candidates"].to_pylist()])), SchemaError, r"'title_candidates': expected list<int64>"),
]


@pytest.mark.parametrize("mutate, error, pattern", BAD_INPUT)
def test_bad_rows_raise_a_clear_error(mutate, error, pattern):
    good = make_table(40, seed=3)
    vocabs = td.Vocabularies.build(good)
    bad = mutate(good)
    with pytest.raises(error, match=pattern) as info:
        td.pad_table(bad, vocabs)
    assert isinstance(info.value, GencoError)
    if error is InvalidInputError:
        assert "impression_id 'imp-3-" in str(info.value) and "row " in str(info.value)


def test_bad_row_through_a_dataloader_names_the_dataset_row():
    good = make_table(40, seed=3)
    row = _pool_row(good, "title", True)
    bad = _set(good, exposed_col("title"), row, 500)
    dl = td.loader(bad, batch_size=16, vocabs=td.Vocabularies.build(good))
    with pytest.raises(InvalidInputError, match=rf"dataset row {row} \(impression_id 'imp-3-{row:06d}'\): column 'title_exposed'"):
        list(dl)


# ---------------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------------
def test_vocabularies_indices_sizes_and_oov(table, vocabs):
    ids = np.unique(np.concatenate([np.asarray(p, dtype=np.int64) for p in table["title_candidates"].to_pylist() if p]))
    assert vocabs.size("title") == len(ids) + 2
    assert vocabs.lookup("title", ids).tolist() == list(range(2, len(ids) + 2))  # increasing id order
    assert vocabs.lookup("title", np.array([-5, 123456789123])).tolist() == [td.OOV_INDEX] * 2
    assert vocabs.size("category") == 3 + 2 and set(vocabs.sizes()) == set(td.VOCAB_NAMES)
    with pytest.raises(KeyError):
        vocabs.size("nope")


def test_vocabularies_save_load_without_pickle(tmp_path, vocabs):
    path = vocabs.save(tmp_path / "vocab.npz")
    with np.load(path, allow_pickle=False) as z:  # readable without pickle
        assert "keys.title" in z.files
    again = td.Vocabularies.load(path)
    assert again == vocabs and again.sizes() == vocabs.sizes() and again.categories == vocabs.categories
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidInputError, match="not a vocabularies file"):
        td.Vocabularies.load(tmp_path / "junk.npz")


def test_vocabularies_hashing_trick(tmp_path, table):
    hashed = td.Vocabularies.build(table, hash_buckets=97)
    assert hashed.size("title") == hashed.size("user_id") == 99
    assert hashed.size("category") == 5  # never hashed
    idx = hashed.lookup("ad_id", np.arange(-1000, 1000))
    assert idx.min() >= 2 and idx.max() <= 98 and len(np.unique(idx)) > 80
    again = td.Vocabularies.load(hashed.save(tmp_path / "h.npz"))
    assert np.array_equal(again.lookup("ad_id", np.arange(50)), hashed.lookup("ad_id", np.arange(50)))
    batch = td.pad_table(table, hashed)
    assert int(batch.candidates.max()) <= 98
    with pytest.raises(ValueError, match="cannot be hashed"):
        td.Vocabularies.build(table, hash_buckets={"category": 10})


def test_vocabularies_same_from_every_source(tmp_path, table, vocabs):
    release = write_release(tmp_path / "rel", {"train": table})
    hf = datasets.Dataset(table)
    assert td.Vocabularies.build(table, block_rows=7) == vocabs  # streamed in small blocks
    assert td.Vocabularies.build(release) == vocabs
    assert td.Vocabularies.build(hf) == vocabs
    assert td.Vocabularies.build(hf.select(range(10))) != vocabs  # honours the indices mapping
    lookup = td._searchsorted_lookup(vocabs.keys["title"], np.array([vocabs.keys["title"][3], 17]))
    assert lookup.tolist() == vocabs.lookup("title", np.array([vocabs.keys["title"][3], 17])).tolist()


# ---------------------------------------------------------------------------------------------
# Map-style dataset
# ---------------------------------------------------------------------------------------------
def test_map_dataset_fetches_whole_batches(table, vocabs, monkeypatch):
    ds = td.MapDataset(table, vocabs)
    monkeypatch.setattr(td.MapDataset, "__getitem__", lambda self, i: pytest.fail("row-by-row access"))
    dl = DataLoader(ds, batch_sampler=td.ShardedBatchSampler(len(ds), 64), collate_fn=lambda b: b)
    batches = list(dl)
    assert [len(b) for b in batches] == [64, 64, 64, 64, 44]
    assert sum((b.impression_id.to_pylist() for b in batches), []) == table["impression_id"].to_pylist()


def test_map_dataset_random_rows_of_a_chunked_table(table, vocabs):
    chunked = pa.concat_tables([table.slice(0, 70), table.slice(70, 130), table.slice(200)])
    ds = td.MapDataset(chunked, vocabs)
    keys = np.random.default_rng(0).permutation(len(table))[:90]
    got = ds.__getitems__(keys)
    want = td.pad_table(table.take(pa.array(keys)), vocabs)
    assert got.impression_id.to_pylist() == want.impression_id.to_pylist()
    for name in td.TENSOR_FIELDS:
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert ds.rows(keys).equals(table.take(pa.array(keys)).select(list(td.REQUIRED_COLUMNS)).combine_chunks())


def test_map_dataset_over_hf_dataset_respects_indices(table, vocabs):
    hf = datasets.Dataset(table).shuffle(seed=0).select(range(50, 150))
    ds = td.MapDataset(hf, vocabs)
    assert len(ds) == 100
    batch = ds.__getitems__([0, 5, 99])
    want = [hf[i]["impression_id"] for i in (0, 5, 99)]
    assert batch.impression_id.to_pylist() == want
    sub = pa.Table.from_pylist([hf[i] for i in (0, 5, 99)], schema=table.schema)
    check_against_reference(sub, batch, vocabs)
    assert len(ds[3]) == 1 and ds[-1].impression_id[0].as_py() == hf[99]["impression_id"]
    with pytest.raises(IndexError):
        ds.__getitems__([100])


def test_map_dataset_over_release_folder(tmp_path, table):
    test_table = make_table(40, seed=9, prefix="test")
    release = write_release(tmp_path / "rel", {"train": table, "test": test_table})
    assert Release.open(release).data_files("impressions", "test")
    ds = td.MapDataset(release, split="test", vocabs="exact")
    assert len(ds) == 40
    assert ds.vocabs == td.Vocabularies.build(table)  # exact vocabularies come from the train split
    check_against_reference(test_table, ds.__getitems__(np.arange(40)), ds.vocabs)
    default = td.MapDataset(release, split="test")  # the default: hashed, sized by the manifest, nothing read
    assert default.vocabs.mode == "hashed" and default.vocabs == td.Vocabularies.for_release(release)
    check_against_reference(test_table, default.__getitems__(np.arange(40)), default.vocabs)


def test_loader_from_load_dataset(tmp_path, table):
    path = tmp_path / "train.parquet"
    pq.write_table(table, path)
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert td.loader(ds, batch_size=128).vocabs == td.Vocabularies.hashed()  # default: hashed, no pass over ds
    dl = td.loader(ds, batch_size=128, vocabs="exact")
    assert dl.vocabs == td.Vocabularies.build(table)  # built from ds
    batches = list(dl)
    assert [len(b) for b in batches] == [128, 128, 44]
    check_against_reference(table, td.Batch(**{
        "impression_id": pa.concat_arrays([b.impression_id for b in batches]),
        **{k: torch.cat([getattr(b, k) for b in batches]) for k in td.TENSOR_FIELDS},
    }), dl.vocabs)
    with pytest.raises(TypeError, match="one split"):
        td.loader(datasets.DatasetDict({"train": ds}))


def test_map_loader_two_ranks_two_workers_exactly_once(table, vocabs):
    seen = []
    for rank in range(2):
        dl = td.loader(table, batch_size=32, shuffle=True, seed=5, num_workers=2, vocabs=vocabs, rank=rank, world_size=2)
        dl.set_epoch(3)
        seen += [x for b in dl for x in b.impression_id.to_pylist()]
    assert sorted(seen) == sorted(table["impression_id"].to_pylist())


def test_sharded_batch_sampler_drop_last_equal_steps():
    lens = [len(td.ShardedBatchSampler(101, 10, rank=r, world_size=3, drop_last=True)) for r in range(3)]
    assert lens == [3, 3, 3]
    s = td.ShardedBatchSampler(10, 4, shuffle=True, seed=1)
    first = [b.tolist() for b in s]
    s.set_epoch(1)
    assert [b.tolist() for b in s] != first and sorted(sum(first, [])) == list(range(10))


# ---------------------------------------------------------------------------------------------
# Iterable dataset: sharding over ranks × workers, determinism, cache
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def release(tmp_path_factory, table) -> Path:
    big = pa.concat_tables([table, make_table(250, seed=2)])
    return write_release(tmp_path_factory.mktemp("rel"), {"train": big}, shards=3, row_group_size=37)


def _epoch_ids(source, vocabs, epoch: int, *, workers: int = 2, seed: int = 7, shuffle: bool = True, **kw) -> list[list[str]]:
    """Ids per rank (2 ranks × ``workers`` DataLoader workers), in delivery order."""
    out = []
    for rank in range(2):
        dl = td.loader(source, batch_size=16, shuffle=shuffle, seed=seed, num_workers=workers, vocabs=vocabs,
                       rank=rank, world_size=2, shuffle_buffer=50, **kw)
        dl.set_epoch(epoch)
        out.append([x for b in dl for x in b.impression_id.to_pylist()])
    return out


def test_iterable_two_ranks_two_workers_every_row_once_deterministic(release, vocabs):
    all_ids = pq.read_table(Release.open(release).data_files("impressions", "train"), columns=["impression_id"])
    want = sorted(all_ids["impression_id"].to_pylist())
    epoch0 = _epoch_ids(release, vocabs, 0)
    assert sorted(epoch0[0] + epoch0[1]) == want  # every row exactly once across 2 ranks × 2 workers
    assert abs(len(epoch0[0]) - len(epoch0[1])) <= 2
    assert _epoch_ids(release, vocabs, 0) == epoch0  # deterministic given (seed, epoch)
    epoch1 = _epoch_ids(release, vocabs, 1)
    assert sorted(epoch1[0] + epoch1[1]) == want and epoch1 != epoch0  # another epoch, another order
    plain = _epoch_ids(release, vocabs, 0, shuffle=False, workers=0)
    assert plain[0] + plain[1] == all_ids["impression_id"].to_pylist()  # unshuffled: file order


def test_iterable_drop_last_gives_equal_steps(release, vocabs):
    steps = []
    for g in range(4):  # 2 ranks × 2 workers, simulated in-process
        ds = td.StreamingDataset(release, vocabs, batch_size=16, drop_last=True, rank=g, world_size=4)
        steps.append(len(list(ds)))
    assert len(set(steps)) == 1


def test_iterable_hf_streaming_two_ranks_two_workers(tmp_path, release, vocabs):
    files = [str(f) for f in Release.open(release).data_files("impressions", "train")]
    stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    want = sorted(pq.read_table(files, columns=["impression_id"])["impression_id"].to_pylist())
    ids = _epoch_ids(stream, vocabs, 0, shuffle=False)
    assert sorted(ids[0] + ids[1]) == want
    assert _epoch_ids(stream, vocabs, 0, shuffle=False) == ids


def test_iterable_matches_map_style_and_cache(tmp_path, release, vocabs):
    files = Release.open(release).data_files("impressions", "train")
    whole = td.pad_table(pq.read_table(files), vocabs)
    for cache_dir in (None, tmp_path / "cache"):
        ds = td.StreamingDataset(release, vocabs, batch_size=64, cache_dir=cache_dir)
        for _ in range(2):  # second pass reads the cache when there is one
            got = list(ds)
            for name in td.TENSOR_FIELDS:
                assert torch.equal(torch.cat([getattr(b, name) for b in got]), getattr(whole, name)), name
            assert sum((b.impression_id.to_pylist() for b in got), []) == whole.impression_id.to_pylist()
    units = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(units) == sum(pq.ParquetFile(f).num_row_groups for f in files) and not any(".tmp-" in u for u in units)


def test_iterable_bad_row_names_file_and_row(tmp_path):
    good = make_table(30, seed=4)
    row = _pool_row(good, "title", True)
    path = tmp_path / "bad.parquet"
    pq.write_table(_set(good, exposed_col("title"), row, 77), path)
    ds = td.StreamingDataset(path, td.Vocabularies.build(good), batch_size=8)
    with pytest.raises(InvalidInputError, match=rf"bad.parquet row {row} \(impression_id 'imp-4-{row:06d}'\): column 'title_exposed' is 77"):
        list(ds)
    with pytest.raises(SchemaError, match="missing column"):
        pq.write_table(good.drop_columns(["click"]), tmp_path / "noclick.parquet")
        td.StreamingDataset(tmp_path / "noclick.parquet", td.Vocabularies.build(good))


def test_set_epoch_reaches_persistent_workers(release, vocabs):
    def ids(dl):
        return [x for b in dl for x in b.impression_id.to_pylist()]

    kw = dict(batch_size=16, shuffle=True, seed=3, vocabs=vocabs, shuffle_buffer=40)
    persistent = td.loader(release, num_workers=1, persistent_workers=True, **kw)
    first = ids(persistent)
    persistent.set_epoch(1)
    fresh = td.loader(release, **kw)
    fresh.set_epoch(1)
    assert ids(persistent) == ids(fresh) != first
