"""Distinct counts in bounded memory: exact below a threshold, an Apache DataSketches HLL above it.

:class:`DistinctCounter` holds the distinct values of an int64 column exactly (a sorted numpy set) while
there are at most ``exact_limit`` of them; past that it becomes a ``datasketches.hll_sketch`` (HLL_8,
``lg_k`` = :data:`HLL_LG_K`): memory 2^lg_k bytes, relative standard error ``1.04 / sqrt(2^lg_k)``
(1.6 % at lg_k = 12) — the DataSketches docs' figure. Counters merge (:meth:`DistinctCounter.merge`, the
union of sets, else ``hll_union``), so workers count their rows and the builder merges the parts.

Determinism. The figure must not depend on how rows were split among workers (byte-identical manifests for
any ``--workers``). An exact set is a set. An HLL's registers are a max over its items, so they do not
depend on the split either; its HIP estimator does (it follows insertion order), so the result is always
read through a union holding the sketch twice (:func:`_settled`), which switches DataSketches to its
order-free composite estimator. A test checks identical bytes for different splits.

Speed. DataSketches' Python binding updates one item per call (~0.13 µs), too slow for tens of element ids
per row. Its HLL hash is MurmurHash3_x64_128 (seed 9001) of the value's 8 bytes: ``slot = h1 mod 2^lg_k``,
``value = min(clz(h2), 62) + 1``, and an item changes the sketch only if its value exceeds the slot's
register. :func:`murmur3_x64_128_int64` computes that hash for a whole numpy array, the counter keeps a
mirror of the registers, and only the items that raise a register (at most one per slot and batch) are
handed to the sketch. The sketch's state is then exactly that of feeding every item (a test compares the
serialized bytes). The mirror is only used once the sketch is in HLL mode, which it is from the start:
the switch hands over, of the ``exact_limit`` > 4·2^lg_k distinct values, the largest item of every slot
(nearly all 2^lg_k slots are hit), past DataSketches' coupon modes. A day's counter and the split's share
a batch's distinct values (:class:`DistinctValues`): one hash unique, and one sort or one hash of them.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from genco_data.build.unique import sorted_unique

#: log2 of the HLL register count: 4,096 registers, 1.6 % relative standard error, 4 KiB per sketch.
HLL_LG_K = 12
#: Distinct values counted exactly before a counter becomes an HLL (8 bytes each: 512 KiB).
EXACT_LIMIT = 1 << 16
#: Standard deviations of the bounds reported with an estimate (DataSketches ``get_upper_bound(2)``: ~95.4 %).
BOUND_STDS = 2

_U = np.uint64
_C1 = _U(0x87C37B91114253D5)
_C2 = _U(0x4CF5AD432745937F)
_SEED = _U(9001)  # DataSketches' DEFAULT_SEED


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << _U(r)) | (x >> _U(64 - r))


def _fmix(k: np.ndarray) -> np.ndarray:
    k ^= k >> _U(33)
    k *= _U(0xFF51AFD7ED558CCD)
    k ^= k >> _U(33)
    k *= _U(0xC4CEB9FE1A85EC53)
    k ^= k >> _U(33)
    return k


def murmur3_x64_128_int64(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(h1, h2)`` uint64 ``[n]``: MurmurHash3_x64_128 with seed 9001 of each int64's 8 little-endian bytes
    (an 8-byte key has no 16-byte block: it is all tail), as DataSketches hashes ``update(int)``."""
    with np.errstate(over="ignore"):
        k1 = np.asarray(values, dtype=np.int64).astype(_U)
        k1 *= _C1
        k1 = _rotl(k1, 31)
        k1 *= _C2
        h1 = np.full(len(k1), _SEED, dtype=_U) ^ k1
        h2 = np.full(len(k1), _SEED, dtype=_U)
        h1 ^= _U(8)
        h2 ^= _U(8)
        h1 += h2
        h2 += h1
        h1 = _fmix(h1)
        h2 = _fmix(h2)
        h1 += h2
        h2 += h1
    return h1, h2


