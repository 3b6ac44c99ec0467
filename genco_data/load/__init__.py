"""Releases -> torch: every component padded to 15 candidates, vocabularies, a typed ``Batch``, datasets.

    padding.py    layout constants, the truncation rule, Arrow checks, numpy blocks (torch-free)
    hashing.py    the fixed salted splitmix64 id hash, collision arithmetic, table sizes from a manifest (torch-free)
    vocab.py      Vocabularies: hashed (default), direct and exact id -> row lookups (torch-free)
    sources.py    parquet_files and what else may be passed: release folders, tables, HF datasets (torch-free)
    streams.py    units and every reader's plan per epoch: ranks x workers, row ranges, resume (torch-free)
    cache.py      the padded on-disk row-group cache of streamed Parquet (torch-free)
    batch.py      Batch, pad_table, concat_batches, RowCollate (torch; Batch joins default_collate)
    datasets.py   MapDataset, ShardedBatchSampler, StreamingDataset, BatchLoader, loader (torch)

Names are imported on first use, so ``import genco_data.load`` does not import torch.
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    "SEGMENTS_PAD_TO": "genco_data.load.padding",
    "PAD_INDEX": "genco_data.load.padding",
    "OOV_INDEX": "genco_data.load.padding",
    "FIRST_INDEX": "genco_data.load.padding",
    "VOCAB_NAMES": "genco_data.load.vocab",
    "HASHABLE_NAMES": "genco_data.load.vocab",
    "REQUIRED_COLUMNS": "genco_data.load.padding",
    "TENSOR_FIELDS": "genco_data.load.padding",
    "Batch": "genco_data.load.batch",
    "Vocabularies": "genco_data.load.vocab",
    "VOCAB_MODES": "genco_data.load.vocab",
    "resolve_vocabs": "genco_data.load.vocab",
    "DEFAULT_HASH_SIZE": "genco_data.load.hashing",
    "hash_buckets": "genco_data.load.hashing",
    "expected_collisions": "genco_data.load.hashing",
    "measured_collisions": "genco_data.load.hashing",
    "manifest_hash_sizes": "genco_data.load.hashing",
    "pad_table": "genco_data.load.batch",
    "concat_batches": "genco_data.load.batch",
    "RowCollate": "genco_data.load.batch",
    "parquet_files": "genco_data.load.sources",
    "MapDataset": "genco_data.load.datasets",
    "ShardedBatchSampler": "genco_data.load.datasets",
    "StreamingDataset": "genco_data.load.datasets",
    "BatchLoader": "genco_data.load.datasets",
    "loader": "genco_data.load.datasets",
    "_searchsorted_lookup": "genco_data.load.vocab",
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = [n for n in _EXPORTS if not n.startswith("_")]
