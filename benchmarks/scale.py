"""The builder at scale: synth -> build at growing sizes, beside the encode floor, in one run (issue #13).

    python benchmarks/scale.py                        # 1 M, 10 M, 50 M rows
    python benchmarks/scale.py --big                  # ... and 100 M
    python benchmarks/scale.py --sizes 1000000        # one size (the shared-box check)
    python benchmarks/scale.py --sizes 8000000 --compare-workers   # --workers 1 vs --workers N, same rows
    python benchmarks/scale.py --duckdb               # also DuckDB's plain re-encode (pip install duckdb)
    python benchmarks/scale.py --repeat 3             # 3 interleaved rounds per size, best of each (a noisy machine)

For each size: the simulator writes the raw Parquet parts (``genco_data.synth``, default world, 4/5 train);
then, each in a fresh child process that does nothing else,

* **build**: ``genco_data.build.builder.build_release`` (validation, exact uniqueness, chronological order,
  shards, sample, statistics, manifest; no card) with ``--workers`` processes: wall seconds, rows/s, rows per
  CPU-second (the build process and every worker, read from /proc), peak RSS of the build process and of
  the largest worker;
* **floor**: pyarrow reading the same raw rows and writing them with the release's writer settings
  (``open_parquet_writer``: zstd, content-defined chunking, page index, dictionaries), no validation, one
  process: rows per CPU-second;
* optionally **DuckDB**: ``COPY (SELECT * FROM read_parquet(...)) TO ... (FORMAT parquet, COMPRESSION zstd)``,
  one thread.

Then the ratio build / floor per CPU-second, and the growth exponents ``b`` of ``time ~ rows^b`` and
``peak RSS ~ rows^b`` fitted over the sizes (least squares in log-log). Targets: build >= 0.7x the floor per
CPU-second; peak RSS < +40 MB from 1 M to 8 M rows and <= 1.5 GB at 50 M; 2 workers >= 1.5x 1 worker (wall).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_TICK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ /proc
def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _cpu_and_peak(pid: int) -> tuple[float, int]:
    """(user+system CPU seconds, peak RSS bytes) of one process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK
    peak = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cpu, peak


