"""``genco reproduce``: every method and ablation × seeds → train → predictions → evaluation → the paper's
tables and figure, plus one leaderboard submission per method.

    genco reproduce --data rel --seeds 5 --out repro            # the reference numbers (~10 min on 2 CPU cores)
    genco reproduce --data rel --out repro_quick --quick        # a smoke run (minutes): 2 seeds, fewer rows, 1 epoch —
                                                                # checks the pipeline end to end; it cannot rank methods

Writes into ``--out``::

    results.md / results.json    Table 2 (true CTR, headroom captured, calibrated-sCTR lift over uniform per
                                 component and combination), Table 3 (ablation deltas vs full GenCO per
                                 component), Table 4 (GenCO's lift by candidate bucket), Figure 3's matrix;
                                 mean ± std over seeds
    table2.png table3.png table4.png figure3.png
    runs/<method>/seed<k>/       the training runs (genco train)
    submissions/<method>/        seed<k>.parquet predictions + submission.json (genco leaderboard verify)

Settings (:data:`~reference_model.reproduce_config.SETTINGS`), methods and :class:`ReproduceConfig` are
:mod:`reference_model.reproduce_config`'s; the tables :mod:`reference_model.results`'s; the PNGs
:mod:`reference_model.figures`'s. Runs go ``jobs`` at a time in worker processes with one CPU thread each; a
run folder that already holds a finished run with the same settings is reused, so an interrupted reproduce can
be restarted with the same command. (The workers are spawned: a script that calls :func:`run_reproduce` with
``jobs > 1`` needs the ``if __name__ == "__main__":`` guard.)
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from genco_data import __version__
from genco_data.format.components import COMPONENTS, bucket_labels
from genco_data.errors import InvalidInputError
from genco_data.format.records import SeedPredictions, Submission
from genco_data.release import MANIFEST_NAME, Release, sha256_file
from reference_model.figures import _heatmap, figure3, plot_table2
from reference_model.reproduce_config import (
    DEFAULT_SEEDS,
    DETERMINISTIC,
    LABELS,
    METHOD_ORDER,
    SETTINGS,
    ReproduceConfig,
)
from reference_model.results import QUICK_NOTE, aggregate, render_markdown
from reference_model.train_config import PROTOCOL_FIELDS, PROTOCOLS

# The public names of reproduce, its settings' included (``reference_model.reproduce.SETTINGS`` still works).
__all__ = [
    "ReproduceConfig",
    "METHOD_ORDER",
    "LABELS",
    "SETTINGS",
    "DEFAULT_SEEDS",
    "run_reproduce",
    "run_one",
    "format_reproduce",
    "hardware_string",
    "write_submission",
]

CODE_URL = "../reference_model"  # relative to cards/LEADERBOARD.md, where the board links it
PAPER_URL = "https://arxiv.org/abs/2508.09730"


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
          "protocol": settings.get("protocol", "reference"), "epochs": settings["epochs"], "max_rows": settings["max_rows"]}
    if method not in ("dco", "uniform"):
        kw.update({k: settings[k] for k in PROTOCOL_FIELDS if k in settings})  # (epochs: already in kw, the same value)
    if settings.get("genco_options"):
        from reference_model.config import VARIANTS

        if method in VARIANTS:  # the GenCO variants
            kw["genco_options"] = dict(settings["genco_options"])
    return kw


def run_one(data: str, out: str, method: str, seed: int, settings: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Train (or reuse) ``runs/<method>/seed<seed>``, predict into ``submissions/<method>/seed<seed>.parquet``,
    evaluate; returns the evaluation summary of that seed."""
    from reference_model.predict import predict
    from reference_model.checkpoint import CONFIG_NAME, read_run_config
    from reference_model.train import train
    from reference_model.train_config import TrainConfig

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
    fixed = settings.get("prediction_seed")  # None: the training seed; uniform always its own seed (ReproduceConfig)
    pred_seed = seed if fixed is None or method == "uniform" else int(fixed)
    pred = predict(run_dir, data, pred_path, seed=pred_seed, device="cpu" if device == "cpu" else device)
    result = _evaluator(data).evaluate(pred_path)
    d = result.to_dict()
    flat = result.metrics()
    summary = result.summary_metrics()
    comp_truth = {c: (d["components"][c]["truth"] or {}).get("lift") for c in COMPONENTS}
    buckets = {c: {lab: flat.get(f"lift/{c}/{lab}") for lab in bucket_labels(c)} for c in COMPONENTS}
    matched = {c: {lab: d["components"][c]["buckets"][lab]["matched"] for lab in bucket_labels(c)} for c in COMPONENTS}
    meta = read_run_config(run_dir)
    return {
        "method": method, "seed": seed, "training_seed": seed, "prediction_seed": pred_seed,
        "selected_epoch": (meta.get("validation") or {}).get("best_epoch"), "epochs_trained": meta["progress"]["epoch"], "summary": summary, "component_true_lift": comp_truth, "buckets": buckets,
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
    from reference_model.checkpoint import _write_json

    _write_json(path, sub.model_dump(mode="json"))
    return path


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

    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="genco reproduce", unit="run", disable=cfg.quiet, file=sys.stderr)

    def report(r: dict[str, Any]) -> None:
        bar.update()
        if cfg.quiet:
            return
        s = r["summary"]
        truth = f"true CTR {100 * s['true_ctr']:.3f} %, headroom {100 * s['headroom_captured']:+.1f} %, " if "true_ctr" in s else ""
        bar.write(f"[{len(results)}/{len(tasks)}] {LABELS[r['method']]:<18} seed {r['seed']}: {truth}mean component lift "
                  f"{100 * s.get('mean_component_lift', float('nan')):+.2f} % ({r['seconds']:.0f} s{', reused' if r['reused'] else ''})",
                  file=sys.stderr)

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
    bar.close()
    results.sort(key=lambda r: (METHOD_ORDER.index(r["method"]), r["seed"]))

    # submissions, one folder per method
    hardware = hardware_string(device)
    subs = {}
    for m in cfg.methods:
        rs = [r for r in results if r["method"] == m]
        folder = out / "submissions" / m
        kw = _train_kwargs(m, 0, settings, device)
        proto = PROTOCOLS[kw["protocol"]]  # only what differs from the protocol's defaults is a flag
        train_opts = " ".join(["--paper-defaults"] * (kw["protocol"] == "paper") + [
            f"--{k.replace('_', '-')} {v}" for k, v in kw.items()
            if (k in proto and v != proto[k] and (m not in ("dco", "uniform") or k == "epochs")) or (k == "max_rows" and v is not None)])
        command = (f"genco reproduce --data {cfg.data} --out {cfg.out} --seeds {cfg.seeds} --methods {m}"
                   + (" --quick" if cfg.quick else ""))
        notes = (f"Each seed k: genco train --data {cfg.data} --out runs/{m}/seed<k> --method {m} --seed <k> {train_opts} "
                 f"&& genco predict --model runs/{m}/seed<k> --data {cfg.data} --out seed<k>.parquet "
                 f"--prediction-seed {'<k>' if settings.get('prediction_seed') is None or m == 'uniform' else settings['prediction_seed']}. "
                 "Reference entry generated by genco-data's reproduce.")
        path = write_submission(folder, m, release, [(r["seed"], Path(r["predictions"])) for r in rs], rs[0]["n_parameters"],
                                command, hardware, notes)
        subs[m] = str(path)

    agg = aggregate(results, cfg.methods)
    fig3 = figure3(out, data, seeds) if "genco" in cfg.methods else None
    seconds = time.perf_counter() - t0
    text = render_markdown(agg, cfg, seconds, fig3)
    from genco_data.fsutil import atomic_write as _atomic_write
    from reference_model.checkpoint import _write_json

    _atomic_write(out / "results.md", lambda p: p.write_text(text, encoding="utf-8"))
    payload = {"release": data, "dataset_version": release.manifest.dataset_version, "settings": settings, "seeds": seeds,
               "methods": list(cfg.methods), "quick": cfg.quick, "seconds": seconds, "aggregate": agg, "figure3": fig3,
               "runs": results, "submissions": subs, "hardware": hardware}
    _write_json(out / "results.json", payload)
    if agg["table2"]:
        plot_table2(agg, out / "table2.png", quick=cfg.quick)
    if agg["table3"]:
        rows = list(agg["table3"])
        mat = np.array([[agg["table3"][m][c]["mean"] if agg["table3"][m][c]["mean"] is not None else np.nan for c in COMPONENTS] for m in rows])
        _heatmap(mat, [LABELS[m] for m in rows], list(COMPONENTS), "Table 3: ablation − GenCO, calibrated-sCTR lift (pp)",
                 out / "table3.png", "+.2f", "RdBu", True, "ablation lift − GenCO's lift (percentage points)")
    if agg["table4"]:
        mat = np.array([[agg["table4"][c][bucket_labels(c)[k]]["mean"] if agg["table4"][c][bucket_labels(c)[k]]["mean"] is not None else np.nan
                         for c in COMPONENTS] for k in range(3)])
        _heatmap(mat, ["<3 (<4)", "3-5 (4-8)", ">5 (>8)"], list(COMPONENTS), "Table 4: GenCO lift by candidate bucket (%)",
                 out / "table4.png", "+.1f", "RdBu", True, "GenCO's calibrated-sCTR lift over uniform (%)")
    return {k: v for k, v in payload.items() if k != "runs"} | {"text": text, "out": str(out)}


def format_reproduce(report: dict[str, Any]) -> str:
    text = report["text"] + f"\nwrote results.md, results.json, PNGs and submissions/ to {report['out']}"
    if report.get("quick"):
        text += f"\n{QUICK_NOTE}"
    return text
