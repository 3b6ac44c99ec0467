"""Score a policy offline on a release's uniform-logged test split: calibrated sCTR (paper, Algorithm 1)
per component and per combination, plain sCTR, NSCTR, lifts vs uniform (overall and by Table-4 bucket),
95 % intervals (score intervals built on the delta-method linearisation, see :mod:`genco_data.evaluate.metrics`;
``bootstrap=N`` as a cross-check) and, on synthetic releases, the matching ground truth from ``world/``.

NSCTR follows JD's "Parallel Ranking of Ads and Creatives in Real-Time Advertising Systems" (AAAI 2024,
Algorithm 1): each ad's replay CTR weighted by the ad's impressions; ads with no matched impression (0/0,
undefined in the paper) are left out — see :func:`genco_data.evaluate.metrics.nsctr`.

    >>> ev = Evaluator("releases/genco-synth")                       # doctest: +SKIP
    >>> result = ev.evaluate("predictions.parquet", bootstrap=200)   # doctest: +SKIP
    >>> print(result.format_table()); result.to_dict()["combination"]  # doctest: +SKIP

The input contract is :attr:`Evaluator.expected_input_format` (generated from
:class:`genco_data.format.records.PredictionRow`); every violation raises :class:`PredictionsError` with one line
naming the file, the column and an example row. The math lives in :mod:`genco_data.evaluate.metrics`;
``metric_validity`` checks, on a synthetic release, how well each offline metric ranks many policies by
their true CTR.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.evaluate import metrics as M
from genco_data.format.arrow import predictions_schema
from genco_data.format.components import (
    CANDIDATE_COLUMNS,
    COMPONENTS,
    CONFIGS,
    EXPOSED_COLUMNS,
    UNIFORM,
    bucket_labels,
    choice_col,
    scores_col,
)
from genco_data.errors import InvalidInputError, PredictionsError, SchemaError
from genco_data.format.records import PREDICTION_OPTIONAL_COLUMNS, PREDICTION_REQUIRED_COLUMNS, PredictionRow
from genco_data.release import MANIFEST_NAME, Release

K = len(COMPONENTS)
#: Default size limit of a predictions file, checked before reading (one row per test impression is
#: ~30 bytes without scores; 2 GB leaves room for scores of tens of millions of rows).
DEFAULT_MAX_BYTES = 2 * 1024**3
_TEST_COLUMNS = ("impression_id", "ad_id", "click", "logging_policy", *CANDIDATE_COLUMNS, *EXPOSED_COLUMNS)
_ID = "impression_id"
_AUTO = "auto"


@dataclass(frozen=True)
class EvalConfig:
    """Evaluator settings (the CLI fills one in; defaults are what `genco evaluate` uses)."""

    max_bytes: int = DEFAULT_MAX_BYTES  # predictions files larger than this are refused before reading
    confidence: float = 0.95  # two-sided level of every interval
    truth_samples: int = 16  # Monte-Carlo draws per row for the world's uniform / per-component truths (MC se ~1e-5 at 50k rows)
    batch_rows: int = 1 << 20  # rows per Arrow batch while streaming the test split
    validity_components: bool = True  # metric_validity: also per-component truths (6 world calls per policy)
    validity_samples: int = 4  # metric_validity: Monte-Carlo draws per row of each per-component truth

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if min(self.truth_samples, self.batch_rows, self.validity_samples) < 1:
            raise ValueError("truth_samples, validity_samples and batch_rows must be >= 1")


def _expected_input_format(max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    lines = ["Predictions: one Parquet file (or a pyarrow.Table) with exactly one row per test impression:"]
    for f in predictions_schema():
        info = PredictionRow.model_fields[f.name]
        desc, arrow_type = info.description or "", (info.json_schema_extra or {}).get("arrow", str(f.type))
        if f.name == _ID:
            rule = "not null; every test impression_id exactly once, no other ids"
        elif f.name in PREDICTION_REQUIRED_COLUMNS:
            rule = "0 <= choice < len(pool); any integer type is accepted, float/string are refused"
        else:
            rule = "finite values, len == len(pool); null or [] where the pool is empty"
        lines.append(f"  {f.name}: {arrow_type}{'' if f.name in PREDICTION_REQUIRED_COLUMNS else ', optional'} - {desc}; {rule}")
    lines.append("No other columns. Files over EvalConfig.max_bytes "
                 f"(default {max_bytes:,} bytes) are refused before reading.")
    lines.append('Python API also: {"choices": integer array [R, 6]} aligned to the test split order (-1 where the '
                 'pool is empty), optionally with "impression_id": [R] strings to align by id instead.')
    return "\n".join(lines)


_EXPECTED_OUTPUT_FORMAT = """EvaluationResult.metrics() -> {name: float}, names:
  calibrated_sctr/<component|combination>, plain_sctr/..., nsctr/..., uniform_ctr/..., lift/...
  (and <name>/ci_low, <name>/ci_high); lift/<component>/<bucket label> for Table 4;
  truth/policy, truth/uniform, truth/oracle, truth/headroom_captured on synthetic releases.