class Sampler:
    """Polls a process tree: the last CPU seconds and peak RSS seen for every process in it."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.seen: dict[int, tuple[float, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in {self.pid} | _descendants(self.pid):
                try:
                    cpu, peak = _cpu_and_peak(p)
                except (OSError, ValueError, IndexError):
                    continue
                old = self.seen.get(p, (0.0, 0))  # a zombie shows no VmHWM: keep the largest seen
                self.seen[p] = (max(cpu, old[0]), max(peak, old[1]))
            self._stop.wait(self.every)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        main = self.seen.get(self.pid, (0.0, 0))
        workers = [v for p, v in self.seen.items() if p != self.pid]
        return {"cpu_s": main[0] + sum(c for c, _ in workers), "rss_main": main[1],
                "rss_worker": max((r for _, r in workers), default=0), "processes": len(self.seen)}


# ------------------------------------------------------------------------------------------ children
def _build_child(raw: str, out: str, tsd: str, workers: int, q) -> None:
    from genco_data.build.builder import build_release
    from genco_data.build.plan import BuildConfig

    r = build_release(BuildConfig(sources=[Path(raw)], out=Path(out), version="0.0.1", workers=workers,
                                  test_start_day=dt.date.fromisoformat(tsd)), progress=False)
    q.put({"rows": r.rows_in, "ordering": r.ordering, "files": r.files, "bytes": r.bytes})


def _floor_child(raw: str, out: str, q) -> None:
    import pyarrow.parquet as pq

    from genco_data.build.writer import open_parquet_writer

    rows = 0
    Path(out).mkdir(parents=True, exist_ok=True)
    w = open_parquet_writer(Path(out) / "all.parquet")
    for f in sorted(Path(raw).glob("raw/*.parquet")):
        for b in pq.ParquetFile(f).iter_batches(batch_size=100_000):
            w.write_batch(b)
            rows += b.num_rows
    w.close()
    q.put({"rows": rows})


def _duckdb_child(raw: str, out: str, q) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute(f"COPY (SELECT * FROM read_parquet('{raw}/raw/*.parquet')) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    q.put({"rows": con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]})


def measure(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    t0 = time.perf_counter()
    p.start()
    sampler = Sampler(p.pid)
    res = q.get()
    p.join()
    wall = time.perf_counter() - t0
    return {**res, **sampler.stop(), "wall_s": wall}


def synth(folder: Path, rows: int) -> str:
    from genco_data.synth import SynthConfig, simulate

    train = rows * 4 // 5
    summary = simulate(SynthConfig(train_rows=train, test_rows=rows - train, seed=0), folder, progress=False)
    return summary["test_start_day"]


def slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000])
    ap.add_argument("--big", action="store_true", help="add 100 M rows")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--compare-workers", action="store_true", help="also build with --workers 1 (speedup of N workers)")
    ap.add_argument("--duckdb", action="store_true", help="also time DuckDB's single-thread re-encode (needs duckdb)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds per size, interleaved; each figure is the best (least CPU / wall) of its rounds")
    ap.add_argument("--workdir", default=None, help="where raw data and releases go (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = sorted(set(args.sizes + ([100_000_000] if args.big else [])))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="genco-scale-"))
    results = []
    try:
        for n in sizes:
            src = work / f"raw-{n}"
            t0 = time.perf_counter()
            tsd = synth(src, n)
            row = {"rows": n, "synth_s": time.perf_counter() - t0}
            runs: dict[str, list[dict]] = {}
            for _ in range(args.repeat):  # interleaved rounds: a slow spell of the machine hits every contender
                runs.setdefault("build", []).append(measure(_build_child, str(src), str(work / f"rel-{n}"), tsd, args.workers))
                shutil.rmtree(work / f"rel-{n}", ignore_errors=True)
                if args.compare_workers and args.workers > 1:
                    runs.setdefault("build_1", []).append(measure(_build_child, str(src), str(work / f"rel1-{n}"), tsd, 1))
                    shutil.rmtree(work / f"rel1-{n}", ignore_errors=True)
                runs.setdefault("floor", []).append(measure(_floor_child, str(src), str(work / f"floor-{n}")))
                shutil.rmtree(work / f"floor-{n}", ignore_errors=True)
                if args.duckdb:
                    runs.setdefault("duckdb", []).append(measure(_duckdb_child, str(src), str(work / f"duck-{n}.parquet")))
                    (work / f"duck-{n}.parquet").unlink(missing_ok=True)
            for name, rs in runs.items():
                row[name] = {**min(rs, key=lambda r: r["cpu_s"]), "cpu_s_runs": [r["cpu_s"] for r in rs],
                             "wall_s": min(r["wall_s"] for r in rs)}
            shutil.rmtree(src, ignore_errors=True)
            results.append(row)
            if not args.json:
                _print_row(row, args.workers)
        fit = {
            "time_exponent": slope([r["rows"] for r in results], [r["build"]["wall_s"] for r in results]),
            "cpu_exponent": slope([r["rows"] for r in results], [r["build"]["cpu_s"] for r in results]),
            "memory_exponent": slope([r["rows"] for r in results], [max(r["build"]["rss_main"], r["build"]["rss_worker"]) for r in results]),
        }
        meta = {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0], "workers": args.workers}
        if args.json:
            print(json.dumps({"sizes": results, "fit": fit, **meta}, indent=2))
            return
        fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        print(f"growth exponents (log-log fit over {len(results)} sizes): time {fmt(fit['time_exponent'])}, "
              f"CPU {fmt(fit['cpu_exponent'])}, peak RSS {fmt(fit['memory_exponent'])}")
        print(f"machine: {meta['cpus']} CPUs, load average {meta['load_average_1m']:.1f} at the end")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _print_row(row: dict, workers: int) -> None:
    n, b, f = row["rows"], row["build"], row["floor"]
    per_cpu, floor_cpu = n / b["cpu_s"], n / f["cpu_s"]
    print(f"{n:>12,} rows (synth {row['synth_s']:.0f} s; ordering {b['ordering']}; {b['files']} files, {b['bytes'] / 1e6:,.0f} MB)")
    print(f"  build, {workers} workers   {b['wall_s']:8.1f} s wall  {n / b['wall_s']:>11,.0f} rows/s  {per_cpu:>11,.0f} rows/CPU-s  "
          f"peak RSS {b['rss_main'] / 2**20:,.0f} MB (build process), {b['rss_worker'] / 2**20:,.0f} MB (largest worker)")
    if "build_1" in row:
        b1 = row["build_1"]
        print(f"  build, 1 worker    {b1['wall_s']:8.1f} s wall  {n / b1['wall_s']:>11,.0f} rows/s  {n / b1['cpu_s']:>11,.0f} rows/CPU-s  "
              f"-> {workers} workers are {b1['wall_s'] / b['wall_s']:.2f}x faster (wall); "
              f"1 worker / floor per CPU-s = {f['cpu_s'] / b1['cpu_s']:.2f}x")
    if len(f["cpu_s_runs"]) > 1:
        spread = "; ".join(f"{k} {', '.join(f'{c:.1f}' for c in row[k]['cpu_s_runs'])}" for k in ("build", "build_1", "floor", "duckdb") if k in row)
        print(f"  CPU-s of each round (best taken): {spread}")
    print(f"  encode floor       {f['wall_s']:8.1f} s wall  {n / f['wall_s']:>11,.0f} rows/s  {floor_cpu:>11,.0f} rows/CPU-s  "
          f"-> build / floor per CPU-s = {per_cpu / floor_cpu:.2f}x (target >= 0.7)")
    if "duckdb" in row:
        d = row["duckdb"]
        print(f"  DuckDB re-encode   {d['wall_s']:8.1f} s wall  {n / d['wall_s']:>11,.0f} rows/s  {n / d['cpu_s']:>11,.0f} rows/CPU-s  "
              f"-> build / DuckDB per CPU-s = {per_cpu / (n / d['cpu_s']):.2f}x")


if __name__ == "__main__":
    main()
