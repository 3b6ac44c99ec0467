"""The train/test rows a reference run reads: a release split as one chronological Arrow table, and the
release's identity (path, version, manifest sha256) that a run records.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.format.components import CONFIGS, SPLITS
from genco_data.errors import InvalidInputError
from genco_data.load import REQUIRED_COLUMNS
from genco_data.release import MANIFEST_NAME, Release, sha256_file

__all__ = ["read_split", "release_identity"]


def read_split(release: Release, split: str, max_rows: int | None = None) -> pa.Table:
    """The ``impressions`` ``split`` as one table (only the columns the adapters read), chronological;
    ``max_rows`` keeps the last (most recent) rows."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}")
    files = release.data_files(CONFIGS[0], split)
    if not files:
        raise InvalidInputError(f"{release.root}: no {split} shards in the manifest")
    table = pa.concat_tables([pq.read_table(f, columns=list(REQUIRED_COLUMNS)) for f in files])
    if max_rows is not None and table.num_rows > max_rows:
        table = table.slice(table.num_rows - max_rows)
    return table.combine_chunks()


def release_identity(release: Release) -> dict[str, Any]:
    return {
        "path": str(release.root),
        "dataset_version": release.manifest.dataset_version,
        "manifest_sha256": sha256_file(release.root / MANIFEST_NAME),
    }
