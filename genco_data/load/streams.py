"""Who reads what: the units of a stream, every reader's plan per epoch, and the Arrow tables of a plan (torch-free).

A stream is a list of *units* read whole or in part: the row groups of Parquet shards, or contiguous blocks of
``block_rows`` positions of an in-memory table / ``datasets.Dataset``. With ``G`` readers (DDP ranks × DataLoader
workers) one epoch is::

    order      = units in file order, or a permutation from (seed, epoch) when shuffling
    positions  = the rows of `order`, laid end to end: 0 .. N-1   (only `[lo, hi)` of them when `rows` is given)
    reader g   = the contiguous positions [lo + g*n//G, lo + (g+1)*n//G)   (n = hi - lo)
                 or, with `equal`, [lo + g*(n//G), lo + (g+1)*(n//G)): every reader the same n//G rows
    skipping   = `skip` rows of the reader's range are left out at its start (a resumed epoch)

so every row is read by exactly one reader (``equal`` drops fewer than ``G`` rows), a reader touches only the
units its range covers, and a range is whole shards when the shards split evenly. :mod:`genco_data.load.datasets`
pads the tables and shuffles rows within a buffer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.load.padding import REQUIRED_COLUMNS, _check_schema
from genco_data.load.sources import _ArrowRows

#: Columns read dictionary-encoded from Parquet: the category strings (a handful of distinct words) come out as
#: indices into the row group's dictionary, which the vocabulary looks up once per word, instead of being
#: decoded into one string per row and dictionary-encoded again.
_DICTIONARY_COLUMNS = ("category",)
#: Rows per unit of an in-memory source (its shuffling granularity: rows of one block stay together until the buffer).
SHUFFLE_BLOCK = 4096

_Where = Callable[[int], str]


@dataclass(frozen=True)
class Unit:
    """A row group (``file`` >= 0: index into the stream's files, ``index`` the row group) or an in-memory block
    (``file == -1``, ``index`` = its first position); ``rows`` rows."""

    file: int
    index: int
    rows: int


def parquet_units(files: list[Path]) -> list[Unit]:
    """The row groups of ``files`` (schemas checked)."""
    units = []
    for fi, f in enumerate(files):
        pf = pq.ParquetFile(f)
        _check_schema(pf.schema_arrow)
        units += [Unit(fi, g, pf.metadata.row_group(g).num_rows) for g in range(pf.num_row_groups)]
    return units


def memory_units(n_rows: int, block_rows: int = SHUFFLE_BLOCK) -> list[Unit]:
    """Blocks of ``block_rows`` consecutive positions covering ``n_rows``."""
    return [Unit(-1, s, min(block_rows, n_rows - s)) for s in range(0, n_rows, block_rows)]


def reader_plan(
    units: list[Unit], g: int, G: int, *, order: np.ndarray | None = None, rows: tuple[int, int] | None = None,
    equal: bool = False, skip: int = 0,
) -> list[tuple[Unit, int, int]]:
    """``(unit, start, stop)`` slices reader ``g`` of ``G`` reads, in order (module docstring).

    ``order``: unit indices in reading order (None = as listed); ``rows``: only positions ``[lo, hi)``;
    ``equal``: every reader ``n // G`` rows; ``skip``: rows left out at the start of the reader's range."""
    order = np.arange(len(units)) if order is None else order
    total = sum(u.rows for u in units)
    base_lo, base_hi = (0, total) if rows is None else (max(0, rows[0]), min(total, rows[1]))
    n = max(0, base_hi - base_lo)
    if equal:
        lo, hi = base_lo + g * (n // G), base_lo + (g + 1) * (n // G)
    else:
        lo, hi = base_lo + g * n // G, base_lo + (g + 1) * n // G
    lo = min(hi, lo + max(0, skip))
    plan, pos = [], 0
    for ui in order:
        u = units[int(ui)]
        a, b = max(lo, pos), min(hi, pos + u.rows)
        if a < b:
            plan.append((u, a - pos, b - pos))
        pos += u.rows
        if pos >= hi:
            break
    return plan


def reader_rows(units: list[Unit], G: int, *, rows: tuple[int, int] | None = None, equal: bool = False) -> list[int]:
    """Rows each of the ``G`` readers reads in an epoch (without ``skip``)."""
    total = sum(u.rows for u in units)
    lo, hi = (0, total) if rows is None else (max(0, rows[0]), min(total, rows[1]))
    n = max(0, hi - lo)
    return [n // G if equal else (g + 1) * n // G - g * n // G for g in range(G)]


class ParquetTables:
    """Arrow tables of row-group slices of ``files``, ``pad_rows`` rows at a time. One file is open (memory-mapped)
    at a time: the mapped pages of the files already read leave the process, so its resident memory does not grow
    with the split (an epoch reads files in order unless shuffled; a shuffled one reopens a file per unit)."""

    def __init__(self, files: list[Path], pad_rows: int) -> None:
        self.files, self.pad_rows = files, pad_rows
        self._open: tuple[int, pq.ParquetFile] | None = None

    def _file(self, fi: int) -> pq.ParquetFile:
        if self._open is None or self._open[0] != fi:
            if self._open is not None:
                self._open[1].close()
            self._open = (fi, pq.ParquetFile(self.files[fi], memory_map=True, read_dictionary=_DICTIONARY_COLUMNS))
        return self._open[1]

    def tables(self, u: Unit, a: int, b: int) -> Iterator[tuple[pa.Table, _Where]]:
        pf = self._file(u.file)
        t = pf.read_row_group(u.index, columns=list(REQUIRED_COLUMNS), use_threads=False)
        first, name = sum(pf.metadata.row_group(i).num_rows for i in range(u.index)), self.files[u.file].name
        for s in range(a, b, self.pad_rows):
            e = min(b, s + self.pad_rows)
            yield t.slice(s, e - s), (lambda i, base=first + s: f"{name} row {base + i}")


def memory_tables(rows: _ArrowRows, u: Unit, a: int, b: int, pad_rows: int) -> Iterator[tuple[pa.Table, _Where]]:
    """Arrow tables of positions ``[u.index + a, u.index + b)`` of an in-memory source (zero-copy slices when its
    rows are contiguous, a take otherwise), ``pad_rows`` at a time."""
    for s in range(u.index + a, u.index + b, pad_rows):
        e = min(u.index + b, s + pad_rows)
        yield rows.rows(np.arange(s, e, dtype=np.int64)), (lambda i, base=s: f"dataset row {base + i}")


__all__ = ["SHUFFLE_BLOCK", "Unit", "parquet_units", "memory_units", "reader_plan", "reader_rows", "ParquetTables", "memory_tables"]
