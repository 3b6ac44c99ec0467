r"""Which catalog element each pool slot shows: the three catalogs of :class:`~genco_data.synth.config.SynthConfig`.

A component's pool slots (``slots_j``, contiguous per ad, every element an ad's pool ever holds over the window)
are given; each gets a catalog element index, never the same one twice in one ad's pool.

``catalog="zipf"`` (the default world). Every category ``g`` owns a catalog of ``N_g`` elements with Zipf popularity
``p_i = i^{-s} / H_{N_g,s}`` (``s = zipf_exponent``, ``H`` the generalized harmonic number): a slot draws element ``i``
with probability ``p_i`` (duplicates inside a pool are redrawn, so a pool is a draw without replacement). A few
elements are then reused across many of the category's ads, most appear in one or two — as creatives are.
``N_g`` is solved so that the expected number of distinct elements *seen in train rows* is the target
``ids_per_ad · A_g`` (``A_g`` = ads of the category, with or without the component):

.. math::

    E[\text{distinct}] = \sum_{i=1}^{N_g} \big(1 - e^{-S_g p_i}\big), \qquad S_g = \sum_{\text{slots } t \text{ of } g} v_t,
    \qquad v_t = 1 - e^{-λ_{a(t)} L_t}

(Poisson approximation of the slot draws; ``v_t`` is the chance that slot ``t``'s element is seen at all: its ad
``a(t)`` gets ``λ_a`` train rows a day and the slot lives ``L_t`` train days). ``E`` grows with ``N_g``; bisection on
``N_g`` hits the target at any size, so ids per ad hold whatever the number of rows. Elements that no slot drew are
dropped and the rest renumbered (``used``), so the world stores only elements that exist.

``catalog="uniform"`` (the ``learnable`` preset, the 0.2 default): ``K_g = max(catalog_size, longest pool)`` elements
per scope, each ad's slots a uniform draw without replacement (:func:`assign_uniform`). ``catalog="per_slot"`` (the
``sparse`` preset): every slot its own element.
"""
from __future__ import annotations

import numpy as np

_ASSIGN_CHUNK = 16_384  # ads per block when drawing uniform catalog elements (memory: chunk × catalog width)
_REDRAW_ROUNDS = 64  # Zipf redraws of in-pool duplicates before the deterministic fallback
_BISECT_STEPS = 60


def expected_distinct(n: int, draws: float, exponent: float) -> float:
    """``Σ_{i ≤ n} 1 − exp(−draws · p_i)`` for Zipf(``exponent``) over ``n`` elements (see the module docstring)."""
    if n <= 0 or draws <= 0:
        return 0.0
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return float(-np.expm1(-draws * w / w.sum()).sum())


