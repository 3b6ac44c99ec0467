"""The padded on-disk row-group cache of streamed Parquet: cache keys, writing and reading padded units (torch-free).

The first reader of a row group pads it whole and stores it as one ``.npy`` file per tensor field (+
``impression_id.arrow``) under ``cache_dir/<shard>-rg<NNNNN>-<key>/``, the key hashing the file (path, size,
mtime), the row group, the vocabularies and the padding; later epochs copy batches out of the memory-mapped
files instead of decoding Parquet and looking ids up (:class:`~genco_data.load.datasets.StreamingDataset`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from genco_data.load.padding import TENSOR_FIELDS, _as_array, _Block, _block_len, _Lookups, _pad_block

#: Version of the padded-cache layout (part of every cache key).
CACHE_VERSION = 1


def cache_key(f: Path, rg: int, max_segments: int, vocab_fp: str) -> str:
    """Folder name of the padded unit of row group ``rg`` of file ``f`` (``vocab_fp``: the vocabularies' fingerprint)."""
    f = f.resolve()
    st = f.stat()
    ident = f"{CACHE_VERSION}|{f}|{st.st_size}|{st.st_mtime_ns}|{rg}|{max_segments}|{vocab_fp}"
    return f"{f.stem}-rg{rg:05d}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def write_unit(
    unit: Path, rows: int, tables: Iterable[tuple[pa.Table, Callable[[int], str]]], vocabs: _Lookups, max_segments: int
) -> None:
    """Pad a whole row group into ``unit/`` (one .npy per tensor field + impression_id.arrow);
    written under a temporary name and renamed, so concurrent readers never see a partial unit."""
    tmp = unit.with_name(f"{unit.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    tmp.mkdir(parents=True)
    try:
        out: dict[str, np.ndarray] = {}
        ids = []
        for t, where in tables:
            block = _pad_block(t, vocabs, max_segments, where)
            if not out:
                out = {
                    k: np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=v.dtype, shape=(rows, *v.shape[1:]))
                    for k, v in block.items() if k != "impression_id"
                }
                pos = 0
            n = _block_len(block)
            for k, arr in out.items():
                arr[pos : pos + n] = block[k]
            ids.append(block["impression_id"])
            pos += n
        for arr in out.values():
            arr.flush()
        del out
        table = pa.table({"impression_id": pa.concat_arrays(ids)})
        with pa.OSFile(str(tmp / "impression_id.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        os.rename(tmp, unit)
    except OSError:
        if not unit.is_dir():  # a real failure, not a concurrent reader that renamed first
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_unit(unit: Path, a: int, b: int, pad_rows: int, views: bool) -> Iterator[_Block]:
    """Blocks of at most ``pad_rows`` rows ``[a, b)`` of a written ``unit`` (memory-mapped views when
    ``views``, else copies)."""
    arrays = {k: np.load(unit / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in TENSOR_FIELDS}
    with pa.memory_map(str(unit / "impression_id.arrow")) as src:
        ids = _as_array(pa.ipc.open_file(src).read_all().column(0))
    for s in range(a, b, pad_rows):
        e = min(b, s + pad_rows)
        # shuffling gathers rows out of these views anyway; otherwise copy out of the page cache
        block = {k: (v[s:e] if views else np.array(v[s:e])) for k, v in arrays.items()}
        block["impression_id"] = ids.slice(s, e - s)
        yield block


__all__ = ["CACHE_VERSION", "cache_key", "write_unit", "read_unit"]
