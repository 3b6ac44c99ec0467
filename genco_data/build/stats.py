"""Table-1 statistics of a release split, streamed over its shards, beside the paper's figures.

For a split with rows ``r``, days ``d(r)``, and per component ``c`` the pool ``P_c(r)`` (possibly empty):

* ``rows``, ``clicks``, ``ctr = clicks / rows``; ``days`` = number of distinct days;
* ``distinct_ids[c]`` = ``|∪_r P_c(r)|`` (the component's vocabulary in this split);
* ``coverage[c]`` = share of rows with a non-empty pool, ``|{r : P_c(r) ≠ ∅}| / rows`` (paper: "coverage");
* ``avg_candidates[c]`` = mean ``|P_c(r)|`` over the rows with a non-empty pool (paper: "average
  candidates per ad that has the component");
* ``exposures_per_candidate_per_day[c]`` (paper: "average daily exposures per candidate") =
  ``Σ_day X_c(day) / Σ_day D_c(day)`` where ``X_c(day)`` is the number of exposures of component ``c``
  that day (= rows with a non-empty pool: each such impression shows exactly one element) and
  ``D_c(day) = |∪_{r on day} P_c(r)|`` the number of distinct candidates in that day's pools. It is the
  mean, over the (candidate, day) pairs where the candidate was eligible, of how often it was shown.

Everything is vectorized per batch (``pyarrow.compute`` on list columns, numpy sets); memory is one
machine word per distinct id (and per distinct (id, day) pair for the daily figure).
"""
from __future__ import annotations

import datetime as _dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.format.components import (
    COMPONENTS,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    PAPER_TRAIN_CTR,
    SPLITS,
    candidates_col,
)
from genco_data.build.unique import IdSet

#: Columns :class:`StatsAccumulator` reads.
STATS_COLUMNS: tuple[str, ...] = ("day", "click", "user_id", "ad_id") + tuple(candidates_col(c) for c in COMPONENTS)
_EPOCH = _dt.date(1970, 1, 1)


def _flat(arr: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(lengths int64 [n], values int64 [E]) of a list<int64> column without nulls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    return lengths, values


class StatsAccumulator:
    """Feed tables (any batch boundaries, rows in any order) with :data:`STATS_COLUMNS`; ``result()`` gives
    the figures described in the module docstring."""

    def __init__(self) -> None:
        self.rows = 0
        self.clicks = 0
        self.day_rows: dict[int, int] = defaultdict(int)
        self.users = IdSet(np.int64)
        self.ads = IdSet(np.int64)
        self.covered = {c: 0 for c in COMPONENTS}
        self.candidates = {c: 0 for c in COMPONENTS}
        self.daily_ids: dict[str, dict[int, IdSet]] = {c: {} for c in COMPONENTS}

    def update(self, table: pa.Table | pa.RecordBatch) -> None:
        n = table.num_rows
        if n == 0:
            return
        self.rows += n
        self.clicks += int(pc.sum(table.column("click").cast(pa.int64())).as_py() or 0)
        days = table.column("day").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        if len(days) > 1 and np.any(days[1:] < days[:-1]):  # stats do not depend on row order
            order = np.argsort(days, kind="stable")
            table, days = table.take(pa.array(order)), days[order]
        # rows of day uniq[j] are rows[starts[j]:starts[j + 1]]
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        uniq = days[np.concatenate([[0], cuts])]
        starts = np.concatenate([[0], cuts, [n]])
        for d, a, b in zip(uniq.tolist(), starts[:-1].tolist(), starts[1:].tolist()):
            self.day_rows[d] += b - a
        self.users.add(table.column("user_id").to_numpy(zero_copy_only=False))
        self.ads.add(table.column("ad_id").to_numpy(zero_copy_only=False))
        for c in COMPONENTS:
            lengths, values = _flat(table.column(candidates_col(c)))
            self.covered[c] += int(np.count_nonzero(lengths))
            self.candidates[c] += int(lengths.sum())
            elem = np.concatenate([[0], np.cumsum(lengths)])[starts]  # element range of each day
            for d, a, b in zip(uniq.tolist(), elem[:-1].tolist(), elem[1:].tolist()):
                if b > a:
                    self._daily(c, d).add(values[a:b])

    def _daily(self, c: str, day: int) -> IdSet:
        s = self.daily_ids[c].get(day)
        if s is None:
            s = self.daily_ids[c][day] = IdSet(np.int64)
        return s

    def _exposures_per_candidate_per_day(self, c: str) -> float | None:
        distinct = sum(len(s) for s in self.daily_ids[c].values())
        return self.covered[c] / distinct if distinct else None

    def result(self) -> dict[str, Any]:
        rows = self.rows
        days = sorted(self.day_rows)
        comps = {}
        for c in COMPONENTS:
            cov = self.covered[c]
            daily = list(self.daily_ids[c].values())
            comps[c] = {
                "distinct_ids": len(np.unique(np.concatenate([s.values() for s in daily]))) if daily else 0,
                "coverage": cov / rows if rows else None,
                "avg_candidates": self.candidates[c] / cov if cov else None,
                "exposures_per_candidate_per_day": self._exposures_per_candidate_per_day(c),
                "paper_coverage": PAPER_COVERAGE[c],
                "paper_avg_candidates": PAPER_AVG_CANDIDATES[c],
            }
        return {
            "rows": rows,
            "clicks": self.clicks,
            "ctr": self.clicks / rows if rows else None,
            "paper_ctr": PAPER_TRAIN_CTR,
            "days": len(days),
            "first_day": (_EPOCH + _dt.timedelta(days=days[0])).isoformat() if days else None,
            "last_day": (_EPOCH + _dt.timedelta(days=days[-1])).isoformat() if days else None,
            "distinct_users": len(self.users),
            "distinct_ads": len(self.ads),
            "components": comps,
        }


def files_stats(files: list[Path], batch_rows: int = 65_536) -> dict[str, Any]:
    """Statistics of the rows of these impressions Parquet files (read column-projected, batch by batch)."""
    acc = StatsAccumulator()
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=list(STATS_COLUMNS)):
            acc.update(batch)
    return acc.result()


