"""Peak memory of a training run that streams from the shards, at growing sizes, beside the resident path's.

    python benchmarks/train_stream.py                              # 250k and 1M rows, streamed and resident
    python benchmarks/train_stream.py --rows 50000000 --modes always --batch-size 1024   # the 50 M-row check
    python benchmarks/train_stream.py --release PATH --modes always,never

For every size a Table-1-shaped release is written with ``benchmarks/loader.py``'s numpy generator (zstd Parquet,
100k-row row groups and shards, like the builder's), then ``reference_model.train`` trains one epoch of GenCO on
it in a child process (1 thread, ``--stream always`` / ``never``), which reports its own peak RSS
(``ru_maxrss``), its resident memory's maximum in each quarter of the run (sampled every 0.5 s) and samples/s.
Streaming is bounded when its peak stays flat as the rows grow and its quarters show no trend; the resident path
(the anchor, same run) grows by about the padded row size (1,306 B) plus the decoded Arrow bytes per row. The
generator's manifest has no distinct-id counts, so every hashed table has the documented default size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(argv: list[str]) -> int:
    """Train with ``argv`` (reference_model.train's options), then print {"summary", "max_rss_bytes"} as JSON."""
    sys.path.insert(0, str(ROOT))
    from reference_model.train import config_from_args, train
    from reference_model.train import add_train_arguments

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    args = p.parse_args(argv)
    args.quiet = True
    import threading

    samples: list[tuple[float, int]] = []  # (seconds, VmRSS bytes) every 0.5 s: a trend shows growth, a peak does not
    done = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not done.wait(0.5):
            with open("/proc/self/status", encoding="ascii") as fh:
                kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
            samples.append((time.perf_counter() - t0, kb * 1024))

    threading.Thread(target=sample, daemon=True).start()
    summary = train(config_from_args(args))
    done.set()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    half = len(samples) // 2
    quarters = [max((b for _, b in samples[i * len(samples) // 4 : (i + 1) * len(samples) // 4]), default=0) for i in range(4)]
    print(json.dumps({"summary": {k: summary[k] for k in ("steps", "samples", "samples_per_s", "seconds")}, "max_rss_bytes": rss,
                      "rss_max_by_quarter": quarters, "rss_samples": len(samples), "half": half}))
    return 0


def run(release: Path, out: Path, mode: str, batch: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--data", str(release), "--out", str(out), "--epochs", "1",
           "--stream", mode, "--save-every", "0", "--threads", "1", "--batch-size", str(batch), "--log-every", "1000000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    res["data_path"] = json.loads((out / "config.json").read_text())["data"]
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="250000,1000000", help="comma list of train sizes (default 250k,1M)")
    p.add_argument("--release", type=Path, default=None, help="use this release instead of writing one per size")
    p.add_argument("--modes", default="always,never", help="--stream values to run (default: always,never)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from loader import write_release

    results = []
    with tempfile.TemporaryDirectory(prefix="genco-train-stream-") as tmp:
        sizes = [None] if args.release else [int(x) for x in args.rows.split(",")]
        for rows in sizes:
            release = args.release or write_release(Path(tmp) / f"rel-{rows}", rows)
            for mode in args.modes.split(","):
                r = run(release, Path(tmp) / f"run-{rows}-{mode}", mode, args.batch_size)
                r.update(rows=r["summary"]["samples"], mode=mode)
                results.append(r)
                if not args.json:
                    q = "/".join(f"{x / 2**20:,.0f}" for x in r["rss_max_by_quarter"])
                    print(f"{r['rows']:>12,} rows  --stream {mode:<6} ({r['data_path']['mode']:<8}) peak RSS {r['max_rss_bytes'] / 2**20:8,.0f} MiB"
                          f" (max per quarter of the run {q} MiB)   {r['summary']['samples_per_s']:>9,.0f} samples/s   {r['wall_s']:7.1f} s", flush=True)
            if not args.release:
                import shutil

                shutil.rmtree(release, ignore_errors=True)
    meta = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "batch_size": args.batch_size}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
    else:
        streamed = [r for r in results if r["data_path"]["mode"] == "streamed"]
        if len(streamed) > 1:
            a, b = streamed[0], streamed[-1]
            per = (b["max_rss_bytes"] - a["max_rss_bytes"]) / max(1, b["rows"] - a["rows"])
            print(f"streamed: {per:.1f} bytes of peak RSS per extra row ({a['rows']:,} -> {b['rows']:,} rows); load average "
                  f"{meta['load_average'][0]:.1f} on {meta['cpus']} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
