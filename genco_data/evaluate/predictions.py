"""The evaluator's input checks: the uniform-logged test split it scores against, and the predictions.

The test split is read once (only the columns the metrics need) into a
:class:`genco_data.evaluate.metrics.UniformLog`; predictions (a Parquet file, a ``pyarrow.Table`` or a dict of
arrays) are checked against :class:`genco_data.format.records.PredictionRow` and aligned to it by
``impression_id``. Every violation raises :class:`PredictionsError` with one line naming the file, the column
and an example row.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.evaluate import metrics as M
from genco_data.format.components import (
    CANDIDATE_COLUMNS,
    COMPONENTS,
    CONFIGS,
    EXPOSED_COLUMNS,
    UNIFORM,
    choice_col,
    scores_col,
)
from genco_data.errors import InvalidInputError, PredictionsError, SchemaError
from genco_data.format.records import PREDICTION_OPTIONAL_COLUMNS, PREDICTION_REQUIRED_COLUMNS
from genco_data.release import Release

K = len(COMPONENTS)
_TEST_COLUMNS = ("impression_id", "ad_id", "click", "logging_policy", *CANDIDATE_COLUMNS, *EXPOSED_COLUMNS)
_ID = "impression_id"


# ------------------------------------------------------------------------------------ the test split
def _hash64(a: pa.Array) -> np.ndarray:
    """uint64 [len(a)] hash of each string, vectorized over the Arrow buffers (polynomial over bytes, then
    a murmur-style finaliser). Only used to align ids: every match is re-checked by string equality."""
    off = np.frombuffer(a.buffers()[1], np.int64, len(a) + 1, a.offset * 8)
    buf = a.buffers()[2]
    data = np.frombuffer(buf, np.uint8) if buf is not None else np.zeros(0, np.uint8)
    lo, hi = int(off[0]), int(off[-1])
    lens = np.diff(off)
    starts = off[:-1] - lo
    pos = np.arange(hi - lo) - np.repeat(starts, lens)  # position of each byte inside its string
    powers = np.cumprod(np.full(max(int(lens.max(initial=0)), 1), 0x100000001B3, np.uint64))
    contrib = (data[lo:hi].astype(np.uint64) + np.uint64(1)) * powers[pos]
    h = np.zeros(len(a), np.uint64)
    nonempty = lens > 0
    if nonempty.any():
        h[nonempty] = np.add.reduceat(contrib, starts[nonempty])
    h ^= lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h ^= h >> np.uint64(33)
        h *= np.uint64(mult)
    return h ^ (h >> np.uint64(33))


@dataclass(eq=False)
class _TestSplit:
    ids: pa.Array  # large_string [R], test order
    log: M.UniformLog
    _sorted: tuple[np.ndarray, np.ndarray] | None = None  # (sorted id hashes, their test rows), built on demand

    def lookup(self, ids: pa.Array) -> np.ndarray:
        """Test row of each id (large_string array), -1 where unknown: sorted hashes + searchsorted, each
        hit confirmed by string equality (a hash collision falls back to Arrow's ``index_in``)."""
        if self._sorted is None:
            h = _hash64(self.ids)
            order = np.argsort(h, kind="stable")
            self._sorted = (h[order], order)
        hs, rows = self._sorted
        hq = _hash64(ids)
        q = np.argsort(hq)  # sorted queries keep the binary searches cache-friendly
        at = np.minimum(np.searchsorted(hs, hq[q]), len(hs) - 1)
        pos = np.full(len(ids), -1, np.int64)
        hit = hs[at] == hq[q]
        pos[q[hit]] = rows[at[hit]]
        found = pos >= 0
        same = pc.equal(ids.filter(pa.array(found)), self.ids.take(pa.array(pos[found])))
        if (hs[1:] == hs[:-1]).any() or not pc.all(same).as_py():
            return pc.fill_null(pc.index_in(ids, value_set=self.ids), -1).to_numpy().astype(np.int64)
        return pos


def _read_test_split(release: Release, batch_rows: int) -> _TestSplit:
    files = release.data_files(CONFIGS[0], "test")
    if not files:
        raise InvalidInputError(f"{release.root}: the release lists no test split (data/{CONFIGS[0]}/test-*.parquet)")
    ids, n, shown, y, ad = [], [], [], [], []
    for path in files:
        pf = pq.ParquetFile(path)
        missing = [c for c in _TEST_COLUMNS if c not in pf.schema_arrow.names]
        if missing:
            raise SchemaError(f"{path}: test split lacks column(s) {', '.join(missing)}")
        offset = 0
        for batch in pf.iter_batches(batch_size=batch_rows, columns=list(_TEST_COLUMNS)):
            pol = batch.column("logging_policy")
            bad = pc.invert(pc.fill_null(pc.equal(pol, UNIFORM), False)).to_numpy(zero_copy_only=False)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InvalidInputError(
                    f"{path}: row {offset + i}: logging_policy {pol[i].as_py()!r}; calibrated sCTR needs a test split "
                    f"logged by the {UNIFORM!r} policy only"
                )
            ids.append(batch.column(_ID).cast(pa.large_string()))
            n.append(np.stack([pc.fill_null(pc.list_value_length(batch.column(c)), 0).to_numpy() for c in CANDIDATE_COLUMNS]))
            shown.append(np.stack([pc.fill_null(batch.column(c), -1).to_numpy() for c in EXPOSED_COLUMNS]))
            y.append(batch.column("click").to_numpy(zero_copy_only=False))
            ad.append(batch.column("ad_id").to_numpy(zero_copy_only=False))
            offset += batch.num_rows
    if not ids:
        raise InvalidInputError(f"{release.root}: the test split has no rows")
    try:
        log = M.UniformLog.build(np.concatenate(n, axis=1), np.concatenate(shown, axis=1), np.concatenate(y), np.concatenate(ad))
    except ValueError as exc:
        raise InvalidInputError(f"{release.root}: test split: {exc}") from None
    return _TestSplit(pa.concat_arrays(ids), log)


# ---------------------------------------------------------------------------------------- predictions
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or exc.__class__.__name__


def _is_str(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


def _is_float_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_floating(t.value_type)


def _check_schema(schema: pa.Schema, src: str) -> None:
    names = schema.names
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise PredictionsError(f"{src}: duplicated column(s) {', '.join(dup)}")
    missing = [c for c in PREDICTION_REQUIRED_COLUMNS if c not in names]
    if missing:
        raise PredictionsError(f"{src}: missing column(s) {', '.join(missing)}; expected {', '.join(PREDICTION_REQUIRED_COLUMNS)}")
    allowed = set(PREDICTION_REQUIRED_COLUMNS) | set(PREDICTION_OPTIONAL_COLUMNS)
    extra = [c for c in names if c not in allowed]
    if extra:
        raise PredictionsError(f"{src}: unexpected column(s) {', '.join(extra)}; allowed: impression_id, <component>_choice, <component>_scores")
    t = schema.field(_ID).type
    if not _is_str(t):
        raise PredictionsError(f"{src}: column {_ID!r}: expected string, got {t}")
    for c in COMPONENTS:
        t = schema.field(choice_col(c)).type
        if not pa.types.is_integer(t):
            raise PredictionsError(f"{src}: column {choice_col(c)!r}: expected an integer index (int16), got {t}; float or string choices are refused")
        if scores_col(c) in names and not _is_float_list(schema.field(scores_col(c)).type):
            raise PredictionsError(f"{src}: column {scores_col(c)!r}: expected list<float32>, got {schema.field(scores_col(c)).type}")


def _load_predictions(src: Any, max_bytes: int) -> tuple[pa.Table, str]:
    if isinstance(src, pa.Table):
        _check_schema(src.schema, "<table>")
        return src, "<table>"
    path = Path(src)
    if not path.exists():
        raise PredictionsError(f"{path}: no such file")
    if path.is_dir():
        raise PredictionsError(f"{path}: is a folder; expected one Parquet file")
    size = path.stat().st_size
    if size > max_bytes:
        raise PredictionsError(f"{path}: {size:,} bytes is over the {max_bytes:,}-byte limit for a predictions file (EvalConfig.max_bytes)")
    if size == 0:
        raise PredictionsError(f"{path}: empty file (0 bytes); expected Parquet")
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except Exception as exc:  # ArrowInvalid, OSError, ... : anything that is not Parquet
        raise PredictionsError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None
    _check_schema(schema, str(path))
    try:
        return pf.read(), str(path)
    except Exception as exc:
        raise PredictionsError(f"{path}: could not read ({_one_line(exc)})") from None


def _example(src: str, rows: np.ndarray, ids: pa.Array | None) -> str:
    i = int(rows[0])
    who = f"row {i}" + (f", impression_id {ids[i].as_py()!r}" if ids is not None else "")
    return f"{len(rows):,} row(s) (e.g. {who}"


def _check_ids(table: pa.Table, src: str, split: _TestSplit) -> np.ndarray:
    """-> pos int64 [rows]: the test row of each prediction row (a permutation of 0..R-1)."""
    R = split.log.rows
    ids = table.column(_ID).cast(pa.large_string()).combine_chunks()
    if ids.null_count:
        i = int(np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))[0])
        raise PredictionsError(f"{src}: column {_ID!r}: {ids.null_count:,} null id(s) (e.g. row {i})")
    if len(ids) == R and ids.equals(split.ids):
        return np.arange(R)
    pos = split.lookup(ids)
    unknown = np.flatnonzero(pos < 0)
    counts = np.bincount(pos[pos >= 0], minlength=R)
    dup = np.flatnonzero(counts > 1)
    missing = np.flatnonzero(counts == 0)
    if len(unknown) or len(dup) or len(missing):
        parts = []
        if len(missing):
            parts.append(f"{len(missing):,} test impression(s) missing (e.g. {split.ids[int(missing[0])].as_py()!r})")
        if len(dup):
            t = int(dup[0])
            parts.append(f"{len(dup):,} id(s) duplicated (e.g. {split.ids[t].as_py()!r} {counts[t]} times, rows "
                         f"{', '.join(str(int(r)) for r in np.flatnonzero(pos == t)[:3])})")
        if len(unknown):
            parts.append(f"{len(unknown):,} unknown id(s) not in the test split (e.g. row {int(unknown[0])}: "
                         f"{ids[int(unknown[0])].as_py()!r})")
        raise PredictionsError(f"{src}: column {_ID!r}: every test impression must appear exactly once, "
                               f"{R:,} expected: {'; '.join(parts)}")
    return pos


