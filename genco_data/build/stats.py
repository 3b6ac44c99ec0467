"""Table-1 statistics of a release split, in bounded memory and mergeable across workers, beside the paper's.

For a split with rows ``r`` on days ``d(r)`` for ads ``a(r)``, and per component ``c`` the pool ``P_c(r)``
(possibly empty); ``A`` = the distinct ads, ``A_c`` = the ads with a non-empty ``c`` pool in at least one row:

* ``rows``, ``clicks``, ``ctr = clicks / rows``, ``days`` (distinct days), ``first_day``, ``last_day``: exact;
* ``distinct_ids``: distinct ``user_id``, ``ad_id``, ``query_id`` (non-null) and ``query_segments`` elements
  (what hashed embedding tables are sized from); ``distinct_users`` / ``distinct_ads`` repeat the first two;
* per component (the paper's Table 1, its definitions):

  - ``distinct_ids`` = ``|∪_r P_c(r)|`` (paper ``# ids``); ``ids_per_ad`` = ``distinct_ids / |A|``;
  - ``coverage`` = ``|A_c| / |A|``, the share of **ads** having the component (paper: "% of ads with the
    component");
  - ``avg_candidates`` = mean over ads ``a ∈ A_c`` of ``n_c(a)``, where ``n_c(a)`` is the mean pool length of
    ``a``'s rows with a non-empty pool (an ad's pool may change over days; this averages it);
  - ``exposures_per_candidate_per_day`` (paper "# expo_per_day") = ``Σ_day X_c(day) / Σ_day D_c(day)``, with
    ``X_c(day)`` the exposures of ``c`` that day (rows with a non-empty pool: each shows one element) and
    ``D_c(day) = |∪_{r on day} P_c(r)|`` the distinct candidates in that day's pools: the mean, over the
    (candidate, day) pairs where a candidate was eligible, of how often it was shown;
  - ``rows_coverage`` / ``rows_avg_candidates``: the same two figures per *row* (share of rows with a pool,
    mean pool length over them), what earlier releases called coverage.

Bounded memory. Distinct counts are :class:`~genco_data.build.sketch.DistinctCounter` s: exact up to
``EXACT_LIMIT`` values (per day: ``DAILY_EXACT_LIMIT``), an Apache DataSketches HLL beyond. The per-ad
figures come from a **bottom-k sample of ads**: the :data:`ADS_SAMPLED` ads with the smallest
``splitmix64(ad_id)``, with exact per-ad aggregates (coordinated sampling: every worker keeps its own
bottom-k; the bottom-k of the union is the bottom-k of their union, each sampled ad with every one of its
rows). A uniform random sample of ads, so the per-ad means are unbiased; exact when the split has at most
:data:`ADS_SAMPLED` ads. Every figure that is an estimate is listed under ``estimates`` with its method and a
~95 % interval (``low``, ``high``); figures absent from ``estimates`` are exact.
"""
from __future__ import annotations

import datetime as _dt
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.format.components import (
    COMPONENTS,
    N_COMPONENTS,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    PAPER_TRAIN_CTR,
    SPLITS,
    candidates_col,
)
from genco_data.build.sketch import BOUND_STDS, EXACT_LIMIT, HLL_LG_K, DistinctCounter, DistinctValues
from genco_data.build.unique import distinct_values, splitmix64

#: Paper, Table 1 (train set): distinct ids per component (``# ids``) for 110 M ads, and exposures per
#: candidate per day (``# expo_per_day``).
PAPER_ADS = 110_000_000
PAPER_DISTINCT_IDS: dict[str, int] = {
    "title": 230_000_000, "image": 140_000_000, "marketing": 15_000_000,
    "highlight": 300_000_000, "attribute": 70_000_000, "structure_attribute": 320_000_000,
}
PAPER_EXPOSURES_PER_DAY: dict[str, float] = {
    "title": 2.3, "image": 3.6, "marketing": 11.5, "highlight": 1.9, "attribute": 1.3, "structure_attribute": 1.0,
}
#: Ads in the bottom-k sample behind the per-ad figures (coverage, avg_candidates).
ADS_SAMPLED = 1 << 16
#: Exact distinct counting per (component, day) up to this many values (then an HLL).
DAILY_EXACT_LIMIT = 4 << HLL_LG_K
#: The id columns whose distinct values are counted.
ID_COLUMNS: tuple[str, ...] = ("user_id", "ad_id", "query_id", "query_segments")
#: Columns :class:`StatsAccumulator` reads.
STATS_COLUMNS: tuple[str, ...] = ("day", "click") + ID_COLUMNS + tuple(candidates_col(c) for c in COMPONENTS)
_EPOCH = _dt.date(1970, 1, 1)
_Z = 1.959963984540054  # two-sided 95 % normal quantile, for the sampled means


