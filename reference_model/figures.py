"""The PNGs of a reproduce: Table 2's bars, the heat maps of Tables 3 and 4, and Figure 3 (GenCO's mean MIL
weight per component by product category, computed here from the trained runs on the test rows).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genco_data.format.components import COMPONENTS
from genco_data.release import Release
from reference_model.reproduce_config import LABELS

__all__ = ["plot_table2", "table2_caption", "figure3"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from genco_data.fsutil import atomic_write as _atomic_write

    _atomic_write(path, lambda p: fig.savefig(p, format="png"))
    _plt().close(fig)


def table2_caption(agg: dict[str, Any], quick: bool) -> str:
    """The caption under Table 2's bars: what the bars and error bars are, and whether it is a quick run."""
    seeds = sorted({len(row["seeds"]) for row in agg["table2"].values()})
    n = "/".join(str(s) for s in seeds) or "0"
    text = (f"Bars: mean over {n} seed(s) per method; error bars: +-1 standard deviation across seeds (training "
            "randomness; none for one seed), not a confidence interval of the test estimate.")
    if quick:
        text += " QUICK MODE (--quick: fewer rows, 1 epoch, <= 2 seeds): a smoke run, not a ranking of the methods."
    return text


def plot_table2(agg: dict[str, Any], path: Path, quick: bool = False) -> None:
    import textwrap

    plt = _plt()
    rows = agg["table2"]
    names = [LABELS[m] for m in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), dpi=100)
    for ax, key, title in ((axes[0], "headroom_captured", "headroom captured (true CTR), %"),
                           (axes[1], "mean_component_lift", "mean per-component calibrated-sCTR lift, %")):
        mean = [rows[m][key]["mean"] or 0.0 for m in rows]
        std = [rows[m][key]["std"] or 0.0 for m in rows]
        ax.bar(range(len(names)), mean, yerr=std, capsize=3, color=["#999" if m in ("uniform",) else "#4477aa" for m in rows])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if quick:
        fig.suptitle("quick mode — smoke run, not a ranking", fontsize=10, color="#aa3377")
    fig.text(0.01, 0.01, "\n".join(textwrap.wrap(table2_caption(agg, quick), 190)), fontsize=7, va="bottom", ha="left", color="0.25")
    fig.tight_layout(rect=(0, 0.07, 1, 0.95 if quick else 1))
    _save(fig, path)


def _heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path, fmt: str, cmap: str, center: bool,
             cbar_label: str = "") -> None:
    """A labelled heat map: the value in each cell, a colour bar titled ``cbar_label`` (what the colour means)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2, 0.5 * len(rows) + 1.6), dpi=100)
    m = np.where(np.isfinite(matrix), matrix, np.nan)
    lim = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
    im = ax.imshow(m, cmap=cmap, aspect="auto", vmin=-lim if center else None, vmax=lim if center else None)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, format(m[i, j], fmt), ha="center", va="center", fontsize=7)
    cbar = fig.colorbar(im, ax=ax, shrink=0.8)
    cbar.set_label(cbar_label, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def figure3(out: Path, data: str, seeds: list[int]) -> dict[str, Any] | None:
    """Mean MIL weights of GenCO by category over the test rows (averaged over ``seeds``' models)."""
    import torch

    from reference_model.model import GenCO
    from reference_model.checkpoint import load_run
    from reference_model.data import read_split
    from genco_data.load import pad_table

    runs = [out / "runs" / "genco" / f"seed{s}" for s in seeds if (out / "runs" / "genco" / f"seed{s}").is_dir()]
    if not runs:
        return None
    test = read_split(Release.open(data), "test")
    sums = counts = None
    rows_per_cat = None
    categories: list[str] = []
    for run in runs:
        policy, _, vocabs = load_run(run)
        if not isinstance(policy, GenCO) or not policy.config.use_mil:
            continue
        categories = ["(none)", "(unknown)"] + list(vocabs.categories)
        C = len(categories)
        if sums is None:
            sums, counts, rows_per_cat = np.zeros((C, len(COMPONENTS))), np.zeros((C, len(COMPONENTS))), np.zeros(C, np.int64)
        first = rows_per_cat.sum() == 0
        for s in range(0, test.num_rows, 8192):
            batch = pad_table(test.slice(s, 8192), vocabs)
            with torch.no_grad():
                w = policy.mil_weights(batch).numpy().astype(np.float64)  # (B, 6)
            present = (batch.exposed >= 0).numpy()
            cat = batch.category.numpy()
            np.add.at(sums, cat, w * present)
            np.add.at(counts, cat, present)
            if first:
                np.add.at(rows_per_cat, cat, 1)
    if sums is None:
        return None
    keep = rows_per_cat > 0
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    mean = mean / np.maximum(mean.sum(1, keepdims=True), 1e-12)
    cats = [c for c, k in zip(categories, keep) if k]
    res = {"categories": cats, "rows": rows_per_cat[keep].tolist(), "weights": mean[keep].tolist(), "components": list(COMPONENTS),
           "seeds": [int(r.name[4:]) for r in runs]}
    _heatmap(mean[keep], cats, list(COMPONENTS), "GenCO MIL weight by category (Figure 3)", out / "figure3.png", ".2f", "Blues", False,
             "mean MIL weight w_ij (each row sums to 1)")
    return res
