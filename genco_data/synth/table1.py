r"""The paper's Table 1 as targets for the simulator, and an independent computation of its four rows from Parquet.

This is the simulator's own check, written apart from the builder's statistics (:mod:`genco_data.build.stats`)
so that the two can be compared: plain pyarrow / numpy over raw parts or release shards, one pass, no sketches.

Definitions (train split; the paper's Table 1 has 110 M ads). For a set of rows ``r`` with ad ``a(r)``, day
``d(r)`` and per component ``c`` the pool ``P_c(r)`` (possibly empty), let ``𝒜`` be the distinct ads and
``𝒜_c = {a : P_c(r) ≠ ∅ for some row r of a}`` the ads that have the component:

* **element ids per ad** ``= |∪_r P_c(r)| / |𝒜|`` (paper: ``# ids / 110 M``: 2.09, 1.27, 0.136, 2.73, 0.636, 2.91);
* **coverage** ``= |𝒜_c| / |𝒜|`` (paper: "% of ads with the component");
* **average candidates** ``= mean over a ∈ 𝒜_c of mean_{r of a, P_c(r) ≠ ∅} |P_c(r)|`` (paper: "average
  candidates per ad"; pools change over days, so an ad's size is the mean over its rows that have the component);
* **exposures per candidate per day** ``= Σ_d X_c(d) / Σ_d D_c(d)`` with ``X_c(d)`` the rows of day ``d`` whose pool is
  non-empty (each shows one element of ``c``) and ``D_c(d) = |∪_{r on d} P_c(r)|`` (paper: "average daily exposures
  per candidate"; the mean over (candidate, day) pairs where the candidate was in a pool that day — the builder's
  definition too).

Also reported, because other readings of the paper's words give them: ``coverage_rows`` (share of rows with a
non-empty pool), ``avg_candidates_rows`` (mean pool size over those rows) and ``exposures_per_candidate_window``
``= Σ_d X_c(d) / (|∪_r P_c(r)| · days)`` (every id counted on every day of the split).

Tolerances of the simulator (issue 15): ids per ad and exposures within ±35 % of the paper, coverage within ±3
points, average candidates within ±10 % (:data:`TOLERANCE`, :func:`check`).

Memory: the distinct ads, ids and (id, day) pairs, and one (ad, component) partial sum per batch, merged every
:data:`_MERGE_EVERY` batches — fine for the simulator's sizes (tens of millions of rows), not for the 110 M-ad export.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.format.components import COMPONENTS, PAPER_AVG_CANDIDATES, PAPER_COVERAGE, candidates_col

#: Paper, Table 1: distinct ids per component ("# ids") and ads in the train set.
PAPER_IDS: dict[str, float] = {
    "title": 230e6,
    "image": 140e6,
    "marketing": 15e6,
    "highlight": 300e6,
    "attribute": 70e6,
    "structure_attribute": 320e6,
}
PAPER_ADS = 110e6
PAPER_IDS_PER_AD: dict[str, float] = {c: PAPER_IDS[c] / PAPER_ADS for c in COMPONENTS}
#: Paper, Table 1: average daily exposures per candidate ("# expo_per_day").
PAPER_EXPO_PER_DAY: dict[str, float] = {
    "title": 2.3,
    "image": 3.6,
    "marketing": 11.5,
    "highlight": 1.9,
    "attribute": 1.3,
    "structure_attribute": 1.0,
}
#: Row -> (kind, bound): "rel" = |x / paper - 1| <= bound, "abs" = |x - paper| <= bound.
TOLERANCE: dict[str, tuple[str, float]] = {
    "ids_per_ad": ("rel", 0.35),
    "coverage": ("abs", 0.03),
    "avg_candidates": ("rel", 0.10),
    "exposures_per_candidate_per_day": ("rel", 0.35),
}
PAPER: dict[str, dict[str, float]] = {
    "ids_per_ad": PAPER_IDS_PER_AD,
    "coverage": PAPER_COVERAGE,
    "avg_candidates": PAPER_AVG_CANDIDATES,
    "exposures_per_candidate_per_day": PAPER_EXPO_PER_DAY,
}
_MERGE_EVERY = 16


class _Acc:
    """Running sums of one component."""

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []  # distinct ids, merged lazily
        self.day_ids: dict[int, list[np.ndarray]] = {}
        self.day_rows: dict[int, int] = {}
        self.rows = 0
        self.candidates = 0
        self.per_ad: list[pa.Table] = []  # (ad_id, rows, candidates) partial sums

    def merge(self) -> None:
        if len(self.ids) > 1:
            self.ids = [np.unique(np.concatenate(self.ids))]
        for d, parts in self.day_ids.items():
            if len(parts) > 1:
                self.day_ids[d] = [np.unique(np.concatenate(parts))]
        if len(self.per_ad) > 1:
            t = pa.concat_tables(self.per_ad).group_by("ad_id").aggregate([("rows", "sum"), ("candidates", "sum")])
            self.per_ad = [t.rename_columns(["ad_id", "rows", "candidates"])]


def table1(files: Iterable[str | Path], policy: str | None = "production", batch_rows: int = 262_144) -> dict[str, Any]:
    """The four Table-1 rows (and the alternative readings) of the rows of ``files`` (impressions Parquet: raw
    simulator parts or release shards). ``policy``: keep only rows of this ``logging_policy`` (``"production"`` =
    the train rows of raw parts; ``None`` = every row, e.g. a release's ``train-*`` shards)."""
    cols = ["day", "ad_id", *(candidates_col(c) for c in COMPONENTS)]
    acc = {c: _Acc() for c in COMPONENTS}
    ads: list[np.ndarray] = []
    days: set[int] = set()
    rows = 0
    batches = 0
    for f in files:
        pf = pq.ParquetFile(f)
        read = cols + (["logging_policy"] if policy is not None else [])
        for batch in pf.iter_batches(batch_size=batch_rows, columns=read):
            if policy is not None:
                batch = batch.filter(pc.equal(batch.column("logging_policy"), policy))
            if batch.num_rows == 0:
                continue
            rows += batch.num_rows
            day = batch.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
            ad = batch.column("ad_id").to_numpy(zero_copy_only=False)
            ads.append(np.unique(ad))
            days.update(np.unique(day).tolist())
            for c in COMPONENTS:
                _update(acc[c], batch.column(candidates_col(c)), day, ad)
            batches += 1
            if batches % _MERGE_EVERY == 0:
                ads = [np.unique(np.concatenate(ads))]
                for a in acc.values():
                    a.merge()
    all_ads = np.unique(np.concatenate(ads)) if ads else np.zeros(0, np.int64)
    n_ads, n_days = len(all_ads), len(days)
    out: dict[str, Any] = {"rows": rows, "ads": n_ads, "days": n_days, "components": {}}
    for c in COMPONENTS:
        a = acc[c]
        a.merge()
        distinct = len(a.ids[0]) if a.ids else 0
        pairs = sum(len(p[0]) for p in a.day_ids.values())
        exposures = sum(a.day_rows.values())
        per_ad = a.per_ad[0] if a.per_ad else None
        if per_ad is not None and per_ad.num_rows:
            r = per_ad.column("rows").to_numpy().astype(np.float64)
            k = per_ad.column("candidates").to_numpy().astype(np.float64)
            ads_with, avg_ads = per_ad.num_rows, float(np.mean(k / r))
        else:
            ads_with, avg_ads = 0, None
        out["components"][c] = {
            "ids_per_ad": distinct / n_ads if n_ads else None,
            "coverage": ads_with / n_ads if n_ads else None,
            "avg_candidates": avg_ads,
            "exposures_per_candidate_per_day": exposures / pairs if pairs else None,
            "distinct_ids": distinct,
            "ads_with": ads_with,
            "coverage_rows": a.rows / rows if rows else None,
            "avg_candidates_rows": a.candidates / a.rows if a.rows else None,
            "exposures_per_candidate_window": exposures / (distinct * n_days) if distinct and n_days else None,
        }
    return out


def _update(a: _Acc, col: pa.ChunkedArray | pa.Array, day: np.ndarray, ad: np.ndarray) -> None:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    n = pc.fill_null(pc.list_value_length(col), 0).to_numpy().astype(np.int64)
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int64)
    has = n > 0
    if not has.any():
        return
    a.rows += int(has.sum())
    a.candidates += int(n.sum())
    a.ids.append(np.unique(flat))
    # per (id, day): the day of each flat element is its row's day
    flat_day = np.repeat(day, n)
    for d in np.unique(day[has]).tolist():
        a.day_ids.setdefault(d, []).append(np.unique(flat[flat_day == d]))
        a.day_rows[d] = a.day_rows.get(d, 0) + int(np.count_nonzero(has & (day == d)))
    part = pa.table({"ad_id": ad[has], "rows": np.ones(int(has.sum()), np.int64), "candidates": n[has]})
    a.per_ad.append(part.group_by("ad_id").aggregate([("rows", "sum"), ("candidates", "sum")]).rename_columns(["ad_id", "rows", "candidates"]))