def _flat(arr: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(lengths int64 [n], values int64 [E]) of a list<int64> column (null lists have length 0)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    return lengths, values


def _ints(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        arr = arr.filter(arr.is_valid())
    return arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


# ----------------------------------------------------------------------------------- the ads sample
class AdSample:
    """The ``k`` ads with the smallest ``splitmix64(ad_id)`` and, per ad, exact aggregates over all of its rows:
    ``agg[:, 0]`` rows, ``agg[:, 1 + j]`` rows with a non-empty pool of component j, ``agg[:, 1 + 6 + j]`` the
    sum of those pools' lengths. Mergeable (see the module docstring)."""

    WIDTH = 1 + 2 * N_COMPONENTS

    def __init__(self, k: int = ADS_SAMPLED) -> None:
        self.k = k
        self.keys = np.zeros(0, dtype=np.uint64)  # sorted
        self.agg = np.zeros((0, self.WIDTH), dtype=np.int64)
        self.full_threshold: np.uint64 | None = None  # the k-th key once k ads are held

    def update(self, ads: np.ndarray, lengths: np.ndarray) -> None:
        """``ads`` int64 [n]; ``lengths`` int64 [n, 6] pool lengths of each row."""
        keys = splitmix64(ads.astype(np.uint64))
        if self.full_threshold is not None:
            sel = keys <= self.full_threshold
            if not sel.any():
                return
            keys, lengths = keys[sel], lengths[sel]
        enc = pc.dictionary_encode(pa.array(keys))  # hash-based grouping (a sort is slow on 64-bit keys)
        uniq, inv = enc.dictionary.to_numpy(), enc.indices.to_numpy()
        m = len(uniq)
        agg = np.empty((m, self.WIDTH), dtype=np.int64)
        agg[:, 0] = np.bincount(inv, minlength=m)
        for j in range(N_COMPONENTS):
            ln = lengths[:, j]
            agg[:, 1 + j] = np.bincount(inv, weights=ln > 0, minlength=m)
            agg[:, 1 + N_COMPONENTS + j] = np.bincount(inv, weights=ln, minlength=m)
        order = np.argsort(uniq)
        self._absorb(uniq[order], agg[order])

    def _absorb(self, keys: np.ndarray, agg: np.ndarray) -> None:
        """Add the aggregates of ``keys`` (sorted, distinct) to the sample's, then keep the ``k`` smallest keys."""
        if len(self.keys):
            i = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            hit = self.keys[i] == keys
            if hit.any():
                self.agg[i[hit]] += agg[hit]  # distinct keys: distinct rows of self.agg
                keys, agg = keys[~hit], agg[~hit]
            if len(keys):
                all_keys = np.concatenate([self.keys, keys])
                order = np.argsort(all_keys, kind="stable")  # two sorted runs: a merge
                keys, agg = all_keys[order], np.concatenate([self.agg, agg])[order]
            else:
                keys, agg = self.keys, self.agg
        else:
            agg = agg.copy()  # updated in place later: never share another sample's array
        if len(keys) > self.k:
            keys, agg = keys[: self.k], agg[: self.k]
        self.keys, self.agg = keys, agg
        if len(keys) >= self.k:
            self.full_threshold = keys[-1]

    def merge(self, other: "AdSample") -> None:
        self._absorb(other.keys, other.agg)


# --------------------------------------------------------------------------------- the accumulator
class StatsAccumulator:
    """Feed tables (any batch boundaries, rows in any order, any split among workers: :meth:`merge`) with
    :data:`STATS_COLUMNS`; :meth:`result` gives the figures of the module docstring."""

    def __init__(self) -> None:
        self.rows = 0
        self.clicks = 0
        self.day_rows: dict[int, int] = defaultdict(int)
        self.ids = {name: DistinctCounter() for name in ID_COLUMNS}
        self.elements = {c: DistinctCounter() for c in COMPONENTS}
        self.covered_rows = np.zeros(N_COMPONENTS, dtype=np.int64)
        self.candidate_slots = np.zeros(N_COMPONENTS, dtype=np.int64)
        self.daily: dict[str, dict[int, DistinctCounter]] = {c: {} for c in COMPONENTS}
        self.daily_exposures: dict[str, dict[int, int]] = {c: defaultdict(int) for c in COMPONENTS}
        self.ads = AdSample()

    def update(self, table: pa.Table | pa.RecordBatch) -> None:
        n = table.num_rows
        if n == 0:
            return
        self.rows += n
        self.clicks += int(pc.sum(table.column("click").cast(pa.int64())).as_py() or 0)
        days = table.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        order = None
        if len(days) > 1 and np.any(days[1:] < days[:-1]):  # group rows by day; the figures ignore row order
            order = np.argsort(days, kind="stable")
            days = days[order]
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        uniq = days[np.concatenate([[0], cuts])]
        starts = np.concatenate([[0], cuts, [n]])
        for d, a, b in zip(uniq.tolist(), starts[:-1].tolist(), starts[1:].tolist()):
            self.day_rows[d] += b - a
        for name in ("user_id", "ad_id", "query_id"):
            self.ids[name].update(_ints(table.column(name)))
        self.ids["query_segments"].update(_flat(table.column("query_segments"))[1])
        lengths = np.zeros((n, N_COMPONENTS), dtype=np.int64)
        for j, c in enumerate(COMPONENTS):
            col = table.column(candidates_col(c))
            if order is not None:
                col = col.take(pa.array(order))
            ln, values = _flat(col)
            lengths[:, j] = ln
            self.covered_rows[j] += int(np.count_nonzero(ln))
            self.candidate_slots[j] += int(ln.sum())
            elem = np.concatenate([[0], np.cumsum(ln)])[starts]  # element range of each day
            has = np.concatenate([[0], np.cumsum(ln > 0)])[starts]  # rows with a pool before each day start
            for k, d in enumerate(uniq.tolist()):
                a, b = int(elem[k]), int(elem[k + 1])
                if b > a:
                    u = DistinctValues(distinct_values(values[a:b]))  # once per day: the day's and the split's
                    self._daily(c, d).add(u)
                    self.elements[c].add(u)
                    self.daily_exposures[c][d] += int(has[k + 1] - has[k])
        ads = _ints(table.column("ad_id"))
        if order is not None:
            ads = ads[order]
        self.ads.update(ads, lengths)

    def _daily(self, c: str, day: int) -> DistinctCounter:
        s = self.daily[c].get(day)
        if s is None:
            s = self.daily[c][day] = DistinctCounter(exact_limit=DAILY_EXACT_LIMIT)
        return s

    def merge(self, other: "StatsAccumulator") -> None:
        """Add ``other``'s rows (disjoint from this accumulator's)."""
        self.rows += other.rows
        self.clicks += other.clicks
        for d, k in other.day_rows.items():
            self.day_rows[d] += k
        for name in ID_COLUMNS:
            self.ids[name].merge(other.ids[name])
        for c in COMPONENTS:
            self.elements[c].merge(other.elements[c])
            for d, counter in other.daily[c].items():
                self._daily(c, d).merge(counter)
            for d, k in other.daily_exposures[c].items():
                self.daily_exposures[c][d] += k
        self.covered_rows += other.covered_rows
        self.candidate_slots += other.candidate_slots
        self.ads.merge(other.ads)

    # ------------------------------------------------------------------------------------ the figures
    def result(self) -> dict[str, Any]:
        rows = self.rows
        days = sorted(self.day_rows)
        estimates: dict[str, dict[str, Any]] = {}
        ids = {name: self.ids[name].result() for name in ID_COLUMNS}
        for name, r in ids.items():
            if not r["exact"]:
                estimates[f"distinct_ids.{name}"] = _hll_note(r)
        ads = ids["ad_id"]
        sample = self.ads
        n_sampled = len(sample.keys)
        sampled_all = n_sampled < sample.k or (ads["exact"] and ads["value"] <= n_sampled)
        fpc = 0.0 if sampled_all else max(0.0, 1.0 - n_sampled / max(ads["value"], 1))  # finite population
        comps = {}
        for j, c in enumerate(COMPONENTS):
            el = self.elements[c].result()
            has = sample.agg[:, 1 + j] > 0
            cov = float(has.mean()) if n_sampled else None
            per_ad = sample.agg[has, 1 + N_COMPONENTS + j] / sample.agg[has, 1 + j] if has.any() else np.zeros(0)
            avg = float(per_ad.mean()) if len(per_ad) else None
            daily = [self.daily[c][d].result() for d in sorted(self.daily[c])]
            exposures = sum(self.daily_exposures[c].values())
            distinct_daily = sum(r["value"] for r in daily)
            expo = exposures / distinct_daily if distinct_daily else None
            ids_per_ad = el["value"] / ads["value"] if ads["value"] else None
            comps[c] = {
                "distinct_ids": el["value"],
                "ids_per_ad": ids_per_ad,
                "coverage": cov,
                "avg_candidates": avg,
                "exposures_per_candidate_per_day": expo,
                "rows_coverage": int(self.covered_rows[j]) / rows if rows else None,
                "rows_avg_candidates": int(self.candidate_slots[j]) / int(self.covered_rows[j]) if self.covered_rows[j] else None,
                "paper_ids_per_ad": PAPER_DISTINCT_IDS[c] / PAPER_ADS,
                "paper_coverage": PAPER_COVERAGE[c],
                "paper_avg_candidates": PAPER_AVG_CANDIDATES[c],
                "paper_exposures_per_candidate_per_day": PAPER_EXPOSURES_PER_DAY[c],
            }
            if not el["exact"]:
                estimates[f"components.{c}.distinct_ids"] = _hll_note(el)
            if ids_per_ad is not None and not (el["exact"] and ads["exact"]):
                estimates[f"components.{c}.ids_per_ad"] = {
                    "method": "ratio of the two distinct counts (each exact or HLL)",
                    "low": el.get("low", el["value"]) / ads.get("high", ads["value"]),
                    "high": el.get("high", el["value"]) / max(ads.get("low", ads["value"]), 1),
                }
            if not sampled_all and cov is not None:
                half = _Z * math.sqrt(cov * (1 - cov) / n_sampled * fpc)
                estimates[f"components.{c}.coverage"] = _sample_note(n_sampled, cov - half, cov + half)
                if len(per_ad) > 1:
                    half = _Z * float(per_ad.std(ddof=1)) / math.sqrt(len(per_ad)) * math.sqrt(fpc)
                    estimates[f"components.{c}.avg_candidates"] = _sample_note(n_sampled, avg - half, avg + half)
            if expo is not None and not all(r["exact"] for r in daily):
                low_d = sum(r.get("low", r["value"]) for r in daily)
                high_d = sum(r.get("high", r["value"]) for r in daily)
                estimates[f"components.{c}.exposures_per_candidate_per_day"] = {
                    "method": f"exposures / Σ_day distinct candidates (per-day HLL lg_k={HLL_LG_K} above {DAILY_EXACT_LIMIT:,})",
                    "low": exposures / high_d,
                    "high": exposures / max(low_d, 1),
                }
        return {
            "rows": rows,
            "clicks": self.clicks,
            "ctr": self.clicks / rows if rows else None,
            "paper_ctr": PAPER_TRAIN_CTR,
            "days": len(days),
            "first_day": (_EPOCH + _dt.timedelta(days=days[0])).isoformat() if days else None,
            "last_day": (_EPOCH + _dt.timedelta(days=days[-1])).isoformat() if days else None,
            "distinct_users": ids["user_id"]["value"],
            "distinct_ads": ads["value"],
            "distinct_ids": {name: r["value"] for name, r in ids.items()},
            "ads_sampled": n_sampled,
            "components": comps,
            "estimates": estimates,
        }


def _hll_note(r: dict[str, Any]) -> dict[str, Any]:
    return {"method": f"DataSketches HLL_8 lg_k={HLL_LG_K} (exact up to {EXACT_LIMIT:,} values)",
            "low": r["low"], "high": r["high"], "stds": BOUND_STDS}


def _sample_note(k: int, low: float, high: float) -> dict[str, Any]:
    return {"method": f"bottom-{k:,} sample of ads by splitmix64(ad_id), 95 % normal interval", "low": low, "high": high}


# ---------------------------------------------------------------------------------------- releases
def files_stats(files: list[Path], batch_rows: int = 65_536, progress: bool = False) -> dict[str, Any]:
    """Statistics of the rows of these impressions Parquet files (read column-projected, batch by batch)."""
    from tqdm.auto import tqdm

    acc = StatsAccumulator()
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files) if progress else None
    with tqdm(total=total, unit="rows", unit_scale=True, desc="stats", disable=not progress, leave=False) as bar:
        for f in files:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=batch_rows, columns=list(STATS_COLUMNS)):
                acc.update(batch)
                bar.update(batch.num_rows)
    return acc.result()