EvaluationResult.to_dict() nests the same with standard errors, bootstrap intervals, counts,
dataset_version and the manifest.json sha256."""


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


# --------------------------------------------------------------------------------------------- results
def _num(x: Any) -> Any:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its delta-method standard error and interval, and (optionally) the bootstrap's."""

    value: float
    se: float  # delta-method standard error (value ± z·se is the plain delta interval)
    ci_low: float
    ci_high: float
    ci_method: str  # "score" (Wilson, Kish effective size), "log-score+delta" (lift), "cluster-delta" (NSCTR)
    boot_se: float | None = None
    boot_low: float | None = None
    boot_high: float | None = None

    @classmethod
    def of(cls, value: float, se: float, lo: float, hi: float, method: str, boot: tuple | None = None) -> "Estimate":
        b = (None, None, None) if boot is None else tuple(float(v) for v in boot)
        return cls(float(value), float(se), float(lo), float(hi), method, *b)

    def covers(self, x: float) -> bool:
        return bool(self.ci_low <= x <= self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        return {k: v if isinstance(v, str) else _num(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Truth:
    """The matching true value of an estimate (synthetic releases): the world's CTR of what it estimates,
    the uniform policy's on the same rows, and the true lift. ``*_se`` are Monte-Carlo errors (0 if exact)."""

    value: float
    se: float
    uniform: float
    uniform_se: float

    @property
    def lift(self) -> float:
        return self.value / self.uniform - 1 if self.uniform > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**{k: _num(v) for k, v in asdict(self).items()}, "lift": _num(self.lift)}


@dataclass(frozen=True)
class BucketResult:
    label: str  # e.g. "<3", "3-5", ">5"
    rows: int
    matched: int
    calibrated: Estimate
    plain: Estimate
    uniform: Estimate
    lift: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "rows": self.rows, "matched": self.matched, "calibrated_sctr": self.calibrated.to_dict(),
                "plain_sctr": self.plain.to_dict(), "uniform_ctr": self.uniform.to_dict(), "lift": self.lift.to_dict()}


@dataclass(frozen=True)
class CellResult:
    """One component (per-component metrics) or the combination (all components at once)."""

    name: str
    rows: int  # test rows having the component (all rows for the combination)
    matched: int  # rows where the policy's choice equals the shown element (on every component)
    calibrated: Estimate
    plain: Estimate
    uniform: Estimate  # mean click of the uniform test log on the same rows
    lift: Estimate  # calibrated / uniform - 1
    nsctr: Estimate
    buckets: tuple[BucketResult, ...] = ()
    truth: Truth | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"rows": self.rows, "matched": self.matched, "calibrated_sctr": self.calibrated.to_dict(), "plain_sctr": self.plain.to_dict(),
             "uniform_ctr": self.uniform.to_dict(), "lift": self.lift.to_dict(), "nsctr": self.nsctr.to_dict(),
             "truth": None if self.truth is None else self.truth.to_dict()}
        if self.buckets:
            d["buckets"] = {b.label: b.to_dict() for b in self.buckets}
        return d


