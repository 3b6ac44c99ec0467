"""``genco demo``: the whole pipeline on the small default synthetic release, in about a minute on 2 CPU cores.

    synth (200 k train + 50 k test rows) → build a release → datasets.load_dataset (offline) → Table-1 stats
    → train GenCO, GenCO + logging prior (ours), MLP, DCO, Uniform briefly (2 epochs) → predict → evaluate
    → verify each as a 1-seed leaderboard submission → render the board → print it with a short comparison.

Everything goes under ``--out`` (default ``demo_out``), which is replaced when it holds an earlier demo (it
carries a ``.genco-demo`` marker) and refused when it holds anything else; the same command always gives
the same data, models and numbers (fixed seeds, one thread per step).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from genco_data.errors import InvalidInputError

MARKER = ".genco-demo"
#: Rows (train, test) of the simulated release; "tiny" is for the tests.
SIZES: dict[str, tuple[int, int]] = {"default": (200_000, 50_000), "tiny": (4_000, 1_000)}
#: Methods trained by the demo, with their (brief) settings: reproduce's optimizer and lr, DEMO_EPOCHS epochs.
#: genco_bc is not the paper's GenCO (see reference_model.model.VARIANTS); it shows what imitating the logging policy adds.
DEMO_METHODS: tuple[str, ...] = ("uniform", "dco", "mlp", "genco", "genco_bc")
DEMO_EPOCHS = 2


def _prepare(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise InvalidInputError(f"--out {out} is a file; expected a folder for the demo")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise InvalidInputError(f"--out {out} is not empty and holds no earlier demo ({MARKER}); choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("created by `genco demo`; the next `genco demo` replaces this folder\n", encoding="utf-8")


def run_demo(out: str | os.PathLike = "demo_out", size: str = "default", quiet: bool = False, echo: bool = True) -> dict[str, Any]:
    """Run the demo into ``out``; returns a report (``text`` holds what is printed at the end)."""
    if size not in SIZES:
        raise InvalidInputError(f"demo size must be one of {', '.join(SIZES)}; got {size!r}")
    t_all = time.perf_counter()
    out = Path(out)
    _prepare(out)
    say: Callable[[str], None] = (lambda s: print(s, flush=True)) if echo else (lambda s: None)
    steps: dict[str, float] = {}

    def stage(name: str):
        t = time.perf_counter()
        return lambda: steps.__setitem__(name, time.perf_counter() - t)

    # 1. simulate + build
    from genco_data import BuildConfig, build_release
    from genco_data.synth import SynthConfig, simulate

    train_rows, test_rows = SIZES[size]
    done = stage("synth")
    summary = simulate(SynthConfig(train_rows=train_rows, test_rows=test_rows, seed=0), out / "raw", progress=not quiet)
    done()
    say(f"[1/6] simulated {summary['train_rows']:,} train + {summary['test_rows']:,} test impressions (ground truth in raw/world/)")
    done = stage("build")
    result = build_release(BuildConfig(sources=[out / "raw"], out=out / "release", version="1.0.0"), progress=not quiet)
    done()
    release = out / "release"
    say(f"[2/6] {result.summary()}")

    # 2. load with datasets (offline) + stats
    done = stage("load")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    if quiet:
        datasets.disable_progress_bars()
    ds = datasets.load_dataset(str(release), cache_dir=str(out / "hf_cache"))
    done()
    feats = ds["train"].features
    say(f"[3/6] datasets.load_dataset({str(release)!r}): " + ", ".join(f"{k} {v.num_rows:,} rows" for k, v in ds.items())
        + f"; {len(feats)} features, e.g. click={feats['click']}, title_candidates={feats['title_candidates']}")
    from genco_data.build.stats import format_stats, release_stats

    stats_text = format_stats(release_stats(release))
    say(stats_text)

    # 3. train, predict, evaluate, verify
    from genco_data.leaderboard import render_leaderboard, verify_submission
    from reference_model.predict import predict
    from reference_model.checkpoint import read_run_config
    from reference_model.reproduce import hardware_string, write_submission
    from reference_model.reproduce_config import LABELS, SETTINGS
    from reference_model.train import train
    from reference_model.train_config import TrainConfig

    settings = SETTINGS["full"]
    rows: list[dict[str, Any]] = []
    entries = out / "leaderboard"
    say(f"[4/6] training {', '.join(LABELS[m] for m in DEMO_METHODS)} ({settings['optimizer']} lr {settings['lr']:g}, "
        f"{DEMO_EPOCHS} epochs, batch 1024, chronological) → predictions → evaluation → leaderboard verification")
    for m in DEMO_METHODS:
        t = time.perf_counter()
        run_dir = out / "runs" / m
        kw: dict[str, Any] = {"method": m, "epochs": DEMO_EPOCHS, "seed": 0, "threads": 1, "quiet": quiet, "device": "cpu"}
        if m not in ("dco", "uniform"):
            kw.update(optimizer=settings["optimizer"], lr=settings["lr"])
        train(TrainConfig(data=str(release), out=str(run_dir), **kw))
        folder = out / "submissions" / m
        pred = predict(run_dir, release, folder / "seed0.parquet", seed=0)
        opts = " ".join(f"--{k} {v}" for k, v in kw.items() if k in ("epochs", "optimizer", "lr"))
        command = (f"genco train --data {release} --out {run_dir} --method {m} --seed 0 {opts} && "
                   f"genco predict --model {run_dir} --data {release} --out {folder / 'seed0.parquet'} --seed 0")
        meta = read_run_config(run_dir)
        sub = write_submission(folder, m, _release(release), [(0, folder / "seed0.parquet")], meta["n_parameters"], command,
                               hardware_string("cpu"), notes=f"genco demo: one seed, {DEMO_EPOCHS} epoch(s)")
        entry = verify_submission(sub, release, entries_dir=entries, min_seeds=1)
        s = {k: v.mean for k, v in entry.metrics.items()}
        rows.append({"method": m, "true_ctr": s.get("true_ctr"), "uniform_true_ctr": s.get("uniform_true_ctr"),
                     "oracle_ctr": s.get("oracle_ctr"), "headroom_captured": s.get("headroom_captured"),
                     "mean_component_lift": s.get("mean_component_lift"), "seconds": time.perf_counter() - t,
                     "predictions": pred["out"], "n_parameters": meta["n_parameters"]})
        say(f"      {LABELS[m]:<30} {_pct(s.get('true_ctr'))} true CTR, headroom {_pct(s.get('headroom_captured'), True, 1)}, "
            f"{time.perf_counter() - t:.1f} s")
    steps["train+evaluate"] = sum(r["seconds"] for r in rows)

    # 4. board + comparison
    board_path = render_leaderboard(entries, out / "LEADERBOARD.md")
    board = board_path.read_text(encoding="utf-8")
    say(f"[5/6] verified {len(rows)} submissions by recomputation into {entries}/, rendered {board_path}")
    uni = rows[0]["uniform_true_ctr"]
    orc = rows[0]["oracle_ctr"]
    lines = ["", board.strip(), "", "[6/6] comparison on the simulator's ground truth (test requests):",
             f"{'method':<30}{'true CTR':>10}{'vs uniform':>12}{'headroom':>10}{'mean comp. lift':>17}{'#params':>10}"]
    for r in rows:
        lift = r["true_ctr"] / uni - 1 if r["true_ctr"] and uni else None
        lines.append(f"{LABELS[r['method']]:<30}{_pct(r['true_ctr']):>10}{_pct(lift, True):>12}{_pct(r['headroom_captured'], True, 1):>10}"
                     f"{_pct(r['mean_component_lift'], True):>17}{r['n_parameters']:>10,}")
    if uni and orc:
        lines.append(f"{'oracle (best combination)':<30}{_pct(orc):>10}{_pct(orc / uni - 1, True):>12}{'+100.0%':>10}")
    total = time.perf_counter() - t_all
    lines.append(f"demo finished in {total:.0f} s; everything is in {out}/ (rerun `genco demo --out {out}` to replace it)")
    text = "\n".join(lines)
    return {"out": str(out), "seconds": total, "stages": steps, "methods": rows, "leaderboard": str(board_path), "text": text}


def _release(path: Path):
    from genco_data.release import Release

    return Release.open(path)


def _pct(x: float | None, signed: bool = False, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:{'+' if signed else ''}.{digits}f}%"


if __name__ == "__main__":  # python -m reference_model.demo [OUT]
    rep = run_demo(sys.argv[1] if len(sys.argv) > 1 else "demo_out")
    print(rep["text"])
