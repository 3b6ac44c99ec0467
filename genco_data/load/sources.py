"""What a user may pass: release folders, Parquet path(s), Arrow tables, HF datasets -> Arrow blocks (torch-free).

:func:`parquet_files` finds a source's shards (a release folder through its manifest); :func:`_iter_source_tables`
streams Arrow blocks of any supported source (what :meth:`~genco_data.load.vocab.Vocabularies.build` reads).
HF ``datasets`` objects are recognised by their type's module and name, so nothing here imports ``datasets``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.errors import InvalidInputError
from genco_data.format.components import CONFIGS
from genco_data.load.padding import _check_columns

# ---------------------------------------------------------------------------------------------
# Sources: what a user may pass
# ---------------------------------------------------------------------------------------------
Source = Union[pa.Table, pa.RecordBatch, str, os.PathLike, Sequence[Union[str, os.PathLike]], Any]


class _ArrowRows:
    """Arrow rows by position: the torch-free half of :class:`~genco_data.load.datasets.MapDataset`.

    A subclass sets ``table``, ``_chunks`` (its record batches), ``_starts`` (their cumulative first rows,
    ``len(_chunks) + 1`` values) and ``_indices`` (an int64 indices mapping, or None);
    :func:`_iter_source_tables` reads one through ``len`` and :meth:`rows` without importing torch.
    """

    table: pa.Table
    _chunks: list[pa.RecordBatch]
    _starts: np.ndarray
    _indices: np.ndarray | None

    def __len__(self) -> int:
        return len(self._indices) if self._indices is not None else self.table.num_rows

    def _grouped(self, rows: np.ndarray) -> tuple[pa.Table, np.ndarray | None]:
        """(Arrow rows ``rows`` grouped by chunk, order such that ``grouped[i] = rows[order[i]]``, or None
        when ``grouped`` is already in the requested order)."""
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and bool(np.all(np.diff(rows) == 1)):
            return self.table.slice(int(rows[0]), len(rows)), None  # contiguous: zero copy
        if len(self._chunks) <= 1:
            return self.table.take(pa.array(rows)), None
        chunk = np.searchsorted(self._starts, rows, side="right") - 1
        order = np.argsort(chunk, kind="stable")
        bounds = np.searchsorted(chunk[order], np.arange(len(self._chunks) + 1))
        parts = [
            self._chunks[c].take(pa.array(rows[order[bounds[c] : bounds[c + 1]]] - self._starts[c]))
            for c in range(len(self._chunks))
            if bounds[c + 1] > bounds[c]
        ]
        return pa.Table.from_batches(parts, schema=self.table.schema), order

    def rows(self, keys: np.ndarray) -> pa.Table:
        """Arrow rows at dataset positions ``keys`` (int64, non-negative), indices mapping applied."""
        table, order = self._grouped(self._indices[keys] if self._indices is not None else keys)
        if order is None:
            return table
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return table.take(pa.array(inverse))


def _is_hf_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets.") and type(obj).__name__ == "Dataset"


def _is_hf_iterable(obj: Any) -> bool:
    return type(obj).__module__.startswith("datasets.") and type(obj).__name__ == "IterableDataset"


def _is_pathlike(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def parquet_files(
    source: str | os.PathLike | Sequence[str | os.PathLike], split: str = "train", config: str = CONFIGS[0], *, verify: bool = True
) -> list[Path]:
    """Parquet shards of a release folder's ``config``/``split`` (via its manifest), of a directory of
    ``*.parquet`` files, of one file, or of a list of files — in order.

    ``verify``: a release folder is first checked against its manifest (listing, sizes, sha256 of every
    file; :func:`genco_data.release.verify_checksums`, cached per process so repeated opens only ``stat``)
    and refused with ``IntegrityError`` when corrupted; ``verify=False`` skips that for speed."""
    if _is_pathlike(source):
        p = Path(source)
        if p.is_dir():
            from genco_data.release import MANIFEST_NAME, Release

            if (p / MANIFEST_NAME).is_file():
                files = Release.open(p, verify=verify).data_files(config, split)
            else:
                files = sorted(p.glob("*.parquet"))
            if not files:
                raise InvalidInputError(f"{p}: no Parquet files for config {config!r}, split {split!r}")
            return files
        if not p.is_file():
            raise InvalidInputError(f"{p}: no such file or directory")
        return [p]
    files = [Path(f) for f in source]
    if not files:
        raise InvalidInputError("no Parquet files given")
    return files


def _iter_source_tables(source: Source, columns: list[str], block_rows: int, verify: bool = True) -> Iterator[pa.Table]:
    """Arrow blocks of any supported source, only ``columns``."""
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        table = pa.Table.from_batches([source]) if isinstance(source, pa.RecordBatch) else source
        _check_columns(table.schema, columns)
        for off in range(0, table.num_rows, block_rows):
            yield table.slice(off, block_rows).select(columns)
    elif isinstance(source, _ArrowRows):
        for off in range(0, len(source), block_rows):
            yield source.rows(np.arange(off, min(len(source), off + block_rows))).select(columns)
    elif _is_hf_dataset(source):
        _check_columns(source.data.schema, columns)
        yield from source.select_columns(columns).with_format("arrow").iter(batch_size=block_rows)
    elif _is_hf_iterable(source):
        yield from source.select_columns(columns).with_format("arrow").iter(batch_size=block_rows)
    elif _is_pathlike(source) or isinstance(source, (list, tuple)):
        for f in parquet_files(source, verify=verify):
            pf = pq.ParquetFile(f, memory_map=True)
            _check_columns(pf.schema_arrow, columns)
            for rb in pf.iter_batches(batch_size=block_rows, columns=columns, use_threads=False):
                yield pa.Table.from_batches([rb])
    else:
        raise TypeError(
            "expected a release folder, Parquet path(s), a pyarrow Table, a datasets.Dataset or "
            f"datasets.IterableDataset, got {type(source).__name__}"
        )


__all__ = ["parquet_files"]
