"""HF-native paths: DataLoader(MapDataset(...), batch_size=k), a plain DataLoader over an HF Dataset with RowCollate,
block shuffling of an HF Dataset, and split_dataset_by_node on a streamed multi-shard release (whole shards)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
from torch.utils.data import DataLoader  # noqa: E402

from genco_data import load as td  # noqa: E402
from genco_data.errors import InvalidInputError  # noqa: E402
from genco_data.release import Release  # noqa: E402
from test_torch_data import check_against_reference, make_table  # noqa: E402


@pytest.fixture(scope="module")
def table() -> pa.Table:
    t = make_table(300, seed=11)
    big = [None if v is None else v + 2**62 for v in t["query_id"].to_pylist()]  # 62-bit ids must stay exact
    return t.set_column(t.schema.get_field_index("query_id"), "query_id", pa.array(big, pa.int64()))


@pytest.fixture(scope="module")
def vocabs(table) -> td.Vocabularies:
    return td.Vocabularies.build(table)


def test_plain_dataloader_over_map_dataset_with_batch_size(table, vocabs):
    ds = td.MapDataset(table, vocabs)
    batches = list(DataLoader(ds, batch_size=64))  # no collate_fn: Batch joins torch's default_collate
    assert [len(b) for b in batches] == [64, 64, 64, 64, 44] and all(isinstance(b, td.Batch) for b in batches)
    check_against_reference(table, td.concat_batches(batches), vocabs)
    seen = [x for b in DataLoader(ds, batch_size=50, shuffle=True, num_workers=2) for x in b.impression_id.to_pylist()]
    assert sorted(seen) == sorted(table["impression_id"].to_pylist()) and seen != table["impression_id"].to_pylist()
    one = ds[7]
    assert len(one) == 1 and one[0].impression_id.to_pylist() == one.impression_id.to_pylist()
    with pytest.raises(IndexError):
        one[1]


def test_row_collate_over_an_hf_dataset_is_exact(table, vocabs):
    hf = datasets.Dataset(table)
    batches = list(DataLoader(hf, batch_size=128, collate_fn=td.RowCollate(vocabs)))
    got = td.concat_batches(batches)
    check_against_reference(table, got, vocabs)
    want = td.pad_table(table, vocabs)
    assert all(torch.equal(getattr(got, k), getattr(want, k)) for k in td.TENSOR_FIELDS)
    rows = [hf.with_format("torch", columns=list(td.REQUIRED_COLUMNS))[i] for i in range(3)]  # ("day" cannot be a tensor)
    with pytest.raises(InvalidInputError, match="loses 62-bit ids") as err:
        td.RowCollate(vocabs)(rows)
    assert "\n" not in str(err.value)


def test_hf_dataset_block_shuffle_every_row_once_deterministic(table, vocabs):
    hf = datasets.Dataset(pa.concat_tables([table, make_table(500, seed=12)]))
    want = sorted(hf["impression_id"])

    kw = dict(batch_size=32, shuffle=True, seed=4, vocabs=vocabs, shuffle_block=40, shuffle_buffer=120)

    def epoch(e: int) -> list[list[str]]:  # 4 readers in-process = 2 ranks x 2 workers (reader g = rank * 2 + worker)
        out = []
        for g in range(4):
            dl = td.loader(hf, rank=g, world_size=4, **kw)
            dl.set_epoch(e)
            out.append([x for b in dl for x in b.impression_id.to_pylist()])
        return [out[0] + out[1], out[2] + out[3]]

    first = epoch(0)
    assert sorted(first[0] + first[1]) == want  # every row once across 2 ranks x 2 workers
    assert epoch(0) == first and epoch(1) != first  # deterministic given (seed, epoch)
    workers = td.loader(hf, rank=1, world_size=2, num_workers=2, **kw)  # the real thing: DataLoader worker processes
    assert sorted(x for b in workers for x in b.impression_id.to_pylist()) == sorted(first[1])
    assert first[0] + first[1] != hf["impression_id"]
    # randomness within the buffer: a batch mixes rows of several blocks
    block_of = {x: i // 40 for i, x in enumerate(hf["impression_id"])}
    assert max(len({block_of[x] for x in first[0][s : s + 32]}) for s in range(0, 96, 32)) > 1


@pytest.fixture(scope="module")
def sharded_release(tmp_path_factory):
    from genco_data import BuildConfig, build_release
    from genco_data.synth import SynthConfig, simulate

    base = tmp_path_factory.mktemp("sharded")
    simulate(SynthConfig(train_rows=2_000, test_rows=400, seed=5), base / "raw", progress=False)
    build_release(BuildConfig(sources=[base / "raw"], out=base / "rel", version="1.0.0", rows_per_shard=500), progress=False)
    return base / "rel"


def test_split_dataset_by_node_on_a_streamed_release_gives_whole_shards(sharded_release):
    from datasets.distributed import split_dataset_by_node

    files = Release.open(sharded_release).data_files("impressions", "train")
    assert len(files) == 4  # n_shards % world_size == 0
    shard_ids = [pq.read_table(f, columns=["impression_id"])["impression_id"].to_pylist() for f in files]
    stream = datasets.load_dataset(str(sharded_release), split="train", streaming=True)
    assert stream.num_shards == 4
    per_rank = []
    for rank in range(2):
        part = split_dataset_by_node(stream, rank=rank, world_size=2)
        ids = [r["impression_id"] for r in part.select_columns(["impression_id"])]
        per_rank.append(ids)
        ours = [x for b in td.StreamingDataset(stream, "hashed", batch_size=128, rank=rank, world_size=2) for x in b.impression_id.to_pylist()]
        assert ours == ids  # the adapter splits the stream the same way
    for ids in per_rank:  # each rank: exactly the rows of whole shard files
        whole = [k for k, s in enumerate(shard_ids) if set(s) <= set(ids)]
        assert sorted(ids) == sorted(x for k in whole for x in shard_ids[k]) and len(whole) == 2
    assert not set(per_rank[0]) & set(per_rank[1])


def _reference_shuffle(ds: td.StreamingDataset, g: int, G: int, epoch: int) -> td.Batch:
    """The documented shuffle, spelled out on the numpy padding path: the reader's blocks (units in the epoch's
    order) laid end to end until a buffer holds >= shuffle_buffer rows, each buffer permuted by
    default_rng([seed, epoch, g, G]).permutation, the rows of all buffers in that order."""
    from genco_data.load.padding import _block_concat, _block_len, _block_take, pad_engine

    with pad_engine("numpy"):
        blocks = list(ds._blocks(g, G, epoch))
    rng, out, pending = np.random.default_rng([ds.seed, epoch, g, G]), [], []
    for i, b in enumerate(blocks):
        pending.append(b)
        if sum(map(_block_len, pending)) >= ds.shuffle_buffer or i == len(blocks) - 1:
            buf = _block_concat(pending)
            out.append(_block_take(buf, rng.permutation(_block_len(buf))))
            pending = []
    return td.concat_batches([td.Batch(impression_id=b["impression_id"], **{k: torch.from_numpy(b[k]) for k in td.TENSOR_FIELDS})
                              for b in out])


@pytest.mark.parametrize("pad_rows", [16384, 16])
def test_shuffled_stream_is_the_documented_shuffle_byte_for_byte_on_the_kernel_path(table, pad_rows, monkeypatch):
    from genco_data.load import shuffle

    made: list = []
    real = shuffle.ShuffleBuffer
    monkeypatch.setattr(shuffle, "ShuffleBuffer", lambda *a: made.append(real(*a)) or made[-1])
    hf = datasets.Dataset(pa.concat_tables([table, make_table(230, seed=13)]))
    hashed = td.Vocabularies.hashed()  # the compiled kernels pad straight into the shuffle buffer
    for G in (1, 3):
        for g in range(G):
            ds = td.StreamingDataset(hf, hashed, batch_size=32, shuffle=True, seed=7, shuffle_block=40, shuffle_buffer=100,
                                     rank=g, world_size=G, pad_rows=pad_rows)
            ds.set_epoch(2)
            batches = list(ds)
            assert [len(b) for b in batches[:-1]] == [32] * (len(batches) - 1) and 0 < len(batches[-1]) <= 32
            got, want = td.concat_batches(batches), _reference_shuffle(ds, g, G, 2)
            assert got.impression_id.equals(want.impression_id)
            for k in td.TENSOR_FIELDS:
                assert torch.equal(getattr(got, k), getattr(want, k)), k
    assert made and all(m.copied_rows == 0 for m in made)  # no block was padded elsewhere and copied


def test_shuffle_buffer_copies_foreign_blocks_and_grows_past_its_capacity(table):
    from genco_data.load.padding import _block_concat, _block_take, _pad_block_numpy
    from genco_data.load.shuffle import ShuffleBuffer

    v = td.Vocabularies.hashed()
    blocks = [_pad_block_numpy(table.slice(s, 70), v) for s in range(0, 210, 70)]
    buf = ShuffleBuffer(1000, 100, 16)  # room for 100 rows: the second block makes it grow
    for b in blocks:
        buf.add(b)
    assert buf.copied_rows == 210 and buf.capacity >= 210 and not buf.full
    got = list(buf.drain(64, np.random.default_rng(5)))
    want = _block_take(_block_concat(blocks), np.random.default_rng(5).permutation(210))
    assert [len(b["click"]) for b in got] == [64, 64, 64, 18] and buf.rows == 0
    for k in td.TENSOR_FIELDS:
        assert np.array_equal(np.concatenate([b[k] for b in got]), want[k]), k
    assert pa.concat_arrays([b["impression_id"] for b in got]).equals(want["impression_id"])