def _clz64(x: np.ndarray) -> np.ndarray:
    """Leading zero bits of each uint64 (64 for 0), exact: the bit length of the top 53 bits read from the float64
    exponent (exact below 2^53), the low 11 bits looked at only where the top 53 are all zero (p = 2^-53)."""
    top = x >> _U(11)
    n = 64 - np.frexp(top.astype(np.float64))[1].astype(np.int64) - 11  # frexp(0) gives exponent 0: 53 + 11
    low = np.flatnonzero(top == 0)
    if len(low):
        n[low] = 64 - np.frexp((x[low] & _U(0x7FF)).astype(np.float64))[1].astype(np.int64)
    return n


def hll_slot_values(values: np.ndarray, lg_k: int = HLL_LG_K) -> tuple[np.ndarray, np.ndarray]:
    """``(slot int64 [n], value int64 [n])``: the HLL register each int64 lands in and the value it offers."""
    h1, h2 = murmur3_x64_128_int64(values)
    slot = (h1 & _U((1 << lg_k) - 1)).astype(np.int64)
    value = np.minimum(_clz64(h2), 62) + 1
    return slot, value


def union_sorted(*runs: np.ndarray) -> np.ndarray:
    """The sorted distinct union of sorted distinct int64 arrays: one stable sort of their concatenation
    (timsort merges the runs it finds: linear for two runs) and a pass dropping equal neighbours."""
    runs = tuple(r for r in runs if len(r))
    if len(runs) < 2:
        return runs[0] if runs else np.zeros(0, dtype=np.int64)
    c = np.concatenate(runs)
    c.sort(kind="stable")
    keep = np.empty(len(c), dtype=bool)
    keep[0] = True
    np.not_equal(c[1:], c[:-1], out=keep[1:])
    return c[keep]


def _new_hll(lg_k: int):
    import datasketches

    return datasketches.hll_sketch(lg_k, datasketches.tgt_hll_type.HLL_8)


def _settled(sketch, lg_k: int):
    """The sketch read through a union that holds it twice: DataSketches' order-free composite estimator."""
    import datasketches

    u = datasketches.hll_union(lg_k)
    u.update(sketch)
    u.update(sketch)
    return u.get_result(datasketches.tgt_hll_type.HLL_8)


class DistinctValues:
    """Distinct int64 values of one batch (any order), with their sorted form and their HLL ``(slot, value)``
    computed once, on first use: a day's counter and the split's are fed the same values without a second sort
    or hash."""

    __slots__ = ("values", "_sorted", "_hashed")

    def __init__(self, values: np.ndarray, *, is_sorted: bool = False) -> None:
        self.values = np.asarray(values, dtype=np.int64)
        self._sorted = self.values if is_sorted else None
        self._hashed: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # by lg_k

    def __len__(self) -> int:
        return len(self.values)

    @property
    def sorted(self) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(self.values)
        return self._sorted

    def hashed(self, lg_k: int) -> tuple[np.ndarray, np.ndarray]:
        if lg_k not in self._hashed:
            self._hashed[lg_k] = hll_slot_values(self.values, lg_k)
        return self._hashed[lg_k]


def _largest_per_slot(slot: np.ndarray, value: np.ndarray, lg_k: int) -> np.ndarray:
    """Indices of one item per slot, in slot order: the first of the items offering the slot's largest value
    (the register the slot ends with). Two scatter passes, no sort."""
    k, n = 1 << lg_k, len(slot)
    best = np.zeros(k, dtype=value.dtype)
    np.maximum.at(best, slot, value)
    cand = np.flatnonzero(value == best[slot])
    first = np.full(k, n, dtype=np.int64)
    np.minimum.at(first, slot[cand], cand)
    return first[first < n]