def solve_catalog_size(target: float, draws: float, exponent: float, at_least: int) -> int:
    """Smallest ``n >= at_least`` whose :func:`expected_distinct` reaches ``target`` (capped where it no longer grows:
    a target above what ``draws`` can give returns the cap, ``64·draws`` or ``at_least``)."""
    lo = max(1, at_least)
    cap = max(lo, int(64 * draws) + 1)
    if target <= expected_distinct(lo, draws, exponent):
        return lo
    hi = lo
    while hi < cap:  # doubling first, so the arrays stay near the answer's size
        hi = min(cap, 2 * hi)
        if expected_distinct(hi, draws, exponent) >= target:
            break
        lo = hi
    else:
        return cap
    for _ in range(_BISECT_STEPS):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        if expected_distinct(mid, draws, exponent) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def assign_zipf(rng: np.random.Generator, slot_group: np.ndarray, slot_ad: np.ndarray, sizes: np.ndarray,
                exponent: float) -> tuple[np.ndarray, int]:
    """Zipf draws per slot: (element index int64 [slots], number of distinct elements used).

    ``slot_group`` int [slots]: the catalog (category) of each slot; ``slot_ad`` int [slots]: its ad (an ad's slots
    are contiguous); ``sizes`` int [groups]: ``N_g``, each at least the longest pool of the group. Group ``g``'s
    elements are ``first_g .. first_g + N_g − 1`` before renumbering."""
    n = len(slot_group)
    first = np.cumsum(sizes) - sizes
    cums = []
    for size in sizes.tolist():
        w = np.arange(1, size + 1, dtype=np.float64) ** -exponent if size else np.zeros(0)
        cums.append(np.cumsum(w) / w.sum() if size else w)
    out = np.empty(n, dtype=np.int64)

    def draw(idx: np.ndarray) -> None:
        u = rng.random(len(idx))
        g = slot_group[idx]
        for grp in np.unique(g).tolist():
            m = g == grp
            cum = cums[grp]
            out[idx[m]] = first[grp] + np.minimum(np.searchsorted(cum, u[m], side="right"), len(cum) - 1)

    todo = np.arange(n)
    for _ in range(_REDRAW_ROUNDS):
        if len(todo) == 0:
            break
        draw(todo)
        todo = _duplicates(slot_ad, out)
    if len(todo):  # a pool close to its catalog's size: give each remaining duplicate the first free element
        for t in todo.tolist():
            same = np.flatnonzero(slot_ad == slot_ad[t])
            taken = set(out[same[same != t]].tolist())
            grp = int(slot_group[t])
            out[t] = next(e for e in range(first[grp], first[grp] + sizes[grp]) if e not in taken)
    used, compact = np.unique(out, return_inverse=True)
    return compact.astype(np.int64), len(used)


def _duplicates(slot_ad: np.ndarray, elem: np.ndarray) -> np.ndarray:
    """Slots whose element already occurs earlier in the same ad's pool (the later occurrences)."""
    order = np.lexsort((np.arange(len(elem)), elem, slot_ad))
    a, e = slot_ad[order], elem[order]
    dup = np.zeros(len(elem), dtype=bool)
    dup[1:] = (a[1:] == a[:-1]) & (e[1:] == e[:-1])
    return np.sort(order[dup])


def assign_uniform(rng: np.random.Generator, ad_category: np.ndarray, length: np.ndarray, n_categories: int,
                   size: int | None) -> tuple[np.ndarray, int]:
    """The catalog element each pool slot shows: (slot_elem int64 [Σ length], catalog size).

    ``size`` None: every slot has an element of its own (the catalog is the slots). Otherwise category
    ``c`` owns ``K_c = max(size, longest slot list of its ads)`` elements (consecutive indices, categories in
    order) and each ad's slots are a uniform draw *without replacement* from its category's elements, so
    an element recurs across the ads of its category but never twice in one pool."""
    total = int(length.sum())
    if size is None:
        return np.arange(total, dtype=np.int64), total
    longest = np.zeros(n_categories, dtype=np.int64)
    np.maximum.at(longest, ad_category, length)
    k = np.maximum(longest, size)
    first = np.cumsum(k) - k
    out = np.empty(total, dtype=np.int64)
    k_ad = k.take(ad_category)
    width = int(k.max())
    at = 0
    for lo in range(0, len(length), _ASSIGN_CHUNK):  # bounded memory: chunk × width keys
        hi = min(len(length), lo + _ASSIGN_CHUNK)
        keys = rng.random((hi - lo, width))
        keys[np.arange(width)[None, :] >= k_ad[lo:hi, None]] = 2.0  # beyond the category's catalog
        perm = np.argsort(keys, axis=1, kind="stable")
        take = np.arange(width)[None, :] < length[lo:hi, None]
        picked = (perm + first.take(ad_category[lo:hi])[:, None])[take]
        out[at : at + len(picked)] = picked
        at += len(picked)
    return out, int(k.sum())


__all__ = ["expected_distinct", "solve_catalog_size", "assign_zipf", "assign_uniform"]
