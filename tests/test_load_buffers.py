"""The compiled path's recycled block buffers (load/buffers.py) and the dictionary-encoded category reads.

A pooled buffer is handed out again only once nothing references it (no batch, tensor or view of its block is
alive); batches that are kept never change; category rows are the same for a string array and its
dictionary-encoded form (what the cold loader reads from Parquet), hashed or exact.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from genco_data import load as td
from genco_data.load import buffers
from genco_data.load.padding import TENSOR_FIELDS, _pad_block_numpy
from tests.factories import make_impressions


def _base(batch: td.Batch) -> int:
    """Address of the batch's first candidate: its block's buffer start for a batch of a block's first rows
    (candidates is the buffer's first field)."""
    return batch.candidates.data_ptr()


def test_a_live_batch_keeps_its_buffer_and_a_dropped_one_is_reused():
    buffers.release()
    v, t = td.Vocabularies.hashed(), make_impressions(300, seed=1)
    first = td.pad_table(t, v)
    ref = {k: getattr(first, k).clone() for k in TENSOR_FIELDS}
    second = td.pad_table(t, v)  # `first` alive: another buffer
    assert _base(first) != _base(second)
    view = first.candidates[:10]  # a view alone keeps the buffer too
    addr = _base(first)
    del first
    third = td.pad_table(make_impressions(300, seed=2), v)
    assert _base(third) != addr and torch.equal(view, ref["candidates"][:10])
    del view, third
    fourth = td.pad_table(t, v)  # nothing references the first buffer any more: reused, and fully rewritten
    assert addr in (_base(fourth), _base(second))
    for k in TENSOR_FIELDS:
        assert torch.equal(getattr(fourth, k), ref[k]), k


def test_take_never_hands_out_a_referenced_buffer_and_fields_are_aligned_views():
    buffers.release()
    a = buffers.take(1000)
    b = buffers.take(1000)
    assert a.base is not b.base
    arrs = buffers.arrays((("x", np.int64, (7, 3)), ("m", np.bool_, (7, 5)), ("o", np.int16, (7, 2))))
    assert {k: (x.dtype, x.shape) for k, x in arrs.items()} == {"x": (np.int64, (7, 3)), "m": (np.bool_, (7, 5)),
                                                               "o": (np.int16, (7, 2))}
    assert all(x.flags.c_contiguous and x.__array_interface__["data"][0] % 64 == 0 for x in arrs.values())
    assert len({x.base.__array_interface__["data"][0] for x in arrs.values()}) == 1
    del a
    c = buffers.take(500)  # a's buffer is free again and large enough
    assert c.base is not b.base


def test_streamed_epoch_with_dropped_batches_equals_the_numpy_path(tmp_path):
    """Batches consumed and dropped (buffers recycled) or kept (not) give the reference bytes."""
    t = make_impressions(3072, seed=3)
    path = tmp_path / "x.parquet"
    pq.write_table(t, path, row_group_size=1024)  # 6 blocks of 512 rows, 2 batches each
    v = td.Vocabularies.hashed(5000)
    ref = _pad_block_numpy(pq.read_table(path), v)
    ds = td.StreamingDataset([path], v, batch_size=256, pad_rows=512, verify=False)
    buffers.release()
    copies, kept, starts = [], [], []
    for i, b in enumerate(ds):
        starts.append(_base(b))
        copies.append({k: getattr(b, k).clone() for k in TENSOR_FIELDS})
        if i == 0:  # kept: its buffer stays out of the pool
            kept.append(b)
    pooled = {buffers._aligned(x, 1).__array_interface__["data"][0] for x in buffers._pool}
    assert len(pooled) <= buffers.KEEP < sum(s in pooled for s in starts)  # 6 blocks, at most 3 buffers: reused
    for k in TENSOR_FIELDS:
        assert torch.cat([c[k] for c in copies]).numpy().tobytes() == ref[k].tobytes(), k
    for b in kept:  # kept batches were never overwritten by later blocks
        i = copies.index(next(c for c in copies if torch.equal(c["candidates"], b.candidates)))
        assert all(torch.equal(getattr(b, k), copies[i][k]) for k in TENSOR_FIELDS)


def test_category_rows_same_for_strings_and_dictionaries():
    t = make_impressions(80, seed=4)
    words = pa.array(["zzz-unknown", None, *t.column("category").to_pylist()[:20], None])
    for v in (td.Vocabularies.hashed(), td.Vocabularies.build(t)):
        plain = v.lookup_category(words)
        enc = words.dictionary_encode()
        np.testing.assert_array_equal(v.lookup_category(enc), plain)
        np.testing.assert_array_equal(v.lookup_category(enc.slice(3, 10)), plain[3:13])
        assert plain[1] == td.PAD_INDEX and plain[-1] == td.PAD_INDEX
    # the cold loader reads category dictionary-encoded; the batches match the plain table's padding
    assert td.OOV_INDEX == td.Vocabularies.build(t).lookup_category(words)[0]
