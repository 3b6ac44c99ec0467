"""Where a build's CPU goes beside the encode floor, and what is left for issue #13's throughput targets.

    python benchmarks/build_budget.py                       # 2 M simulator rows
    python benchmarks/build_budget.py --rows 8000000 --duckdb
    python benchmarks/build_budget.py --raw DIR --test-start-day 2025-07-23   # rows already simulated

Everything runs in this process with Arrow on one thread, as in a build worker, on the same raw rows:

* **floor**: pyarrow reading the raw Parquet parts (65,536-row batches) and writing them with the release's
  writer settings (``open_parquet_writer``: zstd, content-defined chunking, page index, dictionaries), no
  validation; its read and write CPU timed apart;
* **build**: ``build_release(..., workers=1)``, once plain (its CPU is the figure) and once under cProfile
  (process time) to split that CPU into the steps of a build (:data:`STEPS`), µs per row each;
* optionally **DuckDB**'s single-thread plain re-encode (``--duckdb``, needs ``duckdb``).

Then the ratios per CPU-second (build / floor, build / DuckDB) and two ceilings: the build / floor ratio if
validation, the statistics and the sample cost nothing (the rest of a build: the floor's read and write, the
spill round trip, exact uniqueness, checksums, planning and clean-up), and the CPU those three steps may
take at most for build / floor = 0.7. The ceilings subtract the profiled step times (inflated by cProfile)
from the plain build's CPU, so they lean optimistic.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Steps of a build: name -> the functions whose cumulative CPU is that step, as (file suffix, function).
STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "parquet read (raw rows)": (("build/readers.py", "_read_parquet"),),
    "parquet write (release settings)": (("parquet/core.py", "write_table"), ("parquet/core.py", "close")),
    "validation (coerce, row rules, cast)": (("build/ingest.py", "check_batch"),),
    "Table-1 statistics": (("build/stats.py", "update"), ("build/stats.py", "merge"), ("build/stats.py", "result")),
    "sample": (("build/encode.py", "offer"), ("build/encode.py", "result"), ("build/writer.py", "absorb"),
               ("build/writer.py", "result")),
    "spill of rows and ids, read back": (("build/ingest.py", "write"), ("build/ingest.py", "close"),
                                          ("build/encode.py", "_pieces")),
    "exact uniqueness (partition check)": (("build/unique.py", "partition_duplicates"),),
    "checksums (sha256)": (("genco_data/fsutil.py", "sha256_file"),),
}
#: The steps whose cost depends on how they are computed (the rest is I/O or the floor's own work).
FREE_IN_CEILING = ("validation (coerce, row rules, cast)", "Table-1 statistics", "sample")
TARGET = 0.7


def _one_core() -> None:
    from genco_data.build.engines.local import _keep_freed_memory
    import pyarrow as pa

    pa.set_cpu_count(1)
    _keep_freed_memory()


def floor(raw: Path, out: Path) -> dict[str, float]:
    import pyarrow.parquet as pq

    from genco_data.build.writer import open_parquet_writer

    read = write = 0.0
    rows = 0
    w = open_parquet_writer(out)
    for f in sorted(raw.glob("raw/*.parquet")):
        batches = pq.ParquetFile(f).iter_batches(batch_size=1 << 16)
        while True:
            t0 = time.process_time()
            b = next(batches, None)
            t1 = time.process_time()
            read += t1 - t0
            if b is None:
                break
            w.write_batch(b)
            write += time.process_time() - t1
            rows += b.num_rows
    t0 = time.process_time()
    w.close()
    write += time.process_time() - t0
    out.unlink()
    return {"rows": rows, "read_s": read, "write_s": write, "cpu_s": read + write}


def build(raw: Path, out: Path, tsd: dt.date, profile: bool) -> tuple[float, pstats.Stats | None, int]:
    from genco_data.build.builder import build_release
    from genco_data.build.plan import BuildConfig

    cfg = BuildConfig(sources=[raw], out=out, version="0.0.1", workers=1, test_start_day=tsd)
    prof = cProfile.Profile(time.process_time) if profile else None
    t0 = time.process_time()
    if prof:
        prof.enable()
    r = build_release(cfg, progress=False)
    if prof:
        prof.disable()
    cpu = time.process_time() - t0
    shutil.rmtree(out)
    return cpu, (pstats.Stats(prof) if prof else None), r.rows_in


def split_steps(st: pstats.Stats) -> dict[str, float]:
    """CPU seconds of each step: the cumulative time of its functions, through the calls that come from outside
    the step (a matched function called by another one of the same step is not counted twice)."""
    out = {}
    for step, funcs in STEPS.items():
        matched = {key for key in st.stats if any(key[0].endswith(sfx) and key[2] == fn for sfx, fn in funcs)}  # type: ignore[attr-defined]
        out[step] = sum(edge[3] for key in matched for caller, edge in st.stats[key][4].items() if caller not in matched)  # type: ignore[attr-defined]
    return out


def duckdb_cpu(raw: Path, out: Path) -> float | None:
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect()
    con.execute("SET threads = 1")
    t0 = time.process_time()
    con.execute(f"COPY (SELECT * FROM read_parquet('{raw}/raw/*.parquet')) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    cpu = time.process_time() - t0
    out.unlink()
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--raw", type=Path, default=None, help="a simulator output folder (with raw/*.parquet) to reuse")
    ap.add_argument("--test-start-day", default=None, help="with --raw: its first test day (ISO)")
    ap.add_argument("--duckdb", action="store_true")
    args = ap.parse_args()
    if args.raw is not None and args.test_start_day is None:
        ap.error("--raw needs --test-start-day")
    _one_core()
    work = Path(tempfile.mkdtemp(prefix="genco-budget-"))
    try:
        if args.raw is None:
            from scale import synth  # benchmarks/scale.py: the same rows as the scale benchmark

            raw = work / "raw"
            tsd = dt.date.fromisoformat(synth(raw, args.rows))
        else:
            raw, tsd = args.raw, dt.date.fromisoformat(args.test_start_day)
        f = floor(raw, work / "floor.parquet")
        n = f["rows"]
        plain, _, rows_in = build(raw, work / "rel", tsd, profile=False)
        profiled, st, _ = build(raw, work / "rel", tsd, profile=True)
        duck = duckdb_cpu(raw, work / "duck.parquet") if args.duckdb else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert rows_in == n, (rows_in, n)
    steps = split_steps(st)
    us = lambda s: 1e6 * s / n  # noqa: E731
    print(f"{n:,} rows, one process, Arrow on one thread")
    print(f"  floor: read {us(f['read_s']):.2f} + write {us(f['write_s']):.2f} = {us(f['cpu_s']):.2f} us/row "
          f"({n / f['cpu_s']:,.0f} rows/CPU-s)")
    print(f"  build: {us(plain):.2f} us/row ({n / plain:,.0f} rows/CPU-s); under cProfile {us(profiled):.2f}, split:")
    for step, s in steps.items():
        print(f"    {step:<40s} {us(s):6.2f} us/row  {100 * s / profiled:5.1f} %")
    rest = profiled - sum(steps.values())
    print(f"    {'the rest (plan, assembly, clean-up, ...)':<40s} {us(rest):6.2f} us/row  {100 * rest / profiled:5.1f} %")
    ratio = f["cpu_s"] / plain
    free = sum(steps[k] for k in FREE_IN_CEILING)
    ceiling = f["cpu_s"] / max(plain - free, 1e-9)
    allowed = f["cpu_s"] / TARGET - (plain - free)
    print(f"  build / floor per CPU-s = {ratio:.2f}x (target >= {TARGET})")
    print(f"  ceiling if validation, statistics and sample cost nothing: {ceiling:.2f}x the floor")
    if allowed > 0:
        print(f"  for {TARGET}x those three may take {us(allowed):.2f} us/row together; they take {us(free):.2f} now")
    else:
        print(f"  {TARGET}x is out of reach: the rest of the build alone takes {us(plain - free):.2f} us/row, more than "
              f"floor / {TARGET} = {us(f['cpu_s'] / TARGET):.2f}")
    if duck is not None:
        d = n / duck
        print(f"  DuckDB plain re-encode {us(duck):.2f} us/row ({d:,.0f} rows/CPU-s, {f['cpu_s'] / duck:.2f}x the floor): "
              f"build / DuckDB = {(n / plain) / d:.2f}x; the ceiling above is {duck / max(plain - free, 1e-9):.2f}x DuckDB")
    elif args.duckdb:
        print("  DuckDB: not installed (pip install duckdb)")


if __name__ == "__main__":
    main()
