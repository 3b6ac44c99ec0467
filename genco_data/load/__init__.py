"""Releases -> torch: every component padded to 15 candidates, vocabularies, a typed ``Batch``, datasets.

    datasets.py   Batch, padding, Vocabularies, MapDataset, ShardedBatchSampler, StreamingDataset, loader

Names are imported on first use, so ``import genco_data.load`` does not import torch.
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    n: "genco_data.load.datasets"
    for n in (
        "SEGMENTS_PAD_TO", "PAD_INDEX", "OOV_INDEX", "FIRST_INDEX", "VOCAB_NAMES", "HASHABLE_NAMES", "REQUIRED_COLUMNS",
        "TENSOR_FIELDS", "Batch", "Vocabularies", "pad_table", "parquet_files", "MapDataset", "ShardedBatchSampler",
        "StreamingDataset", "BatchLoader", "loader", "_searchsorted_lookup",
    )
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = [n for n in _EXPORTS if not n.startswith("_")]