def release_stats(path: str | Path, split: str = "train") -> dict[str, Any]:
    """Table-1 statistics of ``split`` of the release at ``path`` (config ``impressions``).

    Returns the dict of :meth:`StatsAccumulator.result` plus ``release``, ``dataset_version``, ``split``."""
    from genco_data.release import Release  # release imports nothing of stats; keep the edge one-way

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rel = Release.open(path)
    out = files_stats(rel.data_files("impressions", split))
    return {"release": str(path), "dataset_version": rel.manifest.dataset_version, "split": split, **out}


def _pct(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{nd}f} %"


def _num(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def format_stats(stats: dict[str, Any]) -> str:
    """A readable table of :func:`release_stats` output, the paper's Table-1 figures in parentheses."""
    head = stats.get("split", "train")
    where = f" of {stats['release']} (v{stats['dataset_version']})" if "release" in stats else ""
    span = f"{stats['first_day']} .. {stats['last_day']}" if stats.get("first_day") else "no days"
    lines = [
        f"{head} split{where}: {stats['rows']:,} rows, {stats['days']} days ({span})",
        f"CTR {_pct(stats['ctr'], 2)} (paper train {_pct(stats['paper_ctr'], 2)}); "
        f"{stats['distinct_users']:,} users, {stats['distinct_ads']:,} ads",
        "",
        f"{'component':<20} {'distinct ids':>12} {'coverage (paper)':>19} {'avg cand. (paper)':>18} {'exposures/cand./day':>20}",
    ]
    for c, s in stats["components"].items():
        cov = f"{_pct(s['coverage'])} ({_pct(s['paper_coverage'])})"
        avg = f"{_num(s['avg_candidates'])} ({_num(s['paper_avg_candidates'], 1)})"
        lines.append(
            f"{c:<20} {s['distinct_ids']:>12,} {cov:>19} {avg:>18} {_num(s['exposures_per_candidate_per_day'], 1):>20}"
        )
    return "\n".join(lines)


__all__ = ["STATS_COLUMNS", "StatsAccumulator", "files_stats", "release_stats", "format_stats"]