def release_stats(path: str | Path, split: str = "train", progress: bool = False) -> dict[str, Any]:
    """Table-1 statistics of ``split`` of the release at ``path`` (config ``impressions``); ``progress`` shows
    a bar over the rows read.

    Returns the dict of :meth:`StatsAccumulator.result` plus ``release``, ``dataset_version``, ``split``."""
    from genco_data.release import Release  # release imports nothing of stats; keep the edge one-way

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rel = Release.open(path)
    out = files_stats(rel.data_files("impressions", split), progress=progress)
    return {"release": str(path), "dataset_version": rel.manifest.dataset_version, "split": split, **out}


def _pct(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{nd}f} %"


def _num(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def format_stats(stats: dict[str, Any]) -> str:
    """A readable table of :func:`release_stats` output: the four Table-1 rows per component, the paper's
    figure in parentheses; ``~`` marks an estimate (its interval is in ``--json``'s ``estimates``)."""
    head = stats.get("split", "train")
    where = f" of {stats['release']} (v{stats['dataset_version']})" if "release" in stats else ""
    span = f"{stats['first_day']} .. {stats['last_day']}" if stats.get("first_day") else "no days"
    est = stats.get("estimates", {})
    ids = stats.get("distinct_ids", {})

    def mark(key: str) -> str:
        return "~" if key in est else " "

    lines = [
        f"{head} split{where}: {stats['rows']:,} rows, {stats['days']} days ({span})",
        f"CTR {_pct(stats['ctr'], 2)} (paper train {_pct(stats['paper_ctr'], 2)}); "
        + ", ".join(f"{mark('distinct_ids.' + k).strip()}{v:,} distinct {k}" for k, v in ids.items()),
        "",
        f"{'component':<20} {'distinct ids':>13} {'ids/ad (paper)':>16} {'coverage of ads (paper)':>24} "
        f"{'avg cand. (paper)':>18} {'expo/cand./day (paper)':>23}",
    ]
    for c, s in stats["components"].items():
        k = f"components.{c}."
        ids_c = f"{mark(k + 'distinct_ids')}{s['distinct_ids']:,}"
        per_ad = f"{mark(k + 'ids_per_ad')}{_num(s.get('ids_per_ad'), 3)} ({_num(s.get('paper_ids_per_ad'), 3)})"
        cov = f"{mark(k + 'coverage')}{_pct(s['coverage'])} ({_pct(s['paper_coverage'])})"
        avg = f"{mark(k + 'avg_candidates')}{_num(s['avg_candidates'])} ({_num(s['paper_avg_candidates'], 1)})"
        expo = (f"{mark(k + 'exposures_per_candidate_per_day')}{_num(s['exposures_per_candidate_per_day'], 1)} "
                f"({_num(s.get('paper_exposures_per_candidate_per_day'), 1)})")
        lines.append(f"{c:<20} {ids_c:>13} {per_ad:>16} {cov:>24} {avg:>18} {expo:>23}")
    sampled = any(k.endswith((".coverage", ".avg_candidates")) for k in est)
    ads_note = (f"a sample of {stats.get('ads_sampled', 0):,} ads" if sampled else f"all {stats.get('ads_sampled', 0):,} ads")
    lines.append(f"coverage and avg cand. are per ad ({ads_note}); exposures per candidate per day = exposures / "
                 "distinct candidates, summed over days")
    if est:
        lines.append(f"~ estimate ({len(est)} figure(s); their ~95 % intervals are under 'estimates' in --json)")
    return "\n".join(lines)


__all__ = ["STATS_COLUMNS", "ADS_SAMPLED", "AdSample", "StatsAccumulator", "files_stats", "release_stats", "format_stats"]