@dataclass(frozen=True)
class TruthSummary:
    policy: float  # the policy's exact mean true CTR (what the combination-level sCTR estimates)
    uniform: float
    uniform_se: float
    oracle: float  # the exact optimum's mean true CTR
    headroom_captured: float  # (policy - uniform) / (oracle - uniform)

    def to_dict(self) -> dict[str, Any]:
        return {k: _num(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EvaluationResult:
    release: str
    dataset_version: str
    format_version: str
    manifest_sha256: str
    predictions: str
    test_rows: int
    mean_click: float
    confidence: float
    bootstrap: int
    seed: int
    components: tuple[CellResult, ...]
    combination: CellResult
    truth: TruthSummary | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release, "dataset_version": self.dataset_version, "format_version": self.format_version,
            "manifest_sha256": self.manifest_sha256, "predictions": self.predictions, "test_rows": self.test_rows,
            "mean_click": _num(self.mean_click), "confidence": self.confidence,
            "ci_method": "score intervals (ratios), log-score+delta (lifts), cluster delta (NSCTR); se by the delta method"
                         + (f"; bootstrap {self.bootstrap} resamples" if self.bootstrap else ""), "seed": self.seed,
            "components": {c.name: c.to_dict() for c in self.components}, "combination": self.combination.to_dict(),
            "truth": None if self.truth is None else self.truth.to_dict(), "notes": list(self.notes),
        }

    def metrics(self) -> dict[str, float]:
        """Flat ``{name: float}`` (OGB style) — see ``Evaluator.expected_output_format``."""
        out: dict[str, float] = {}
        for cell in (*self.components, self.combination):
            for key, est in (("calibrated_sctr", cell.calibrated), ("plain_sctr", cell.plain), ("nsctr", cell.nsctr),
                             ("uniform_ctr", cell.uniform), ("lift", cell.lift)):
                out[f"{key}/{cell.name}"] = est.value
                out[f"{key}/{cell.name}/ci_low"] = est.ci_low
                out[f"{key}/{cell.name}/ci_high"] = est.ci_high
            for b in cell.buckets:
                out[f"lift/{cell.name}/{b.label}"] = b.lift.value
        if self.truth is not None:
            for k, v in asdict(self.truth).items():
                out[f"truth/{k}"] = v
        return out

    def summary_metrics(self) -> dict[str, float]:
        """Headline numbers for the leaderboard, finite values only: ``<cell>_calibrated_sctr``,
        ``<cell>_lift``, ``<cell>_plain_sctr``, ``<cell>_nsctr`` (cell = component or ``combination``),
        ``mean_click``, ``mean_component_lift`` (mean of the six per-component lifts); on synthetic releases ``true_ctr``, ``uniform_true_ctr``, ``oracle_ctr``,
        ``headroom_captured``."""
        out = {"mean_click": self.mean_click}
        for cell in (*self.components, self.combination):
            out.update({f"{cell.name}_calibrated_sctr": cell.calibrated.value, f"{cell.name}_lift": cell.lift.value,
                        f"{cell.name}_plain_sctr": cell.plain.value, f"{cell.name}_nsctr": cell.nsctr.value})
        lifts = [cell.lift.value for cell in self.components]
        if lifts and all(v is not None and math.isfinite(v) for v in lifts):
            # The board's ranking key: per-component lifts are far less noisy than the combination-level one
            # (whose Πn weights leave few matched rows on a small test split).
            out["mean_component_lift"] = sum(lifts) / len(lifts)
        if self.truth is not None:
            out.update({"true_ctr": self.truth.policy, "uniform_true_ctr": self.truth.uniform, "oracle_ctr": self.truth.oracle,
                        "headroom_captured": self.truth.headroom_captured})
        return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}

    def format_table(self) -> str:
        return _format_result(self)


