"""The typed torch ``Batch`` of padded impressions, and :func:`pad_table` (Arrow table -> Batch).

With :mod:`genco_data.load.datasets`, the only :mod:`genco_data` module that imports torch (``import
genco_data`` never does). The layout and the truncation rule are in :mod:`genco_data.load.padding`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data._utils.collate import default_collate_fn_map

from genco_data.errors import InvalidInputError
from genco_data.format.arrow import impressions_schema
from genco_data.format.components import COMPONENTS, PAD_TO
from genco_data.load.padding import (
    REQUIRED_COLUMNS,
    SEGMENTS_PAD_TO,
    TENSOR_FIELDS,
    _Block,
    _block_concat,
    _block_len,
    _block_slice,
    _check_schema,
    _pad_block,
)
from genco_data.load.vocab import Vocabularies


@dataclass
class Batch:
    """Padded tensors for ``B`` impressions (layout in :mod:`genco_data.load.padding`).

    Fields, ``C = 6`` components in ``COMPONENTS`` order, ``P = 15``, ``S = 16``:

    - ``impression_id`` — ``pyarrow.StringArray [B]``, not a tensor; ``.to_pylist()`` gives strings and
      ``pa.table({"impression_id": batch.impression_id, ...})`` writes predictions without a copy.
    - ``candidates`` — int64 ``[B, C, P]``: vocabulary index of each kept candidate, ``0`` in padding.
    - ``mask`` — bool ``[B, C, P]``: ``True`` on real candidates (``candidates != 0``).
    - ``original_index`` — int16 ``[B, C, P]``: index of the slot's candidate in the original pool,
      ``-1`` in padding (see the truncation rule).
    - ``exposed`` — int64 ``[B, C]``: slot of the shown element, ``-1`` where the component is absent.
    - ``n_candidates`` — int64 ``[B, C]``: the full pool size before truncation, ``0`` where absent.
    - ``propensity`` — float32 ``[B, C]``: probability the logging policy showed that element;
      ``0.0`` (never NaN) where the component is absent.
    - ``click`` — float32 ``[B]``: ``1.0`` for a click, ``0.0`` otherwise (ready for BCE losses).
    - ``user_id``, ``ad_id``, ``query_id`` — int64 ``[B]``: vocabulary indices (``query_id`` null → 0).
    - ``user_age``, ``user_gender`` — int64 ``[B]``: vocabulary indices of the codes, null → 0.
    - ``category`` — int64 ``[B]``: vocabulary index of the category string, null → 0.
    - ``query_segments`` — int64 ``[B, S]``: vocabulary indices of the first ``S`` segments, 0-padded.
    - ``query_segments_mask`` — bool ``[B, S]``: ``True`` on real segments.
    """

    impression_id: pa.Array
    candidates: torch.Tensor
    mask: torch.Tensor
    original_index: torch.Tensor
    exposed: torch.Tensor
    n_candidates: torch.Tensor
    propensity: torch.Tensor
    click: torch.Tensor
    user_id: torch.Tensor
    ad_id: torch.Tensor
    query_id: torch.Tensor
    user_age: torch.Tensor
    user_gender: torch.Tensor
    category: torch.Tensor
    query_segments: torch.Tensor
    query_segments_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.impression_id)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tensor fields by name (everything but ``impression_id``)."""
        return {name: getattr(self, name) for name in TENSOR_FIELDS}

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Batch":
        return Batch(impression_id=self.impression_id, **{k: fn(v) for k, v in self.tensors().items()})

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """Every tensor moved to ``device`` (``non_blocking=True`` overlaps the copy when pinned)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        """Every tensor in page-locked memory (a ``DataLoader(pin_memory=True)`` calls this)."""
        return self._map(lambda t: t.pin_memory())

    def __getitem__(self, index: int | slice | np.ndarray | torch.Tensor) -> "Batch":
        """Rows ``index`` (a slice gives views, an int a one-row view; an integer array gathers copies)."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {int(index)} out of range for a Batch of {len(self)} rows")
            index = slice(i, i + 1)
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError(f"Batch slices must have step 1, got {step}")
            return Batch(
                impression_id=self.impression_id.slice(start, stop - start),
                **{k: v[start:stop] for k, v in self.tensors().items()},
            )
        idx = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        return Batch(
            impression_id=self.impression_id.take(pa.array(idx.numpy())),
            **{k: v.index_select(0, idx.to(v.device)) for k, v in self.tensors().items()},
        )

    def original_choice(self, slots: torch.Tensor) -> torch.Tensor:
        """Map chosen slots ``int64 [B, C]`` to indices into the original pools (``-1`` where absent).

        This is what a predictions file stores in ``<c>_choice``. A slot that is padding while the
        component is present raises :class:`InvalidInputError`.
        """
        if tuple(slots.shape) != tuple(self.exposed.shape):
            raise ValueError(f"slots must have shape {tuple(self.exposed.shape)}, got {tuple(slots.shape)}")
        present = self.n_candidates > 0
        s = slots.to(torch.int64).clamp(0, PAD_TO - 1)
        orig = self.original_index.gather(2, s.unsqueeze(-1)).squeeze(-1).to(torch.int64)
        bad = present & ((slots < 0) | (slots >= PAD_TO) | (orig < 0))
        if bool(bad.any()):
            b, c = (int(x) for x in bad.nonzero()[0])
            raise InvalidInputError(
                f"impression_id {self.impression_id[b].as_py()!r}: slot {int(slots[b, c])} chosen for "
                f"{COMPONENTS[c]} is padding (the pool has {int(self.n_candidates[b, c])} candidates)"
            )
        return torch.where(present, orig, torch.full_like(orig, -1))


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One Batch of the rows of ``batches``, in order (tensors concatenated on the first dimension)."""
    if not batches:
        raise ValueError("concat_batches needs at least one Batch")
    if len(batches) == 1:
        return batches[0]
    return Batch(impression_id=pa.concat_arrays([b.impression_id for b in batches]),
                 **{k: torch.cat([getattr(b, k) for b in batches]) for k in TENSOR_FIELDS})


def _collate_batches(batch: Batch | Sequence[Batch], *, collate_fn_map: dict | None = None) -> Batch:
    """``default_collate`` of Batches: a whole Batch (what ``MapDataset.__getitems__`` returns for a
    ``DataLoader(ds, batch_size=k)``) passes through; a list of Batches is concatenated."""
    return batch if isinstance(batch, Batch) else concat_batches(list(batch))


# torch's documented extension point of default_collate ("Extend default_collate by in-place modifying
# default_collate_fn_map"): DataLoader(MapDataset(...), batch_size=k) then yields Batches without a collate_fn.
default_collate_fn_map[Batch] = _collate_batches


class RowCollate:
    """``collate_fn`` for a plain ``DataLoader`` over an HF ``datasets.Dataset`` in its default (python) format:
    rows (dicts) -> one padded :class:`Batch` (the ragged pools padded to 15 here)::

        DataLoader(ds, batch_size=256, shuffle=True, collate_fn=RowCollate(vocabs))

    Rows are turned back into Arrow with their types (ids stay exact int64, nulls stay null), so the result
    equals :func:`pad_table` of the same rows; it costs Python per row (``loader(ds)`` reads the Arrow table
    directly and is far faster). Rows of ``ds.with_format("torch"/"numpy")`` are refused: those formats turn
    nullable int64 columns (``query_id``, ``<c>_exposed``) into float NaN, which loses 62-bit ids."""

    def __init__(self, vocabs: Vocabularies, *, max_segments: int = SEGMENTS_PAD_TO) -> None:
        if not isinstance(vocabs, Vocabularies):
            raise TypeError(f"vocabs must be a Vocabularies, got {type(vocabs).__name__}")
        self.vocabs, self.max_segments = vocabs, int(max_segments)
        self._schema = pa.schema([impressions_schema().field(c) for c in REQUIRED_COLUMNS])

    def __call__(self, rows: Sequence[dict]) -> Batch:
        if not rows:
            raise ValueError("RowCollate got no rows")
        first = rows[0]
        if not isinstance(first, dict):
            raise TypeError(f"RowCollate expects rows as dicts (an HF Dataset in its default format), got {type(first).__name__}")
        formatted = [c for c in REQUIRED_COLUMNS if isinstance(first.get(c), (torch.Tensor, np.ndarray))]
        if formatted:
            raise InvalidInputError(
                f"rows hold tensors/arrays ({formatted[0]!r}, ...): ds.with_format('torch'/'numpy') turns nullable int64 "
                "columns into float NaN and loses 62-bit ids; pass the dataset in its default format, or use genco_data.loader(ds)"
            )
        table = pa.Table.from_pylist(list(rows), schema=self._schema)
        return _block_to_batch(_pad_block(table, self.vocabs, self.max_segments))


def _block_to_batch(block: _Block) -> Batch:
    return Batch(
        impression_id=block["impression_id"],
        **{k: torch.from_numpy(block[k]) for k in TENSOR_FIELDS},
    )


def _rebatch(blocks: Iterator[_Block], batch_size: int, drop_last: bool) -> Iterator[Batch]:
    """Batches of exactly ``batch_size`` rows (views when they fit in one block) + a short last one."""
    carry: _Block | None = None
    for b in blocks:
        if carry is not None:
            need = batch_size - _block_len(carry)
            if _block_len(b) < need:
                carry = _block_concat([carry, b])
                continue
            yield _block_to_batch(_block_concat([carry, _block_slice(b, 0, need)]))
            b = _block_slice(b, need, _block_len(b))
            carry = None
        n = _block_len(b)
        full = n - n % batch_size
        for s in range(0, full, batch_size):
            yield _block_to_batch(_block_slice(b, s, s + batch_size))
        if full < n:
            carry = _block_slice(b, full, n)
    if carry is not None and not drop_last:
        yield _block_to_batch(carry)


def pad_table(
    table: pa.Table | pa.RecordBatch,
    vocabs: Vocabularies,
    *,
    max_segments: int = SEGMENTS_PAD_TO,
) -> Batch:
    """Pad an Arrow table of impressions (the ``impressions`` schema) into a :class:`Batch`.

    Vectorized over whole columns (list offsets + flat values); extra columns are ignored. Rows that
    break an invariant (exposed out of range, exposed null with a non-empty pool or set on an empty one,
    a missing or NaN propensity, a null click/id) raise :class:`InvalidInputError` naming the row and the
    column; a missing or mistyped column raises :class:`SchemaError`.
    """
    if not isinstance(table, (pa.Table, pa.RecordBatch)):
        raise TypeError(f"pad_table expects a pyarrow Table or RecordBatch, got {type(table).__name__}")
    if not isinstance(vocabs, Vocabularies):
        raise TypeError(f"vocabs must be a Vocabularies, got {type(vocabs).__name__}")
    _check_schema(table.schema)
    return _block_to_batch(_pad_block(table, vocabs, max_segments))


__all__ = ["Batch", "pad_table", "concat_batches", "RowCollate"]
