"""Compiled (numba) kernels of the cold loader: one pass per column writes the padded layout (torch-free).

The numpy path of :mod:`genco_data.load.padding` builds a block in ~a dozen full passes over memory (zero fill,
scatter, ``repeat`` for the slot positions, a hash pass, truncation, mask / original-index gathers); these
kernels do the same work row by row, writing every output byte once, for *hashed* vocabularies (the default).
The results are bit-identical to the numpy path (``tests/test_fastpad_*.py``); exact vocabularies keep it.

**The hash** (the same as :func:`genco_data.load.hashing.hash_buckets`, see that module's docstring)::

    x = splitmix64(uint64(v) XOR salt);   row = FIRST_INDEX + ((x >> 32) * K >> 32)   (K < 2**32; else x mod K)

**Shapes.** ``B`` rows, ``C = 6`` components, ``P = 15`` slots, ``S`` segments. Every kernel takes the Arrow
parts of its column(s) without copying them: list ``offsets`` int [B+1] (starting at 0), flat ``values``
int64, a primitive column's ``values`` (any int/float dtype, one compiled specialization per dtype) and its
validity ``bits`` (the Arrow bitmap as uint8, LSB first, starting at bit ``bit0``; an empty array = no nulls).
Outputs are preallocated numpy arrays the kernels fill completely (padding included), so they can come from
``np.empty`` (:mod:`genco_data.load.buffers` recycles them). The id lists are hashed first, one vectorized loop
over the flat values into a ``scratch`` array (padded by :data:`LANE_PAD`); a row's slots are then written as
8-lane vectors and 8-byte words through two numba intrinsics (:func:`_copy_lanes`, :func:`_store_word`; plain
LLVM vector / unaligned stores, portable to any target LLVM supports).

**Compilation.** ``@njit(cache=True, nogil=True)``: the first call in a fresh environment compiles (~seconds);
later processes load the machine code from numba's cache — next to this file when its folder is writable, else
numba's per-user cache dir, or ``NUMBA_CACHE_DIR`` when set. Where no cache dir can be written at all, the
kernels are compiled in memory in each process (correct, only slower to start). Forked DataLoader workers
inherit the compiled code; spawned ones load it from the cache.
"""
from __future__ import annotations

import warnings

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic

from genco_data.format.components import N_COMPONENTS, PAD_TO

#: Vocabulary row of padding / null and of the first hashed bucket (equal to padding.PAD_INDEX / FIRST_INDEX;
#: a test keeps them equal: this module imports nothing of the loader, so that padding can import it).
_PAD, _OOV, _FIRST = 0, 1, 2
_NO_BITS = np.empty(0, np.uint8)