# -------------------------------------------------------------------------------------------- evaluator
class Evaluator:
    """Offline replay evaluator of one release. ``world="auto"`` loads ``<release>/world/`` when present
    (``genco_data.synth.World``); pass an object with the World interface to inject one, or None for none.
    ``verify=True`` (default) first checks every file of the release against the manifest's sha256
    (:func:`genco_data.release.verify_checksums`, cached per process) and raises ``IntegrityError`` on a
    mismatch; ``verify=False`` skips that for speed on a release you trust."""

    expected_input_format: str = _expected_input_format()
    expected_output_format: str = _EXPECTED_OUTPUT_FORMAT

    def __init__(self, release: str | Path, *, config: EvalConfig | None = None, world: Any = _AUTO, verify: bool = True) -> None:
        self.release = Release.open(release, verify=verify)
        self.config = config or EvalConfig()
        self._world_arg = world
        self._split: _TestSplit | None = None
        self._world: Any = None
        self._world_loaded = False
        self._requests: pa.Table | None = None
        self._cache: dict[Any, Any] = {}
        self.notes: list[str] = []

    # ------------------------------------------------------------------ lazily loaded parts
    @property
    def split(self) -> _TestSplit:
        if self._split is None:
            self._split = _read_test_split(self.release, self.config.batch_rows)
        return self._split

    @property
    def log(self) -> M.UniformLog:
        return self.split.log

    @property
    def world(self) -> Any:
        if not self._world_loaded:
            self._world_loaded = True
            if not (isinstance(self._world_arg, str) and self._world_arg == _AUTO):
                self._world = self._world_arg
            elif self.release.world_dir is not None:
                try:
                    from genco_data.synth import World
                except ImportError as exc:
                    self.notes.append(f"world/ present but genco_data.synth.World is unavailable ({exc}); no truth")
                else:
                    self._world = World.load(self.release.world_dir)
        return self._world

    @property
    def requests(self) -> pa.Table:
        """The full test split (every impressions column), as the World's ``requests``."""
        if self._requests is None:
            tables = [pq.read_table(p) for p in self.release.data_files(CONFIGS[0], "test")]
            self._requests = pa.concat_tables(tables).combine_chunks()
        return self._requests

    # ------------------------------------------------------------------ public API
    def check_predictions(self, predictions: Any) -> np.ndarray:
        """Validate ``predictions`` (path, ``pa.Table`` or dict of arrays) -> choices int64 [R, 6] in test
        order, -1 where the pool is empty. Raises :class:`PredictionsError` (one line) on any violation."""
        return self._choices(predictions).T.astype(np.int64)

    def evaluate(self, predictions: Any, bootstrap: int = 0, seed: int = 0) -> EvaluationResult:
        """Every metric of the policy in ``predictions`` with its interval and, on synthetic releases, its truth."""
        if bootstrap < 0:
            raise InvalidInputError(f"bootstrap must be >= 0, got {bootstrap}")
        label = "<arrays>" if isinstance(predictions, Mapping) else "<table>" if isinstance(predictions, pa.Table) else str(predictions)
        choices = self._choices(predictions)
        log, z, conf = self.log, M.z_value(self.config.confidence), self.config.confidence
        matches = M.match(log, choices)
        est = M.estimates(M.sufficient_stats(log, matches), z)
        ns_val, ns_se = M.nsctr(log, matches)
        boot = None
        if bootstrap:
            samples = M.bootstrap(log, matches, bootstrap, np.random.default_rng(seed))
            boot = {name: M.bootstrap_summary(s, conf) for name, s in samples.items()}
        truth, truths = self._truth(choices, seed) if self.world is not None else (None, {})

        def e(name: str, row: int, col: int = M.ALL) -> Estimate:
            b = None if boot is None else tuple(a[row, col] for a in boot[name])
            return Estimate.of(est[name][row, col], est[f"{name}_se"][row, col], est[f"{name}_lo"][row, col], est[f"{name}_hi"][row, col],
                               "log-score+delta" if name == "lift" else "score", b)

        def cell(row: int, name: str) -> CellResult:
            b = None if boot is None else tuple(a[row] for a in boot["nsctr"])
            buckets = ()
            if row < K:
                buckets = tuple(
                    BucketResult(lab, int(est["rows"][row, k]), int(est["matched"][row, k]), e("calibrated", row, k), e("plain", row, k),
                                 e("uniform", row, k), e("lift", row, k))
                    for k, lab in enumerate(bucket_labels(name))
                )
            return CellResult(name, int(est["rows"][row, M.ALL]), int(est["matched"][row, M.ALL]), e("calibrated", row), e("plain", row),
                              e("uniform", row), e("lift", row),
                              Estimate.of(ns_val[row], ns_se[row], ns_val[row] - z * ns_se[row], ns_val[row] + z * ns_se[row], "cluster-delta", b),
                              buckets, truths.get(row))

        m = self.release.manifest
        return EvaluationResult(
            release=str(self.release.root), dataset_version=m.dataset_version, format_version=m.format_version,
            manifest_sha256=self.manifest_sha256, predictions=label, test_rows=log.rows, mean_click=float(log.y.mean()),
            confidence=conf, bootstrap=int(bootstrap), seed=int(seed),
            components=tuple(cell(j, c) for j, c in enumerate(COMPONENTS)), combination=cell(M.COMB, "combination"),
            truth=truth, notes=tuple(self.notes),
        )

    @property
    def manifest_sha256(self) -> str:
        if "sha" not in self._cache:
            self._cache["sha"] = hashlib.sha256((self.release.root / MANIFEST_NAME).read_bytes()).hexdigest()
        return self._cache["sha"]

    # ------------------------------------------------------------------ private
    def _choices(self, predictions: Any) -> np.ndarray:
        if isinstance(predictions, Mapping):
            return _choices_from_arrays(predictions, self.split)
        table, src = _load_predictions(predictions, self.config.max_bytes)
        return _choices_from_table(table, src, self.split)

    def _uniform_truth(self, j: int | None, seed: int) -> tuple[float, float]:
        """The uniform policy's true CTR on all rows (j None) or on the rows having component j (cached)."""
        key = ("uniform", j, seed)
        if key not in self._cache:
            req = self.requests if j is None or self.log.present[j].all() else self.requests.filter(pa.array(self.log.present[j]))
            v, se = self.world.uniform_value(req, n_samples=self.config.truth_samples, seed=seed)
            self._cache[key] = (float(v), float(se))
        return self._cache[key]

    def _truth(self, choices: np.ndarray, seed: int) -> tuple[TruthSummary, dict[int, Truth]]:
        world, req, log = self.world, self.requests, self.log
        ch = np.ascontiguousarray(choices.T, dtype=np.int64)  # [R, K]
        policy = float(world.policy_value(req, ch))
        uni, uni_se = self._uniform_truth(None, seed)
        if "oracle" not in self._cache:
            self._cache["oracle"] = float(np.mean(world.optimum(req)[1]))
        oracle = self._cache["oracle"]
        head = (policy - uni) / (oracle - uni) if oracle > uni else float("nan")
        truths = {M.COMB: Truth(policy, 0.0, uni, uni_se)}
        for j in range(K):
            mask = log.present[j]
            if not mask.any():
                continue
            sub, sub_ch = (req, ch) if mask.all() else (req.filter(pa.array(mask)), ch[mask])
            v, se = world.component_value(sub, sub_ch, j, n_samples=self.config.truth_samples, seed=seed)
            truths[j] = Truth(float(v), float(se), *self._uniform_truth(j, seed))
        return TruthSummary(policy, uni, uni_se, oracle, head), truths


