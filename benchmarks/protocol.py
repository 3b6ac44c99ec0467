"""Captured headroom (truth) of ``genco train`` with no tuning flag, per seed, beside ``--paper-defaults`` (the
paper's literal settings) measured in the same run: issue #15 part 4's target (>= 15 % with no flag).

    genco synth --out S --train-rows 240000 --test-rows 60000 --seed 0 && genco build S --out R --version 1.0.0
    python benchmarks/protocol.py --data R --seeds 1 2 3                     # reported seeds (tuning used seed 100)
    python benchmarks/protocol.py --data R --seeds 100 --train-arg=--vocab=exact --no-paper   # a tuning experiment

Each run is ``genco train --data R --out <tmp>/<name> --seed k [train args]`` then ``genco predict --prediction-seed 0``
and the evaluator (truth from ``R/world``), one CPU thread per run, ``--jobs`` at a time. Prints one line per run
(headroom, selected epoch, epochs trained, the validation curve) and the mean ± std over the no-flag seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(data: str, work: Path, name: str, seed: int, args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = work / name
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genco_data.cli", "train", "--data", data, "--out", str(out), "--seed", str(seed),
                    "--quiet", "--threads", "1", "--save-every", "0", *args], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "genco_data.cli", "predict", "--model", str(out), "--data", data, "--out",
                    str(out / "pred.parquet"), "--prediction-seed", "0", "--quiet"], check=True, env=env, stdout=subprocess.DEVNULL)
    from genco_data.evaluate import Evaluator

    metrics = Evaluator(data).evaluate(out / "pred.parquet").summary_metrics()
    cfg = json.loads((out / "config.json").read_text())
    val = cfg.get("validation") or {}
    return {"name": name, "seed": seed, "args": args, "headroom": metrics.get("headroom_captured"), "true_ctr": metrics.get("true_ctr"),
            "mean_component_lift": metrics.get("mean_component_lift"),
            "epochs": cfg["progress"]["epoch"], "selected_epoch": val.get("best_epoch"),
            "curve": [round(c["score"], 4) for c in val.get("curve", [])], "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--train-arg", action="append", default=[], help="extra `genco train` argument (repeatable), e.g. --train-arg=--vocab=exact")
    ap.add_argument("--no-paper", action="store_true", help="skip the --paper-defaults run")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="genco_protocol_"))
    work.mkdir(parents=True, exist_ok=True)
    tasks = [(f"noflag_seed{s}", s, list(a.train_arg)) for s in a.seeds]
    if not a.no_paper:
        tasks.append((f"paper_seed{a.seeds[0]}", a.seeds[0], ["--paper-defaults", *a.train_arg]))
    print(f"# {len(tasks)} runs in {work}, {a.jobs} at a time; load average {os.getloadavg()[0]:.1f} (shared box)", flush=True)
    with ThreadPoolExecutor(a.jobs) as ex:
        results = list(ex.map(lambda t: one(a.data, work, *t), tasks))
    for r in results:
        print(json.dumps(r), flush=True)
    noflag = [100 * r["headroom"] for r in results if r["name"].startswith("noflag") and r["headroom"] is not None]
    paper = [100 * r["headroom"] for r in results if r["name"].startswith("paper") and r["headroom"] is not None]
    if noflag:
        sd = statistics.stdev(noflag) if len(noflag) > 1 else float("nan")
        print(f"genco train (no tuning flag{', ' + ' '.join(a.train_arg) if a.train_arg else ''}): headroom captured "
              f"{statistics.mean(noflag):+.1f} ± {sd:.1f} % over seeds {a.seeds} ({', '.join(f'{v:+.1f}' for v in noflag)})")
    if paper:
        print(f"genco train --paper-defaults (seed {a.seeds[0]}): {paper[0]:+.1f} %" +
              (f"; no-flag mean ÷ paper = {statistics.mean(noflag) / paper[0]:.2f}x" if noflag and paper[0] else ""))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