def _choices_from_table(table: pa.Table, src: str, split: _TestSplit) -> np.ndarray:
    """Validated choices int16 [K, R] in test order, -1 where the pool is empty."""
    if table.num_rows == 0:
        raise PredictionsError(f"{src}: no rows; expected one row per test impression ({split.log.rows:,})")
    pos = _check_ids(table, src, split)
    ids = table.column(_ID)
    n = split.log.n[:, pos]  # [K, rows] pool sizes in prediction-row order
    out = np.empty((K, split.log.rows), np.int16)
    for j, c in enumerate(COMPONENTS):
        col = table.column(choice_col(c))
        null = col.is_null().to_numpy(zero_copy_only=False)
        vals = pc.fill_null(col, 0).to_numpy()
        has = n[j] > 0
        rules = (
            (null & has, "null where the pool is non-empty", lambda i: f"pool of {n[j, i]}"),
            (~null & ~has, "a value where the pool is empty (must be null)", lambda i: f"value {vals[i]}"),
            (~null & has & ((vals < 0) | (vals >= n[j])), "out of range [0, len(pool))", lambda i: f"{vals[i]} for a pool of {n[j, i]}"),
        )
        for bad, what, detail in rules:
            rows = np.flatnonzero(bad)
            if len(rows):
                raise PredictionsError(f"{src}: column {choice_col(c)!r}: {what}: {_example(src, rows, ids)}: {detail(int(rows[0]))})")
        out[j, pos] = np.where(null, -1, vals.astype(np.int64))  # every value is now < len(pool) <= 32767
        if scores_col(c) in table.column_names:
            _check_scores(table.column(scores_col(c)).combine_chunks(), scores_col(c), src, n[j], ids)
    return out