# ----------------------------------------------------------------------------------- metric validity
def _padded(req: pa.Table, j: int, n: np.ndarray) -> np.ndarray:
    """Element ids of component j as int64 [R, kmax] (-1 beyond the pool)."""
    flat = pc.list_flatten(req.column(CANDIDATE_COLUMNS[j])).to_numpy()
    out = np.full((len(n), max(int(n.max()), 0)), -1, np.int64)
    rows = np.repeat(np.arange(len(n)), n)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]])
    out[rows, np.arange(len(flat)) - starts[rows]] = flat
    return out


def _slot_scores(world: Any, req: pa.Table, base: np.ndarray, n: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per component j, the true CTR of every slot with the other components at ``base`` (the oracle)
    -> scores K x [R, kmax_j] (-inf beyond the pool), and each slot's context-free quality (its element's
    mean score over every request that offers it)."""
    scores, quality = [], []
    for j in range(K):
        kmax = int(n[j].max())
        S = np.full((len(base), kmax), -np.inf)
        for k in range(kmax):
            rows = n[j] > k
            ch = base.copy()
            ch[rows, j] = k
            S[rows, k] = np.asarray(world.true_ctr(req, ch), dtype=np.float64)[rows]
        E = _padded(req, j, n[j])
        valid = E >= 0
        Q = np.full_like(S, -np.inf)
        if valid.any():
            uniq, inv = np.unique(E[valid], return_inverse=True)
            mean = np.bincount(inv, weights=S[valid], minlength=len(uniq)) / np.bincount(inv, minlength=len(uniq))
            Q[valid] = mean[inv]
        scores.append(S)
        quality.append(Q)
    return scores, quality


def metric_validity(release_path: str | Path, n_policies: int = 60, seed: int = 0, progress: bool = False, *,
                    world: Any = _AUTO, config: EvalConfig | None = None, verify: bool = True) -> dict[str, Any]:
    """On a synthetic release, how well each offline metric tracks the truth over ``n_policies`` diverse
    policies (:func:`genco_data.evaluate.metrics.policy_zoo`).

    Levels: ``combination`` (calibrated / plain sCTR and NSCTR on every component at once vs the policy's
    exact true CTR) and each component (its per-component metrics vs ``world.component_value`` on the rows
    having it). Per metric: Pearson, Kendall tau-b, bias, RMSE and CI coverage (``metrics.agreement``).
    """
    if n_policies < 3:
        raise InvalidInputError(f"n_policies must be >= 3, got {n_policies}")
    ev = Evaluator(release_path, config=config, world=world, verify=verify)
    W, cfg = ev.world, ev.config
    if W is None:
        raise InvalidInputError(f"{release_path}: metric validity needs a synthetic release with its ground truth (world/)")
    log, req, z = ev.log, ev.requests, M.z_value(cfg.confidence)
    opt = np.ascontiguousarray(np.asarray(W.optimum(req)[0]), dtype=np.int64)
    scores, quality = _slot_scores(W, req, opt, log.n)
    rng = np.random.default_rng(seed)
    zoo = M.policy_zoo(log.n.T, scores, opt, quality, rng, n_policies)
    levels = ["combination", *COMPONENTS] if cfg.validity_components else ["combination"]
    names = ("calibrated_sctr", "plain_sctr", "nsctr")
    cols: dict[str, dict[str, list]] = {lv: {k: [] for k in ("truth", *names)} for lv in levels}
    policies = []
    it = zoo
    if progress:
        from tqdm import tqdm

        it = tqdm(zoo, desc="policies", unit="policy")
    for name, family, ch in it:
        matches = M.match(log, np.ascontiguousarray(ch.T, dtype=np.int16))
        est = M.estimates(M.sufficient_stats(log, matches), z)
        ns, ns_se = M.nsctr(log, matches)
        rec = {"name": name, "family": family}
        for lv in levels:
            row = M.COMB if lv == "combination" else COMPONENTS.index(lv)
            if lv == "combination":
                truth = float(W.policy_value(req, ch))
            else:
                mask = log.present[row]
                sub, sub_ch = (req, ch) if mask.all() else (req.filter(pa.array(mask)), ch[mask])
                truth = float(W.component_value(sub, sub_ch, row, n_samples=cfg.validity_samples, seed=seed)[0]) if mask.any() else float("nan")
            a = M.ALL
            vals = {"calibrated_sctr": (est["calibrated"][row, a], est["calibrated_lo"][row, a], est["calibrated_hi"][row, a]),
                    "plain_sctr": (est["plain"][row, a], est["plain_lo"][row, a], est["plain_hi"][row, a]),
                    "nsctr": (ns[row], ns[row] - z * ns_se[row], ns[row] + z * ns_se[row])}
            cols[lv]["truth"].append(truth)
            for m, v in vals.items():
                cols[lv][m].append(tuple(float(x) for x in v))
            rec[lv] = {"truth": _num(truth), **{m: _num(v[0]) for m, v in vals.items()}}
        policies.append(rec)
    summary = {lv: {m: M.agreement(*np.array(c[m]).T, np.array(c["truth"])) for m in names} for lv, c in cols.items()}
    truth = np.array(cols["combination"]["truth"])
    return {
        "release": str(ev.release.root), "dataset_version": ev.release.manifest.dataset_version, "manifest_sha256": ev.manifest_sha256,
        "test_rows": log.rows, "n_policies": len(zoo), "seed": seed, "confidence": cfg.confidence,
        "truth_range": [float(truth.min()), float(truth.max())], "oracle": _num(truth[0]),
        "levels": {lv: {m: {k: _num(v) for k, v in d.items()} for m, d in s.items()} for lv, s in summary.items()},
        "policies": policies,
    }


# ---------------------------------------------------------------------------------------------- text
def _pct(x: float | None, signed: bool = False, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x * 100:{'+' if signed else ''}.{digits}f}%"


def _ci(e: Estimate, signed: bool = False, boot: bool = False) -> str:
    lo, hi = (e.boot_low, e.boot_high) if boot else (e.ci_low, e.ci_high)
    if lo is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "[n/a]"
    return f"[{_pct(lo, signed)}, {_pct(hi, signed)}]"


def _format_result(r: EvaluationResult) -> str:
    level = f"{r.confidence * 100:g}%"
    lines = [
        f"release {r.dataset_version} (format {r.format_version}, manifest sha256 {r.manifest_sha256[:12]}) - {r.release}",
        f"predictions {r.predictions}; test split {r.test_rows:,} uniform-logged rows, mean click {_pct(r.mean_click)}",
        f"{level} intervals: score (Wilson, Kish effective size) for ratios, log-score + joint delta for lifts, cluster delta for NSCTR"
        + (f"; bootstrap cross-check: {r.bootstrap} resamples, seed {r.seed}" if r.bootstrap else ""),
        "",
        f"{'':<20}{'rows':>10}{'matched':>9}  {'calibrated sCTR [' + level + ' CI]':<34}{'plain sCTR':>11}{'NSCTR':>9}"
        f"  {'lift vs uniform [' + level + ' CI]':<34}{'truth':>9}{'true lift':>10}",
    ]
    for c in (*r.components, r.combination):
        t = c.truth
        lines.append(
            f"{c.name:<20}{c.rows:>10,}{c.matched:>9,}  {_pct(c.calibrated.value) + ' ' + _ci(c.calibrated):<34}{_pct(c.plain.value):>11}"
            f"{_pct(c.nsctr.value):>9}  {_pct(c.lift.value, True) + ' ' + _ci(c.lift, True):<34}"
            f"{_pct(t.value if t else None):>9}{_pct(t.lift if t else None, True):>10}"
        )
    if r.bootstrap:
        lines += ["", f"bootstrap (percentile) vs reported {level} intervals",
                  f"{'':<20}{'calibrated sCTR: reported':<34}{'bootstrap':<34}{'lift: reported':<34}bootstrap"]
        for c in (*r.components, r.combination):
            lines.append(f"{c.name:<20}{_ci(c.calibrated):<34}{_ci(c.calibrated, boot=True):<34}{_ci(c.lift, True):<34}{_ci(c.lift, True, True)}")
    lines += ["", "lift vs uniform by candidate count (Table 4: [<3, 3-5, >5] title/image/marketing, [<4, 4-8, >8] others), +- half CI width"]
    lines.append(f"{'bucket':<10}" + "".join(f"{c.name:>22}" for c in r.components))
    for k, lab in enumerate(("low", "mid", "high")):
        cells = []
        for c in r.components:
            b = c.buckets[k]
            half = (b.lift.ci_high - b.lift.ci_low) / 2
            ok = b.matched and math.isfinite(b.lift.value) and math.isfinite(half)
            cells.append(f"{b.label:>5} {_pct(b.lift.value, True, 2)} +-{_pct(half, False, 2)}" if ok else f"{b.label:>5} n/a")
        lines.append(f"{lab:<10}" + "".join(f"{s:>22}" for s in cells))
    if r.truth is not None:
        t = r.truth
        lines += ["", f"truth (simulator world): policy {_pct(t.policy)}, uniform {_pct(t.uniform)} (+-{_pct(t.uniform_se, digits=4)} MC), "
                  f"oracle {_pct(t.oracle)}, headroom captured {_pct(t.headroom_captured, digits=1)}",
                  "  each row's truth is what its estimate targets: per component = that component's choice with the "
                  "others uniform (rows having it); combination = the policy's own CTR"]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def format_validity(report: Mapping[str, Any]) -> str:
    """Render :func:`metric_validity`'s report as a table."""
    lo, hi = report["truth_range"]
    lines = [
        f"metric validity on {report['release']} (release {report['dataset_version']}, {report['test_rows']:,} test rows)",
        f"{report['n_policies']} policies (seed {report['seed']}), true CTR from {_pct(lo)} to {_pct(hi)}",
        "",
        f"{'level':<21}{'metric':<17}{'pearson':>8}{'kendall':>9}{'bias':>10}{'rmse':>9}{'CI cover':>10}",
    ]
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for lv, per in report["levels"].items():
        for m, d in per.items():
            lines.append(f"{lv:<21}{m:<17}{f(d['pearson']):>8}{f(d['kendall']):>9}{_pct(d['bias'], True):>10}"
                         f"{_pct(d['rmse']):>9}{_pct(d['ci_coverage'], digits=0):>10}")
    lines.append("truth: combination = the policy's exact CTR; component = its choice there, uniform elsewhere (world.component_value)")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "EvalConfig",
    "Estimate",
    "Truth",
    "BucketResult",
    "CellResult",
    "TruthSummary",
    "EvaluationResult",
    "Evaluator",
    "metric_validity",
    "format_validity",
]
