"""What the reproduce says and draws (issue #17, Builds 4 and 6): quick mode is called a smoke run in its
output and results.md; Table 2's caption says what its error bars are; heat maps have labelled colour bars;
the loss curve keeps L_comb and L_ele apart and explains L_RL."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genco_data.format.components import COMPONENTS
from reference_model import figures
from reference_model.reproduce_config import ReproduceConfig
from reference_model.results import QUICK_NOTE, aggregate, render_markdown


def _results(methods=("uniform", "genco"), seeds=(0, 1)) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for m in methods:
        for s in seeds:
            summary = {"true_ctr": 0.06 + rng.random() * 0.01, "uniform_true_ctr": 0.061, "oracle_ctr": 0.072, "mean_click": 0.061,
                       "headroom_captured": rng.normal(), "mean_component_lift": rng.normal() / 50, "combination_lift": rng.normal()}
            summary.update({f"{c}_lift": rng.normal() / 50 for c in COMPONENTS})
            out.append({"method": m, "seed": s, "summary": summary, "n_parameters": 10, "component_true_lift": {c: 0.0 for c in COMPONENTS},
                        "buckets": {c: {lab: 0.01 for lab in ("<3", "3-5", ">5", "<4", "4-8", ">8")} for c in COMPONENTS}})
    return out


def test_quick_mode_says_it_is_a_smoke_run_not_a_ranking(tmp_path):
    agg = aggregate(_results(), ("uniform", "genco"))
    quick = render_markdown(agg, ReproduceConfig(data="rel", out=str(tmp_path), quick=True), 60.0, None)
    full = render_markdown(agg, ReproduceConfig(data="rel", out=str(tmp_path)), 60.0, None)
    assert quick.splitlines()[0].endswith("quick mode (smoke run, not a ranking)") and QUICK_NOTE in quick
    assert "smoke run" not in full and QUICK_NOTE not in full
    assert "smoke run, not a ranking" in QUICK_NOTE and "50,000" in QUICK_NOTE
    from reference_model.reproduce import format_reproduce

    assert format_reproduce({"text": quick, "out": "o", "quick": True}).endswith(QUICK_NOTE)
    assert QUICK_NOTE not in format_reproduce({"text": full, "out": "o", "quick": False})


def test_one_seed_has_no_std():
    agg = aggregate(_results(seeds=(0,)), ("uniform", "genco"))
    text = render_markdown(agg, ReproduceConfig(data="rel", out="o", seeds=1), 1.0, None)
    assert "± n/a (1 seed)" in text and "± 0.00 |" not in text


def _capture(monkeypatch, module, name="_save"):
    figs = []
    monkeypatch.setattr(module, name, lambda fig_or_path, *a, **k: figs.append(fig_or_path))
    return figs


def test_table2_caption_and_heatmap_colour_bars(monkeypatch, tmp_path):
    agg = aggregate(_results(), ("uniform", "genco"))
    caption = figures.table2_caption(agg, quick=True)
    assert "mean over 2 seed(s)" in caption and "standard deviation across seeds" in caption and "QUICK MODE" in caption
    assert "QUICK" not in figures.table2_caption(agg, quick=False)
    figs = _capture(monkeypatch, figures)
    figures.plot_table2(agg, tmp_path / "t2.png", quick=True)
    texts = [t.get_text() for t in figs[0].texts]
    assert any(caption[:60] in t.replace("\n", " ") for t in texts)
    assert "smoke run" in figs[0]._suptitle.get_text()
    figures._heatmap(np.eye(3), ["a", "b", "c"], ["x", "y", "z"], "t", tmp_path / "h.png", ".2f", "Blues", False, "mean MIL weight")
    colour_bar_axes = figs[1].axes[1]
    assert colour_bar_axes.get_ylabel() == "mean MIL weight"


def test_loss_curve_keeps_the_parts_apart_and_explains_l_rl(monkeypatch, tmp_path):
    pytest.importorskip("torch", reason="reference_model.checkpoint needs torch")
    from reference_model import checkpoint

    shown = []
    monkeypatch.setattr(checkpoint, "_atomic_write", lambda path, write: shown.append(__import__("matplotlib.pyplot").pyplot.gcf()))
    rows = [{"samples": 1000 * (i + 1), "loss": 0.9, "comb": 0.68 - i / 100, "ele": 0.68 - i / 100, "rl": -3 + i / 10} for i in range(5)]
    checkpoint.plot_loss_curve(rows, tmp_path / "loss.png", "genco")
    fig = shown[0]
    fit, policy = fig.axes[:2]
    lines = {l.get_label(): l for l in fit.get_lines()}
    comb = next(l for k, l in lines.items() if k.startswith("L_comb"))
    ele = next(l for k, l in lines.items() if k.startswith("L_ele"))
    assert comb.get_linestyle() != ele.get_linestyle() and comb.get_linewidth() > ele.get_linewidth() and ele.get_marker() == "o"
    assert [l.get_label() for l in policy.get_lines() if l.get_label().startswith("L_")] == ["L_RL (policy-gradient surrogate)"]
    assert any("policy-gradient surrogate" in t.get_text() for t in fig.texts)
