"""``genco reproduce``: every method and ablation × seeds → train → predictions → evaluation → the paper's
tables and figure, plus one leaderboard submission per method.

    genco reproduce --data rel --seeds 5 --out repro            # the reference numbers (~10 min on 2 CPU cores)
    genco reproduce --data rel --out repro_quick --quick        # a few minutes: 2 seeds, fewer rows and epochs

Writes into ``--out``::

    results.md / results.json    Table 2 (true CTR, headroom captured, calibrated-sCTR lift over uniform per
                                 component and combination), Table 3 (ablation deltas vs full GenCO per
                                 component), Table 4 (GenCO's lift by candidate bucket), Figure 3's matrix;
                                 mean ± std over seeds
    table2.png table3.png table4.png figure3.png
    runs/<method>/seed<k>/       the training runs (genco train)
    submissions/<method>/        seed<k>.parquet predictions + submission.json (genco leaderboard verify)

Settings (:data:`SETTINGS`): the paper's protocol (batch 1024, chronological order, no scheduler, λ = 0.15,
rewards 1 / −0.1) with the choices the paper leaves open stated there. Runs go ``jobs`` at a time in worker
processes with one CPU thread each; a run folder that already holds a finished run with the same settings is
reused, so an interrupted reproduce can be restarted with the same command. (The workers are spawned: a script
that calls :func:`run_reproduce` with ``jobs > 1`` needs the ``if __name__ == "__main__":`` guard.)
"""
from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genco_data import __version__
from genco_data.format.components import COMPONENTS, bucket_labels
from genco_data.errors import InvalidInputError
from genco_data.format.records import SeedPredictions, Submission
from genco_data.release import MANIFEST_NAME, Release, sha256_file

#: Table 2 rows in display order; the ablations of Table 3.
METHOD_ORDER: tuple[str, ...] = ("uniform", "dco", "mlp", "f_ele", "f_comb", "genco", "wo_mil", "wo_rl", "wo_context", "wo_all",
                                 "genco_literal", "genco_bc")
ABLATIONS: tuple[str, ...] = ("wo_mil", "wo_rl", "wo_context", "wo_all")
LABELS: dict[str, str] = {
    "uniform": "Uniform", "dco": "DCO", "mlp": "MLP", "f_ele": "f_ele only", "f_comb": "f_comb only", "genco": "GenCO",
    "wo_mil": "GenCO w/o MIL", "wo_rl": "GenCO w/o RL", "wo_context": "GenCO w/o context", "wo_all": "GenCO w/o all",
    "genco_literal": "GenCO, Eq. 22 literal (no off-policy correction)",
    "genco_bc": "GenCO + logging prior (ours)",
}
DEFAULT_SEEDS = 5
#: Methods whose predictions do not depend on the seed (DCO counts and ranks deterministically).
DETERMINISTIC: frozenset[str] = frozenset({"dco"})
CODE_URL = "../reference_model"  # relative to cards/LEADERBOARD.md, where the board links it
PAPER_URL = "https://arxiv.org/abs/2508.09730"

#: Training settings of reproduce (and the demo). Paper: SGD, lr 5e-3, batch 1024, chronological, no
#: scheduler. Ours (the paper is silent or its setting does not train here, see benchmarks/TRAIN.md):
#: Adam at lr 1e-3 — paper SGD at 5e-3 barely moves in a few epochs on 200 k rows, Adam at >= 1e-2 lets the
#: logged policy-gradient term (negative reward for most rows, unbounded below) run away; epochs: what fits
#: the 30-minute budget on 2 CPU cores. DCO and uniform have nothing to tune but DCO's (delta, prior).
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"optimizer": "adam", "lr": 1e-3, "epochs": 3, "max_rows": None},
    "quick": {"optimizer": "adam", "lr": 1e-3, "epochs": 1, "max_rows": 50_000},
}
QUICK_SEEDS = 2