def _jit(fn):  # type: ignore[no-untyped-def]
    """``njit(cache=True, nogil=True)``, or uncached when numba finds no writable cache dir (a read-only install
    with no writable home): numba raises at decoration time then, and the loader must still import."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        warnings.warn(f"genco_data.load.kernels: numba cache unavailable ({exc}); compiling in memory per process", stacklevel=2)
        return njit(cache=False, nogil=True)(fn)


@njit(cache=False, nogil=True, inline="always")
def _bucket(v, salt, k, small):  # type: ignore[no-untyped-def]
    x = np.uint64(v) ^ salt
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    if small:
        x = ((x >> np.uint64(32)) * k) >> np.uint64(32)
    else:
        x = x % k
    return np.int64(x) + _FIRST


@njit(cache=False, nogil=True, inline="always")
def _is_null(bits, bit0, i):  # type: ignore[no-untyped-def]
    if len(bits) == 0:
        return False
    j = bit0 + i
    return ((bits[j >> 3] >> (j & 7)) & 1) == 0


@_jit
def hash_ids(ids, salt, k, out):  # type: ignore[no-untyped-def]
    """``out[i] = row of ids[i]`` (int64 [N] -> int64 [N]): :func:`~genco_data.load.hashing.hash_buckets`."""
    small = k < np.uint64(1 << 32)
    for i in range(len(ids)):
        out[i] = _bucket(ids[i], salt, k, small)


@_jit
def hash_column(values, bits, bit0, salt, k, out):  # type: ignore[no-untyped-def]
    """A nullable id column [B] -> rows [B]: null -> 0 (padding), else the hashed row."""
    small = k < np.uint64(1 << 32)
    for b in range(len(out)):
        out[b] = _PAD if _is_null(bits, bit0, b) else _bucket(values[b], salt, k, small)


@_jit
def direct_column(values, bits, bit0, codes, out):  # type: ignore[no-untyped-def]
    """A nullable code column [B] -> rows [B]: null -> 0, code c in [0, codes) -> c + 2, other codes -> 1 (OOV)."""
    for b in range(len(out)):
        if _is_null(bits, bit0, b):
            out[b] = _PAD
        else:
            c = np.int64(values[b])
            out[b] = c + _FIRST if 0 <= c < codes else _OOV


@njit(cache=False, nogil=True, inline="always")
def _hash_into(vals, salt, k, out):  # type: ignore[no-untyped-def]
    """``out[i] = row of vals[i]``: one branch-free loop per table size class, so it vectorizes (SIMD 64-bit
    multiplies where the CPU has them)."""
    if k < np.uint64(1 << 32):
        for i in range(len(vals)):
            out[i] = _bucket(vals[i], salt, k, True)
    else:
        for i in range(len(vals)):
            out[i] = _bucket(vals[i], salt, k, False)


_C, _P = N_COMPONENTS, PAD_TO  # compile-time constants: the fixed-length slot loops unroll / vectorize
#: Row k = the mask / original-index pattern [P] of a pool with k kept candidates (the numpy path's gathers).
MASK_BY_KEPT = np.arange(_P + 1)[:, None] > np.arange(_P)
ORIG_BY_KEPT = np.where(MASK_BY_KEPT, np.arange(_P), -1).astype(np.int16)


# -- wide stores (numba intrinsics): numba compiles the fixed 15-slot loops of a pool into 45 scalar stores (it
# cannot rule out that the output arrays alias); these write a pool's slots as two 8-lane vectors (candidates)
# and 8-byte words (mask, original index) instead: ~25 % less kernel time on the default release.
#: Mask / original-index bytes of a pool with k kept slots as 8-byte words (native byte order): mask bytes
#: [0, 8) and [7, 15), original-index bytes [0, 8), [8, 16), [16, 24), [22, 30) (overlapping words agree).
MASK_WORDS = np.stack([MASK_BY_KEPT.astype(np.uint8)[:, a : a + 8].copy().view(np.uint64)[:, 0] for a in (0, 7)], axis=1)
ORIG_WORDS = np.stack([ORIG_BY_KEPT.view(np.uint8)[:, a : a + 8].copy().view(np.uint64)[:, 0] for a in (0, 8, 16, 22)], axis=1)
_SEG_MASK_WORDS = (np.arange(17)[:, None] > np.arange(16)).astype(np.uint8).view(np.uint64)  # [17, 2]: 16 segments
#: Elements of ``scratch`` past the last hashed id that :func:`pad_pools` may read (two 8-lane loads per pool).
LANE_PAD = 16
_V8 = ir.VectorType(ir.IntType(64), 8)


def _data_ptr(context, builder, arytype, ary, byte_off, elty):  # type: ignore[no-untyped-def]
    a = context.make_array(arytype)(context, builder, ary)
    base = builder.bitcast(a.data, ir.IntType(8).as_pointer())
    return builder.bitcast(builder.gep(base, [byte_off]), elty.as_pointer())


@intrinsic
def _store_word(typingctx, arr, byte_off, value):  # type: ignore[no-untyped-def]
    """The 8 bytes of ``value`` (uint64) at byte ``byte_off`` of ``arr``'s data (unaligned store)."""
    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        ptr = _data_ptr(context, builder, sig.args[0], args[0], args[1], ir.IntType(64))
        builder.store(context.cast(builder, args[2], sig.args[2], types.uint64), ptr, align=1)
        return context.get_dummy_value()
    return types.void(arr, byte_off, value), codegen


