"""The card's figures (``<release>/figures/*.png``): the numbers they plot, and the drawing.

    candidate_counts.png    pool-size histograms per component, train and test
    ctr_by_day.png          CTR and impressions per day, test start marked

Figures are drawn with matplotlib's Agg canvas in the ``default`` style with no ``Software`` stamp, so
their bytes depend only on the data and the matplotlib version; each PNG carries the sha256 of the numbers
it plots in its ``Description`` text chunk. :data:`CAPTIONS` holds the one line the card prints under each.

Drawing cost is bounded whatever the data: pool sizes are drawn as one bar per size up to
:data:`MAX_EXACT_POOL` and one bar for every larger pool (:func:`pool_size_bins`), so a single row with a
40 000-candidate pool costs one bar, not 40 000 (about 1.4 ms each).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from genco_data.format.components import (
    CANDIDATE_COLUMNS,
    COMPONENTS,
    CONFIGS,
    PAD_TO,
    PAPER_AVG_CANDIDATES,
    PAPER_TRAIN_CTR,
    PRODUCTION,
    SPLITS,
    UNIFORM,
    candidates_col,
)
from genco_data.release import Release

#: Folder of the figures, beside the card. Outside data/ and world/: not in the manifest, not verified.
FIGURE_CANDIDATES = "candidate_counts.png"
FIGURE_CTR = "ctr_by_day.png"
FIGURES = (FIGURE_CANDIDATES, FIGURE_CTR)
#: Pool sizes drawn one bar each; every larger pool shares the last bar ("> MAX_EXACT_POOL").
MAX_EXACT_POOL = 2 * PAD_TO
#: The line under each figure in the card: what the reader should see.
CAPTIONS = {
    FIGURE_CANDIDATES: (
        f"Share of impressions by the number of candidates in the pool, per component (bars: train, line: test; "
        f"pools over {MAX_EXACT_POOL} share the last bar). When the test days serve the same ads as the train days, bars "
        f"and line agree; the dashed line marks where the PyTorch loader truncates pools to {PAD_TO}."
    ),
    FIGURE_CTR: (
        "Click-through rate (top) and impressions (bottom) per day; the dashed line is the first test day. Train "
        f"days are logged by the {PRODUCTION} policy, test days by the {UNIFORM} one: a gap between the two CTR "
        "levels is what the production policy gains (or loses) against choosing every element at random."
    ),
}


def figure_data(release: Release, bar: Any = None) -> dict[str, Any]:
    """The numbers the figures plot, read from the ``impressions`` shards (column-projected, batched);
    ``bar`` (a tqdm bar, optional) advances by one per shard.

    ``{"test_start_day": iso, "days": {iso: {"split", "rows", "clicks"}}, "pool_sizes": {c: {split: [count of
    rows with a pool of exactly n candidates, for n = 0, 1, ...]}}}`` (lists without trailing zeros).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    days: dict[int, list[int]] = {}
    split_of: dict[int, str] = {}
    pools: dict[str, dict[str, np.ndarray]] = {c: {s: np.zeros(1, np.int64) for s in SPLITS} for c in COMPONENTS}
    for split in SPLITS:
        for path in release.data_files(CONFIGS[0], split):
            pf = pq.ParquetFile(path)
            for batch in pf.iter_batches(batch_size=65_536, columns=["day", "click", *CANDIDATE_COLUMNS]):
                d = batch.column("day").cast("int32").to_numpy(zero_copy_only=False).astype(np.int64)
                y = batch.column("click").to_numpy(zero_copy_only=False).astype(np.int64)
                uniq, inv = np.unique(d, return_inverse=True)
                rows = np.bincount(inv, minlength=len(uniq))
                clicks = np.bincount(inv, weights=y, minlength=len(uniq)).astype(np.int64)
                for k, day in enumerate(uniq.tolist()):
                    acc = days.setdefault(day, [0, 0])
                    acc[0] += int(rows[k])
                    acc[1] += int(clicks[k])
                    split_of[day] = split
                for c in COMPONENTS:
                    n = pc.fill_null(pc.list_value_length(batch.column(candidates_col(c))), 0).to_numpy(zero_copy_only=False)
                    counts = np.bincount(n.astype(np.int64))
                    cur = pools[c][split]
                    if len(counts) > len(cur):
                        cur = np.concatenate([cur, np.zeros(len(counts) - len(cur), np.int64)])
                    cur[: len(counts)] += counts
                    pools[c][split] = cur
            if bar is not None:
                bar.update()
    import datetime as _dt

    epoch = _dt.date(1970, 1, 1)
    return {
        "test_start_day": release.manifest.test_start_day.isoformat(),
        "days": {
            (epoch + _dt.timedelta(days=day)).isoformat(): {"split": split_of[day], "rows": v[0], "clicks": v[1]}
            for day, v in sorted(days.items())
        },
        "pool_sizes": {c: {s: np.trim_zeros(pools[c][s], "b").tolist() for s in SPLITS} for c in COMPONENTS},
    }