def _check_scores(col: pa.Array, name: str, src: str, n: np.ndarray, ids) -> None:
    length = pc.fill_null(pc.list_value_length(col), 0).to_numpy()
    rows = np.flatnonzero(length != n)
    if len(rows):
        i = int(rows[0])
        raise PredictionsError(f"{src}: column {name!r}: length differs from the pool size: {_example(src, rows, ids)}: "
                               f"{length[i]} score(s) for a pool of {n[i]})")
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(flat))
    if len(bad):
        parent = pc.list_parent_indices(col).to_numpy()
        rows = np.unique(parent[bad])
        raise PredictionsError(f"{src}: column {name!r}: non-finite or null score: {_example(src, rows, ids)}: "
                               f"{flat[bad[0]]})")


def _choices_from_arrays(d: Mapping[str, Any], split: _TestSplit) -> np.ndarray:
    src = "<arrays>"
    extra = set(d) - {"choices", _ID}
    if "choices" not in d or extra:
        raise PredictionsError(f"{src}: expected keys 'choices' (and optionally 'impression_id'), got {sorted(d)}")
    ch = np.asarray(d["choices"])
    R = split.log.rows
    if not np.issubdtype(ch.dtype, np.integer):
        raise PredictionsError(f"{src}: 'choices' must be an integer array, got dtype {ch.dtype}; float or string choices are refused")
    if ch.shape != (len(ch), K) or (_ID not in d and len(ch) != R):
        raise PredictionsError(f"{src}: 'choices' must have shape [{R}, {K}] (test split order), got {list(ch.shape)}")
    if _ID in d:  # align by id through the table path
        cols = {_ID: pa.array(np.asarray(d[_ID]).astype(str))}
        for j, c in enumerate(COMPONENTS):
            cols[choice_col(c)] = pa.array(ch[:, j].astype(np.int64), mask=ch[:, j] < 0)
        return _choices_from_table(pa.table(cols), src, split)
    n = split.log.n.T  # [R, K]
    has = n > 0
    rules = (
        (has & ((ch < 0) | (ch >= n)), "out of range [0, len(pool))"),
        (~has & (ch != -1), "must be -1 where the pool is empty"),
    )
    for bad, what in rules:
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise PredictionsError(f"{src}: choices[:, {j}] ({choice_col(COMPONENTS[j])}): {what}: {int(bad.sum()):,} cell(s) "
                                   f"(e.g. row {i}, impression_id {split.ids[i].as_py()!r}: {ch[i, j]} for a pool of {n[i, j]})")
    return np.ascontiguousarray(ch.T, dtype=np.int16)


__all__: list[str] = []  # the Evaluator's private machinery: it offers check_predictions / evaluate