@intrinsic
def _copy_lanes(typingctx, dst, d_off, src, s_off, n):  # type: ignore[no-untyped-def]
    """``dst[d_off + s] = src[s_off + s] if s < n else 0`` for s in [0, 8) (int64 arrays, element offsets): one
    8-lane load, select and store. Reads all 8 elements ``src[s_off : s_off + 8]`` whatever ``n``."""
    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        eight = ir.Constant(ir.IntType(64), 8)
        pd = _data_ptr(context, builder, sig.args[0], args[0], builder.mul(args[1], eight), _V8)
        ps = _data_ptr(context, builder, sig.args[2], args[2], builder.mul(args[3], eight), _V8)
        v = builder.load(ps, align=8)
        nn = builder.insert_element(ir.Constant(_V8, ir.Undefined), context.cast(builder, args[4], sig.args[4], types.int64),
                                    ir.Constant(ir.IntType(32), 0))
        nn = builder.shuffle_vector(nn, ir.Constant(_V8, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))
        keep = builder.icmp_signed("<", ir.Constant(_V8, list(range(8))), nn)
        builder.store(builder.select(keep, v, ir.Constant(_V8, [0] * 8)), pd, align=8)
        return context.get_dummy_value()
    return types.void(dst, d_off, src, s_off, n), codegen


@_jit
def pad_lists(offsets, values, salt, k, out, mask, scratch):  # type: ignore[no-untyped-def]
    """Lists -> their first ``S`` hashed items, padded: ``out`` int64 [B, S] (0 = padding), ``mask`` bool [B, S]
    (``scratch`` int64 [>= len(values) + LANE_PAD], checked: the hashed ids, one vectorized pass, then copied row
    by row; for S = 16, the default, as two 8-lane vectors and two 8-byte mask words per row)."""
    if len(scratch) < len(values) + LANE_PAD:
        raise ValueError("pad_lists: scratch too small")
    _hash_into(values, salt, k, scratch)
    S = out.shape[1]
    words = _SEG_MASK_WORDS
    for b in range(out.shape[0]):
        start = offsets[b]
        kept = min(offsets[b + 1] - start, S)
        if S == 16:
            _copy_lanes(out, b * 16, scratch, start, kept)
            _copy_lanes(out, b * 16 + 8, scratch, start + 8, kept - 8)
            _store_word(mask, b * 16, words[kept, 0])
            _store_word(mask, b * 16 + 8, words[kept, 1])
        else:
            for s in range(S):
                out[b, s] = scratch[start + s] if s < kept else _PAD
                mask[b, s] = s < kept