@dataclass
class ReproduceConfig:
    data: str  # release folder
    out: str  # output folder
    seeds: int = DEFAULT_SEEDS  # seeds 0..seeds-1 per method
    quick: bool = False  # SETTINGS["quick"] and at most QUICK_SEEDS seeds
    methods: tuple[str, ...] | None = None  # subset of METHOD_ORDER (default all)
    jobs: int | None = None  # parallel runs (default min(cpu count, 4); 1 on cuda)
    device: str = "cpu"
    quiet: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 1} (tests)
    genco_options: dict[str, Any] = field(default_factory=dict)  # GenCOConfig overrides for every GenCO variant

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise InvalidInputError(f"--seeds must be an integer >= 1; got {self.seeds!r}")
        methods = self.methods or METHOD_ORDER
        unknown = [m for m in methods if m not in METHOD_ORDER]
        if unknown:
            raise InvalidInputError(f"--methods: unknown {', '.join(unknown)}; expected a subset of {', '.join(METHOD_ORDER)}")
        self.methods = tuple(m for m in METHOD_ORDER if m in methods)
        if self.jobs is not None and self.jobs < 1:
            raise InvalidInputError(f"--jobs must be >= 1; got {self.jobs}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise InvalidInputError(f"--device must be cpu, cuda or auto; got {self.device!r}")

    @property
    def n_seeds(self) -> int:
        return min(self.seeds, QUICK_SEEDS) if self.quick else self.seeds

    def settings(self) -> dict[str, Any]:
        return {**SETTINGS["quick" if self.quick else "full"], **self.overrides, "genco_options": dict(self.genco_options)}


# ------------------------------------------------------------------------------------------- one run
_EVALUATORS: dict[str, Any] = {}


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _evaluator(data: str):
    from genco_data.evaluate import Evaluator

    if data not in _EVALUATORS:
        _EVALUATORS[data] = Evaluator(data)
    return _EVALUATORS[data]


def _train_kwargs(method: str, seed: int, settings: dict[str, Any], device: str) -> dict[str, Any]:
    kw = {"method": method, "seed": seed, "device": device, "threads": 1, "quiet": True, "save_every": 0,
          "epochs": settings["epochs"], "max_rows": settings["max_rows"]}
    if method not in ("dco", "uniform"):
        kw.update(optimizer=settings["optimizer"], lr=settings["lr"])
    if settings.get("genco_options"):
        from reference_model.model import VARIANTS

        if method in VARIANTS:  # the GenCO variants
            kw["genco_options"] = dict(settings["genco_options"])
    return kw


def run_one(data: str, out: str, method: str, seed: int, settings: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Train (or reuse) ``runs/<method>/seed<seed>``, predict into ``submissions/<method>/seed<seed>.parquet``,
    evaluate; returns the evaluation summary of that seed."""
    from reference_model.predict import predict
    from reference_model.train import CONFIG_NAME, TrainConfig, read_run_config, train

    t0 = time.perf_counter()
    run_dir = Path(out) / "runs" / method / f"seed{seed}"
    kw = _train_kwargs(method, seed, settings, device)
    cfg = TrainConfig(data=data, out=str(run_dir), **kw)
    reuse = False
    if (run_dir / CONFIG_NAME).is_file():
        try:
            meta = read_run_config(run_dir)
            saved = meta["train"]
            reuse = bool(meta["progress"].get("finished")) and all(saved.get(k) == v for k, v in kw.items() if k not in ("quiet", "threads"))
            reuse = reuse and Path(saved["data"]).resolve() == Path(data).resolve()
        except (InvalidInputError, KeyError):
            reuse = False
    if not reuse:
        shutil.rmtree(run_dir, ignore_errors=True)
        train(cfg)
    t_train = time.perf_counter() - t0
    pred_path = Path(out) / "submissions" / method / f"seed{seed}.parquet"
    pred = predict(run_dir, data, pred_path, seed=seed, device="cpu" if device == "cpu" else device)
    result = _evaluator(data).evaluate(pred_path)
    d = result.to_dict()
    flat = result.metrics()
    summary = result.summary_metrics()
    comp_truth = {c: (d["components"][c]["truth"] or {}).get("lift") for c in COMPONENTS}
    buckets = {c: {lab: flat.get(f"lift/{c}/{lab}") for lab in bucket_labels(c)} for c in COMPONENTS}
    matched = {c: {lab: d["components"][c]["buckets"][lab]["matched"] for lab in bucket_labels(c)} for c in COMPONENTS}
    meta = read_run_config(run_dir)
    return {
        "method": method, "seed": seed, "summary": summary, "component_true_lift": comp_truth, "buckets": buckets,
        "bucket_matched": matched, "predictions": str(pred_path), "sha256": pred["sha256"], "n_parameters": meta["n_parameters"],
        "train_seconds": t_train, "seconds": time.perf_counter() - t0, "reused": reuse,
    }


# ------------------------------------------------------------------------------------------ submissions
def hardware_string(device: str = "cpu") -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return f"1x {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({model}), torch {torch.__version__.split('+')[0]}, 1 thread per run"


def write_submission(folder: Path, method: str, release: Release, files: list[tuple[int, Path]], n_parameters: int,
                     command: str, hardware: str, notes: str = "") -> Path:
    """``folder/submission.json`` (records.Submission) for predictions ``files`` [(seed, path inside folder)]."""
    sub = Submission(
        method=LABELS.get(method, method) + " (genco-data reference)",
        authors=["genco-data reference implementation"],
        contact="the genco-data issue tracker",
        code_url=CODE_URL,
        command=command,
        paper_url=PAPER_URL,
        dataset=str(release.root),
        dataset_version=release.manifest.dataset_version,
        manifest_sha256=sha256_file(release.root / MANIFEST_NAME),
        genco_data_version=__version__,
        predictions=[SeedPredictions(seed=s, path=p.relative_to(folder).as_posix(), sha256=sha256_file(p)) for s, p in sorted(files)],
        n_parameters=n_parameters,
        hardware=hardware,
        external_data=False,
        used_test_labels=False,
        deterministic=method in DETERMINISTIC,
        notes=notes,
    )
    path = folder / "submission.json"
    from reference_model.train import _write_json

    _write_json(path, sub.model_dump(mode="json"))
    return path


# --------------------------------------------------------------------------------------------- tables
def _ms(values: list[float | None], scale: float = 100.0) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64) * scale
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def _fmt(m: dict[str, Any], signed: bool = True, digits: int = 2) -> str:
    if m["mean"] is None:
        return "–"
    return f"{m['mean']:{'+' if signed else ''}.{digits}f} ± {m['std']:.{digits}f}"


def aggregate(results: list[dict[str, Any]], methods: tuple[str, ...]) -> dict[str, Any]:
    """Per method: mean ± std over seeds of the headline figures (percent)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["method"], []).append(r)
    table2, table3, table4 = {}, {}, {}
    for m in methods:
        rs = sorted(by.get(m, []), key=lambda r: r["seed"])
        if not rs:
            continue
        s = [r["summary"] for r in rs]
        row = {
            "seeds": [r["seed"] for r in rs],
            "true_ctr": _ms([x.get("true_ctr") for x in s]),
            "true_lift": _ms([x["true_ctr"] / x["uniform_true_ctr"] - 1 if "true_ctr" in x else None for x in s]),
            "headroom_captured": _ms([x.get("headroom_captured") for x in s]),
            "mean_component_lift": _ms([x.get("mean_component_lift") for x in s]),
            "combination_lift": _ms([x.get("combination_lift") for x in s]),
            "n_parameters": rs[0]["n_parameters"],
        }
        for c in COMPONENTS:
            row[f"{c}_lift"] = _ms([x.get(f"{c}_lift") for x in s])
            row[f"{c}_true_lift"] = _ms([r["component_true_lift"].get(c) for r in rs])
        table2[m] = row
    ref = {r["seed"]: r for r in by.get("genco", [])}
    for m in ABLATIONS:
        rs = [r for r in by.get(m, []) if r["seed"] in ref]
        if not rs:
            continue
        row = {}
        for c in COMPONENTS:
            row[c] = _ms([_sub(r["summary"].get(f"{c}_lift"), ref[r["seed"]]["summary"].get(f"{c}_lift")) for r in rs])
            row[f"{c}_true"] = _ms([_sub(r["component_true_lift"].get(c), ref[r["seed"]]["component_true_lift"].get(c)) for r in rs])
        row["true_ctr_lift"] = _ms([_sub(_tl(r), _tl(ref[r["seed"]])) for r in rs])
        table3[m] = row
    for r in by.get("genco", []):
        for c in COMPONENTS:
            for lab in bucket_labels(c):
                table4.setdefault(c, {}).setdefault(lab, []).append(r["buckets"][c][lab])
    table4 = {c: {lab: _ms(v) for lab, v in d.items()} for c, d in table4.items()}
    truth = {}
    if by:
        any_s = next(iter(by.values()))[0]["summary"]
        truth = {k: any_s.get(k) for k in ("uniform_true_ctr", "oracle_ctr", "mean_click")}
    return {"table2": table2, "table3": table3, "table4": table4, "truth": truth}


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _tl(r: dict[str, Any]) -> float | None:
    s = r["summary"]
    return s["true_ctr"] / s["uniform_true_ctr"] - 1 if "true_ctr" in s else None


def render_markdown(agg: dict[str, Any], cfg: ReproduceConfig, seconds: float, fig3: dict[str, Any] | None) -> str:
    st = cfg.settings()
    t = agg["truth"]
    lines = [
        "# GenCO reference results",
        "",
        f"Release `{cfg.data}`; {cfg.n_seeds} seed(s) per method; {'quick' if cfg.quick else 'full'} settings: "
        f"{st['optimizer']} lr {st['lr']:g}, {st['epochs']} epoch(s), batch 1024, chronological order"
        + (f", most recent {st['max_rows']:,} train rows" if st["max_rows"] else "") + f"; wall time {seconds / 60:.1f} min.",
        *([f"GenCO variants with config overrides (`--genco-set`): "
           f"{', '.join(f'{k}={v}' for k, v in sorted(st['genco_options'].items()))} — not the paper's defaults."]
          if st.get("genco_options") else []),
        "All figures are % (mean ± std over seeds). *True* figures come from the simulator's planted ground truth",
        "(the evaluator reads `world/`; training never does). *Lift* = calibrated sCTR / uniform test-log CTR − 1.",
    ]
    if t.get("oracle_ctr"):
        lines.append(f"Uniform policy true CTR {100 * t['uniform_true_ctr']:.3f} %, oracle (best combination per row) "
                     f"{100 * t['oracle_ctr']:.3f} % (+{100 * (t['oracle_ctr'] / t['uniform_true_ctr'] - 1):.1f} %).")
    lines += ["", "## Table 2 — methods against Uniform", "",
              "| Method | true CTR | true lift | headroom captured | mean component lift | combination lift | "
              + " | ".join(COMPONENTS) + " | #params |",
              "|---|" + "---:|" * (6 + len(COMPONENTS))]
    for m, row in agg["table2"].items():
        cells = [LABELS[m], _fmt(row["true_ctr"], False, 3), _fmt(row["true_lift"]), _fmt(row["headroom_captured"], True, 1),
                 _fmt(row["mean_component_lift"]), _fmt(row["combination_lift"])]
        cells += [_fmt(row[f"{c}_lift"]) for c in COMPONENTS] + [f"{row['n_parameters']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Per-component *true* lift (the policy's choice on that component, uniform on the others; what the",
              "per-component calibrated sCTR estimates):", "",
              "| Method | " + " | ".join(COMPONENTS) + " |", "|---|" + "---:|" * len(COMPONENTS)]
    for m, row in agg["table2"].items():
        lines.append("| " + " | ".join([LABELS[m]] + [_fmt(row[f"{c}_true_lift"]) for c in COMPONENTS]) + " |")
    if agg["table3"]:
        lines += ["", "## Table 3 — ablations: lift minus full GenCO's (percentage points, paired by seed)", "",
                  "| Ablation | " + " | ".join(COMPONENTS) + " | true CTR lift |", "|---|" + "---:|" * (len(COMPONENTS) + 1)]
        for m, row in agg["table3"].items():
            lines.append("| " + " | ".join([LABELS[m]] + [_fmt(row[c]) for c in COMPONENTS] + [_fmt(row["true_ctr_lift"])]) + " |")
        lines += ["", "Same deltas on the per-component *true* lifts:", "",
                  "| Ablation | " + " | ".join(COMPONENTS) + " |", "|---|" + "---:|" * len(COMPONENTS)]
        for m, row in agg["table3"].items():
            lines.append("| " + " | ".join([LABELS[m]] + [_fmt(row[f"{c}_true"]) for c in COMPONENTS]) + " |")
    if agg["table4"]:
        lines += ["", "## Table 4 — GenCO's calibrated-sCTR lift by candidate bucket", "",
                  "| # candidates | " + " | ".join(COMPONENTS) + " |", "|---|" + "---:|" * len(COMPONENTS)]
        for k, name in enumerate(("<3 (<4)", "3-5 (4-8)", ">5 (>8)")):
            cells = [_fmt(agg["table4"][c][bucket_labels(c)[k]]) for c in COMPONENTS]
            lines.append("| " + " | ".join([name] + cells) + " |")
    if fig3:
        lines += ["", "## Figure 3 — GenCO's MIL weights by category", "",
                  "Mean of w_ij over test rows of the category where component j is present, renormalised per category"
                  f" (seeds {fig3['seeds']}); `figure3.png`.", "",
                  "| category | rows | " + " | ".join(COMPONENTS) + " |", "|---|---:|" + "---:|" * len(COMPONENTS)]
        for cat, rows, w in zip(fig3["categories"], fig3["rows"], fig3["weights"]):
            lines.append("| " + " | ".join([cat, f"{rows:,}"] + [f"{x:.3f}" for x in w]) + " |")
    lines += ["", "The combination-level calibrated sCTR matches few test rows (Π n weights) and is very noisy at this",
              "size; per-component lifts and the true CTR are the reliable figures.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from reference_model.train import _atomic_write

    _atomic_write(path, lambda p: fig.savefig(p, format="png"))
    _plt().close(fig)


def plot_table2(agg: dict[str, Any], path: Path) -> None:
    plt = _plt()
    rows = agg["table2"]
    names = [LABELS[m] for m in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    for ax, key, title in ((axes[0], "headroom_captured", "headroom captured (true CTR), %"),
                           (axes[1], "mean_component_lift", "mean per-component calibrated-sCTR lift, %")):
        mean = [rows[m][key]["mean"] or 0.0 for m in rows]
        std = [rows[m][key]["std"] or 0.0 for m in rows]
        ax.bar(range(len(names)), mean, yerr=std, capsize=3, color=["#999" if m in ("uniform",) else "#4477aa" for m in rows])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def _heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path, fmt: str, cmap: str, center: bool) -> None:
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
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def figure3(out: Path, data: str, seeds: list[int]) -> dict[str, Any] | None:
    """Mean MIL weights of GenCO by category over the test rows (averaged over ``seeds``' models)."""
    import torch

    from reference_model.model import GenCO
    from reference_model.train import load_run, read_split
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
    _heatmap(mean[keep], cats, list(COMPONENTS), "GenCO MIL weight by category (Figure 3)", out / "figure3.png", ".2f", "Blues", False)
    return res


# ------------------------------------------------------------------------------------------------- run
def run_reproduce(cfg: ReproduceConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    release = Release.open(cfg.data)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = cfg.settings()
    seeds = list(range(cfg.n_seeds))
    # longest first, so the pool stays busy to the end
    cost = {"uniform": 0, "dco": 1, "mlp": 2}
    tasks = sorted(((m, s) for m in cfg.methods for s in seeds), key=lambda t: (cost.get(t[0], 3), t[1]), reverse=True)
    device = cfg.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    jobs = cfg.jobs or (1 if device == "cuda" else max(1, min(os.cpu_count() or 1, 4)))
    data = str(release.root)
    results: list[dict[str, Any]] = []

    def report(r: dict[str, Any]) -> None:
        if cfg.quiet:
            return
        s = r["summary"]
        truth = f"true CTR {100 * s['true_ctr']:.3f} %, headroom {100 * s['headroom_captured']:+.1f} %, " if "true_ctr" in s else ""
        print(f"[{len(results)}/{len(tasks)}] {LABELS[r['method']]:<18} seed {r['seed']}: {truth}mean component lift "
              f"{100 * s.get('mean_component_lift', float('nan')):+.2f} % ({r['seconds']:.0f} s{', reused' if r['reused'] else ''})",
              file=sys.stderr, flush=True)

    if jobs == 1:
        _init_worker(1)
        for m, s in tasks:
            results.append(run_one(data, str(out), m, s, settings, device))
            report(results[-1])
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(1,)) as ex:
            futures = [ex.submit(run_one, data, str(out), m, s, settings, device) for m, s in tasks]
            for f in as_completed(futures):
                results.append(f.result())
                report(results[-1])
    results.sort(key=lambda r: (METHOD_ORDER.index(r["method"]), r["seed"]))

    # submissions, one folder per method
    hardware = hardware_string(device)
    subs = {}
    for m in cfg.methods:
        rs = [r for r in results if r["method"] == m]
        folder = out / "submissions" / m
        kw = _train_kwargs(m, 0, settings, device)
        train_opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in kw.items()
                              if k in ("epochs", "optimizer", "lr", "max_rows") and v is not None)
        command = (f"genco reproduce --data {cfg.data} --out {cfg.out} --seeds {cfg.seeds} --methods {m}"
                   + (" --quick" if cfg.quick else ""))
        notes = (f"Each seed k: genco train --data {cfg.data} --out runs/{m}/seed<k> --method {m} --seed <k> {train_opts} "
                 f"&& genco predict --model runs/{m}/seed<k> --data {cfg.data} --out seed<k>.parquet --seed <k>. "
                 "Reference entry generated by genco-data's reproduce.")
        path = write_submission(folder, m, release, [(r["seed"], Path(r["predictions"])) for r in rs], rs[0]["n_parameters"],
                                command, hardware, notes)
        subs[m] = str(path)

    agg = aggregate(results, cfg.methods)
    fig3 = figure3(out, data, seeds) if "genco" in cfg.methods else None
    seconds = time.perf_counter() - t0
    text = render_markdown(agg, cfg, seconds, fig3)
    from reference_model.train import _atomic_write, _write_json

    _atomic_write(out / "results.md", lambda p: p.write_text(text, encoding="utf-8"))
    payload = {"release": data, "dataset_version": release.manifest.dataset_version, "settings": settings, "seeds": seeds,
               "methods": list(cfg.methods), "quick": cfg.quick, "seconds": seconds, "aggregate": agg, "figure3": fig3,
               "runs": results, "submissions": subs, "hardware": hardware}
    _write_json(out / "results.json", payload)
    if agg["table2"]:
        plot_table2(agg, out / "table2.png")
    if agg["table3"]:
        rows = list(agg["table3"])
        mat = np.array([[agg["table3"][m][c]["mean"] if agg["table3"][m][c]["mean"] is not None else np.nan for c in COMPONENTS] for m in rows])
        _heatmap(mat, [LABELS[m] for m in rows], list(COMPONENTS), "Table 3: ablation − GenCO, calibrated-sCTR lift (pp)",
                 out / "table3.png", "+.2f", "RdBu", True)
    if agg["table4"]:
        mat = np.array([[agg["table4"][c][bucket_labels(c)[k]]["mean"] if agg["table4"][c][bucket_labels(c)[k]]["mean"] is not None else np.nan
                         for c in COMPONENTS] for k in range(3)])
        _heatmap(mat, ["<3 (<4)", "3-5 (4-8)", ">5 (>8)"], list(COMPONENTS), "Table 4: GenCO lift by candidate bucket (%)",
                 out / "table4.png", "+.1f", "RdBu", True)
    return {k: v for k, v in payload.items() if k != "runs"} | {"text": text, "out": str(out)}


def format_reproduce(report: dict[str, Any]) -> str:
    return report["text"] + f"\nwrote results.md, results.json, PNGs and submissions/ to {report['out']}"