class DistinctCounter:
    """Distinct int64 values: exact up to ``exact_limit``, then an HLL (see the module docstring)."""

    def __init__(self, exact_limit: int = EXACT_LIMIT, lg_k: int = HLL_LG_K) -> None:
        if exact_limit < 4 << lg_k:
            raise ValueError(f"exact_limit must be >= 4 * 2**lg_k = {4 << lg_k} (the switch must land in HLL mode)")
        self.exact_limit = exact_limit
        self.lg_k = lg_k
        self._set: np.ndarray | None = np.zeros(0, dtype=np.int64)  # sorted, distinct; None once an HLL
        self._hll = None
        self._registers: np.ndarray | None = None

    @property
    def exact(self) -> bool:
        return self._set is not None

    def update(self, values: np.ndarray, distinct: bool = False) -> None:
        """Count ``values``; ``distinct=True`` promises they are sorted and distinct (skips that step)."""
        values = np.asarray(values, dtype=np.int64)
        if not len(values):
            return
        if self._set is not None:
            self.add(DistinctValues(values if distinct else sorted_unique(values), is_sorted=True))
            return
        self._feed(values)  # duplicates are harmless: at most one item per register is handed over

    def add(self, items: DistinctValues) -> None:
        """Count a batch's distinct values (shared with other counters: sorted or hashed once)."""
        if not len(items):
            return
        if self._set is not None:
            self._set = union_sorted(self._set, items.sorted)
            if len(self._set) > self.exact_limit:
                self._to_sketch()
            return
        self._feed(items.values, *items.hashed(self.lg_k))

    def _to_sketch(self) -> None:
        """Become an HLL holding the exact set's values. Only the item with the largest value of each slot is
        handed over (at most 2^lg_k calls instead of ``exact_limit``): the registers are the same, and the
        sketch is in HLL mode since more than 4·2^lg_k distinct values fill nearly every slot (DataSketches
        leaves its coupon modes after a few hundred)."""
        values = self._set
        self._set = None
        self._hll = _new_hll(self.lg_k)
        self._registers = np.zeros(1 << self.lg_k, dtype=np.int64)
        slot, value = hll_slot_values(values, self.lg_k)
        pick = _largest_per_slot(slot, value, self.lg_k)
        self._registers[slot[pick]] = value[pick]
        update = self._hll.update
        for v in values[pick].tolist():
            update(v)

    def _feed(self, values: np.ndarray, slot: np.ndarray | None = None, value: np.ndarray | None = None) -> None:
        """Hand the sketch only the items that raise a register (one per slot: the largest value)."""
        if slot is None:
            slot, value = hll_slot_values(values, self.lg_k)
        raise_ = value > self._registers[slot]
        if not raise_.any():
            return
        slot, value, values = slot[raise_], value[raise_], values[raise_]
        pick = _largest_per_slot(slot, value, self.lg_k)
        self._registers[slot[pick]] = value[pick]
        update = self._hll.update
        for v in values[pick].tolist():
            update(v)

    def merge(self, other: "DistinctCounter") -> None:
        """Add ``other``'s values (same ``exact_limit`` and ``lg_k``)."""
        if other._set is not None:
            self.update(other._set, distinct=True)  # a set's members: sorted and distinct already
            return
        if self._set is not None:
            values = self._set
            self._set = None
            self._hll, self._registers = _new_hll(self.lg_k), np.zeros(1 << self.lg_k, dtype=np.int64)
            self._union(other)
            self._feed(values) if len(values) else None
            return
        self._union(other)

    def _union(self, other: "DistinctCounter") -> None:
        import datasketches

        u = datasketches.hll_union(self.lg_k)
        u.update(self._hll)
        u.update(other._hll)
        self._hll = u.get_result(datasketches.tgt_hll_type.HLL_8)
        np.maximum(self._registers, other._registers, out=self._registers)

    def result(self) -> dict[str, Any]:
        """``{"value", "exact"}`` plus, for an estimate, ``low``/``high`` (±:data:`BOUND_STDS` standard errors)."""
        if self._set is not None:
            return {"value": len(self._set), "exact": True}
        s = _settled(self._hll, self.lg_k)
        return {
            "value": int(round(s.get_estimate())),
            "exact": False,
            "low": int(np.floor(s.get_lower_bound(BOUND_STDS))),
            "high": int(np.ceil(s.get_upper_bound(BOUND_STDS))),
        }

    # pickling: the sketch travels as its compact bytes
    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if self._hll is not None:
            d["_hll"] = self._hll.serialize_updatable()
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        if d.get("_hll") is not None:
            import datasketches

            d["_hll"] = datasketches.hll_sketch.deserialize(d["_hll"])
        self.__dict__.update(d)


__all__ = ["HLL_LG_K", "EXACT_LIMIT", "BOUND_STDS", "DistinctCounter", "DistinctValues", "union_sorted", "murmur3_x64_128_int64", "hll_slot_values"]