@_jit
def pad_pools(offsets, values, e_values, e_bits, e_bit0, p_values, p_bits, p_bit0, salts, ks,
              cand, mask, orig, exposed, n_cand, prop, bad_e, bad_p, scratch):  # type: ignore[no-untyped-def]
    """All ``C`` components of a block: pools -> slots (the truncation rule of padding.py), checks, fix-up.

    Inputs, component ``c`` in row ``c`` of each 2-d array: pool ``offsets`` int64 [C, B+1] into ``values[c]``
    (a tuple of C int64 arrays, the Arrow buffers), the shown index ``e_values`` [C, B] (any int dtype) with its
    validity bitmaps ``e_bits`` uint8 [C, nbytes] (all ones = no nulls) from bit ``e_bit0[c]``, the propensity
    ``p_values`` float32 [C, B] with ``p_bits`` / ``p_bit0``, the table's ``salts[c]`` and ``ks[c]`` (uint64);
    ``scratch`` int64 [>= sum of len(values[c]) + LANE_PAD] (checked).
    Writes flat C-order views of ``cand`` int64 [B, C, P], ``mask`` bool, ``orig`` int16 [B, C, P], ``exposed``
    int64 [B, C] (slot of the shown element, -1 when absent), ``n_cand`` int64 (pool size), ``prop`` float32 (0
    when absent): every byte, padding included. A pool of n > P keeps slots 0..P-1, or 0..P-2 then the shown
    element e >= P in slot P-1.

    Two passes: every component's flat ids are hashed into ``scratch`` (one contiguous loop each: it vectorizes),
    then, row-major (a row's C components, then the next row), every output line is written once, in order (a
    component-major order measured ~5x slower on 16k-row blocks: each pass re-walks the whole output): per pool
    two 8-lane candidate stores, two mask words and four original-index words (the patterns of ``kept`` slots,
    :data:`MASK_WORDS` / :data:`ORIG_WORDS`), then the fix-up slot. Measured on the default release: the hash
    pass + one select loop per slot was ~20 % cheaper than hashing inside the row loop plus the mask /
    original-index gathers from pattern tables, and the wide stores ~25 % cheaper again than the select loop
    (which numba compiles to 45 scalar stores: it cannot rule out that the outputs alias).

    ``bad_e[c]`` / ``bad_p[c]`` (int64 [C], preset to -1) get the first row whose exposed index is bad (not
    ``0 <= e < n`` where ``n > 0``, or not null where ``n == 0``) / whose propensity, cast to float32, is not in
    (0, 1] where ``n > 0`` (null = NaN fails). Rows past a bad one are still written (the caller raises).
    """
    B = len(exposed) // _C
    mask_words, orig_words = MASK_WORDS, ORIG_WORDS
    first = np.empty(_C, np.int64)  # where component c's hashed ids start in scratch
    pos = 0
    for ci in range(_C):
        pos += len(values[ci])
    if len(scratch) < pos + LANE_PAD:  # the 8-lane loads read up to 15 elements past a pool's start
        raise ValueError("pad_pools: scratch too small")
    pos = 0
    for ci in range(_C):
        vals = values[ci]
        first[ci] = pos
        _hash_into(vals, salts[ci], ks[ci], scratch[pos : pos + len(vals)])
        pos += len(vals)
    for b in range(B):
        for ci in range(_C):
            start = offsets[ci, b]
            n = offsets[ci, b + 1] - start
            h = first[ci] + start  # the pool's hashed ids: scratch[h : h + n]
            r = b * _C + ci
            n_cand[r] = n
            j = e_bit0[ci] + b
            e_null = ((e_bits[ci, j >> 3] >> (j & 7)) & 1) == 0
            e = np.int64(-1) if e_null else np.int64(e_values[ci, b])
            j = p_bit0[ci] + b
            p = np.float32(np.nan) if ((p_bits[ci, j >> 3] >> (j & 7)) & 1) == 0 else p_values[ci, b]
            if n > 0:
                if (e_null or e < 0 or e >= n) and bad_e[ci] < 0:
                    bad_e[ci] = b
                if not (p > 0 and p <= 1) and bad_p[ci] < 0:
                    bad_p[ci] = b
                prop[r] = p
            else:
                if not e_null and bad_e[ci] < 0:
                    bad_e[ci] = b
                prop[r] = np.float32(0.0)
            kept = min(n, _P)
            base = r * _P
            _copy_lanes(cand, base, scratch, h, kept)  # slots 0..7, then 7..14 (slot 7 written twice, alike)
            _copy_lanes(cand, base + 7, scratch, h + 7, kept - 7)
            _store_word(mask, base, mask_words[kept, 0])
            _store_word(mask, base + 7, mask_words[kept, 1])
            for w in range(4):
                _store_word(orig, 2 * base + (22 if w == 3 else 8 * w), orig_words[kept, w])
            if n > _P and _P <= e < n:  # never drop the shown element: it takes the last slot
                cand[base + _P - 1] = scratch[h + e]
                orig[base + _P - 1] = e
                exposed[r] = _P - 1
            else:
                exposed[r] = e


def block_fields(rows: int, segments: int) -> tuple[tuple[str, type, tuple[int, ...]], ...]:
    """``(name, dtype, shape)`` of the arrays of a block of ``rows`` rows that the kernels write whole."""
    C, P = N_COMPONENTS, PAD_TO
    return (("candidates", np.int64, (rows, C, P)), ("mask", np.bool_, (rows, C, P)), ("original_index", np.int16, (rows, C, P)),
            ("exposed", np.int64, (rows, C)), ("n_candidates", np.int64, (rows, C)), ("propensity", np.float32, (rows, C)),
            ("user_id", np.int64, (rows,)), ("ad_id", np.int64, (rows,)), ("query_id", np.int64, (rows,)),
            ("user_age", np.int64, (rows,)), ("user_gender", np.int64, (rows,)),
            ("query_segments", np.int64, (rows, segments)), ("query_segments_mask", np.bool_, (rows, segments)))


__all__ = ["MASK_BY_KEPT", "ORIG_BY_KEPT", "MASK_WORDS", "ORIG_WORDS", "LANE_PAD", "hash_ids", "hash_column", "direct_column", "pad_lists", "pad_pools", "block_fields"]