def check(stats: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per row and component: ``value``, ``paper``, ``error`` (relative, or absolute points for coverage) and ``ok``
    under :data:`TOLERANCE`."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row, (kind, bound) in TOLERANCE.items():
        out[row] = {}
        for c in COMPONENTS:
            x, p = stats["components"][c][row], PAPER[row][c]
            err = None if x is None else (x / p - 1.0 if kind == "rel" else x - p)
            out[row][c] = {"value": x, "paper": p, "error": err, "ok": err is not None and abs(err) <= bound}
    return out


def format_check(stats: dict[str, Any]) -> str:
    """A readable table of :func:`check`: value (paper, error) per row and component, ``!`` where out of tolerance."""
    res = check(stats)
    lines = [f"{stats['rows']:,} rows, {stats['ads']:,} ads, {stats['days']} days",
             f"{'row':<34}" + "".join(f"{c[:14]:>22}" for c in COMPONENTS)]
    for row, (kind, bound) in TOLERANCE.items():
        cells = []
        for c in COMPONENTS:
            r = res[row][c]
            if r["value"] is None:
                cells.append(f"{'-':>22}")
                continue
            err = f"{100 * r['error']:+.0f}%" if kind == "rel" else f"{100 * r['error']:+.1f}pt"
            cells.append(f"{r['value']:.3g} ({r['paper']:.3g} {err}){'!' if not r['ok'] else ' '}".rjust(22))
        tol = f"±{100 * bound:.0f}{'%' if kind == 'rel' else 'pt'}"
        lines.append(f"{row + ' ' + tol:<34}" + "".join(cells))
    for extra in ("coverage_rows", "avg_candidates_rows", "exposures_per_candidate_window"):
        lines.append(f"{extra:<34}" + "".join(f"{stats['components'][c][extra] or 0:>22.3g}" for c in COMPONENTS))
    return "\n".join(lines)


__all__ = ["PAPER_IDS", "PAPER_ADS", "PAPER_IDS_PER_AD", "PAPER_EXPO_PER_DAY", "TOLERANCE", "PAPER", "table1", "check", "format_check"]