def _data_sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def figure_description(data: Any) -> str:
    """The ``Description`` text chunk of a figure: which numbers it plots, by their sha256."""
    return f"genco-data card figure; data sha256 {_data_sha256(data)}"


def figure_descriptions(data: dict[str, Any]) -> dict[str, str]:
    """``{figure file name: its Description text}`` for :func:`figure_data` output ``data`` — what each PNG
    must carry (lets a test check a checked-in figure against fresh data whatever the matplotlib version)."""
    return {name: figure_description(_FIGURE_PAYLOAD[name](data)) for name in FIGURES}


_FIGURE_PAYLOAD = {
    FIGURE_CANDIDATES: lambda data: data["pool_sizes"],
    FIGURE_CTR: lambda data: {"days": data["days"], "test_start_day": data["test_start_day"]},
}


def _save_png(fig: Any, path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    description = figure_descriptions(data)[path.name]
    fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None, "Description": description})
    os.replace(tmp, path)


def pool_size_bins(counts: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """counts [rows with a pool of exactly n, n = 0, 1, ...] -> (x, share, overflow): the bar positions
    1..min(max n, MAX_EXACT_POOL) (+ MAX_EXACT_POOL + 1 for all larger pools), each bar's share of the rows
    having the component (n >= 1), and whether the last bar pools the larger sizes. At most
    ``MAX_EXACT_POOL + 1`` bars whatever the pool sizes."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size <= 1 or counts[1:].sum() == 0:
        return np.zeros(0), np.zeros(0), False
    having = counts[1:].sum()
    exact = counts[1:MAX_EXACT_POOL + 1]
    overflow = counts.size > MAX_EXACT_POOL + 1 and counts[MAX_EXACT_POOL + 1:].sum() > 0
    bars = np.concatenate([exact, [counts[MAX_EXACT_POOL + 1:].sum()]]) if overflow else exact
    return np.arange(1, bars.size + 1, dtype=np.float64), bars / having, bool(overflow)


def _candidates_figure(data: dict[str, Any], path: Path, stats: dict[str, Any]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 6.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    comp_stats = stats.get("components", {})
    for ax, c in zip(axes.ravel(), COMPONENTS):
        overflow = False
        for split in SPLITS:
            n, share, over = pool_size_bins(data["pool_sizes"][c][split])  # share among impressions having c
            if n.size == 0:
                continue
            overflow |= over
            if split == "train":
                ax.bar(n, share, width=0.85, color="C0", alpha=0.75, label="train")
            else:
                ax.step(n, share, where="mid", color="C1", linewidth=1.4, label="test")
        ax.axvline(PAD_TO + 0.5, color="0.3", linestyle="--", linewidth=1)
        if overflow:
            ax.annotate(f">{MAX_EXACT_POOL}", (MAX_EXACT_POOL + 1, 0), xytext=(0, -9), textcoords="offset points",
                        ha="center", va="top", fontsize=6, color="0.3", annotation_clip=False)
        avg = comp_stats.get(c, {}).get("avg_candidates")
        sub = f"mean {avg:.2f} (paper {PAPER_AVG_CANDIDATES[c]})" if avg is not None else f"paper mean {PAPER_AVG_CANDIDATES[c]}"
        ax.set_title(f"{c}\n{sub}", fontsize=9)
        ax.set_xlabel("candidates in the pool", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(left=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("share of impressions with the component", fontsize=8)
    axes[1, 0].set_ylabel("share of impressions with the component", fontsize=8)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(f"Pool sizes per component (dashed: the loader pads / truncates to {PAD_TO})", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.08, top=0.87, wspace=0.18, hspace=0.5)  # fixed: no layout pass
    _save_png(fig, path, data)


def _ctr_figure(data: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days = list(data["days"])
    x = np.arange(len(days))
    rows = np.array([data["days"][d]["rows"] for d in days], dtype=np.float64)
    clicks = np.array([data["days"][d]["clicks"] for d in days], dtype=np.float64)
    ctr = np.divide(clicks, rows, out=np.zeros_like(rows), where=rows > 0) * 100
    is_test = np.array([data["days"][d]["split"] == "test" for d in days])
    fig = Figure(figsize=(11, 4.6))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for mask, label, color in ((~is_test, f"train ({PRODUCTION} logging)", "C0"), (is_test, f"test ({UNIFORM} logging)", "C1")):
        if mask.any():
            top.plot(x[mask], ctr[mask], marker="o", markersize=3, linewidth=1.2, color=color, label=label)
            bottom.bar(x[mask], rows[mask], width=0.8, color=color)
    top.axhline(PAPER_TRAIN_CTR * 100, color="0.4", linestyle=":", linewidth=1, label=f"paper train CTR {PAPER_TRAIN_CTR * 100:.2f} %")
    if is_test.any():
        first = int(np.flatnonzero(is_test)[0])
        for ax in (top, bottom):
            ax.axvline(first - 0.5, color="0.3", linestyle="--", linewidth=1)
    top.set_ylabel("CTR (%)", fontsize=8)
    bottom.set_ylabel("impressions", fontsize=8)
    step = max(1, len(days) // 12)
    ticks = x[::step]
    bottom.set_xticks(ticks)
    bottom.set_xticklabels([days[i][5:] for i in ticks], fontsize=7)
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
    top.legend(fontsize=7, frameon=False, loc="lower left")
    top.set_title(f"CTR and impressions by day (dashed: test start {data['test_start_day']})", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.08, top=0.92, hspace=0.12)
    _save_png(fig, path, data)


def render_figures(release: Release, out_dir: Path, data: dict[str, Any] | None = None, bar: Any = None) -> list[Path]:
    """Draw the card's figures of ``release`` into ``out_dir`` (created); returns their paths. ``bar`` (a
    tqdm bar, optional) advances by one per figure."""
    import matplotlib.style

    data = data if data is not None else figure_data(release)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with matplotlib.style.context("default"):  # independent of the user's matplotlibrc
        for name, draw in ((FIGURE_CANDIDATES, lambda p: _candidates_figure(data, p, release.manifest.stats)),
                           (FIGURE_CTR, lambda p: _ctr_figure(data, p))):
            if bar is not None:
                bar.set_postfix_str(name)
            draw(out_dir / name)
            if bar is not None:
                bar.update()
    return [out_dir / name for name in FIGURES]


__all__ = [
    "figure_data",
    "figure_description",
    "figure_descriptions",
    "render_figures",
    "FIGURE_CANDIDATES",
    "FIGURE_CTR",
    "FIGURES",
    "CAPTIONS",
    "MAX_EXACT_POOL",
    "pool_size_bins",
]
