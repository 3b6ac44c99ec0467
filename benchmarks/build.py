"""Builder throughput with validation on, beside per-row pydantic validation (the anchor), in one run.

    python benchmarks/build.py --rows 2000000            # factories data (tests/factories.py)
    python benchmarks/build.py --rows 2000000 --synth    # genco_data.synth output, when it exists

Prints: build rows/s (wall and per CPU-second of the build process), validation-only rows/s
(``coerce`` + ``row_reasons`` over the same batches), the anchor's rows/s (``ImpressionRow.model_validate``
on ``to_pylist()`` dicts of a subset, extrapolated as a rate), the ratios, and the build's peak RSS
(measured in a child process that does nothing else).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def make_raw(folder: Path, rows: int, chunk: int, use_synth: bool) -> dt.date:
    """Write ``rows`` chronological rows (4/5 train, 1/5 test) as Parquet files; returns test_start_day."""
    if use_synth:
        from genco_data.synth import SynthConfig, simulate

        summary = simulate(SynthConfig(train_rows=rows * 4 // 5, test_rows=rows - rows * 4 // 5, seed=0), folder, progress=False)
        return dt.date.fromisoformat(summary["test_start_day"])
    from factories import START, make_impressions, write_parquet

    train = rows * 4 // 5
    n_train_chunks = max(1, -(-train // chunk))
    tsd = START + dt.timedelta(days=4 * n_train_chunks)
    done, i, j = 0, 0, 0
    while done < rows:
        n = min(chunk, rows - done)
        is_train = done < train
        n = min(n, train - done) if is_train else n
        start = START + dt.timedelta(days=4 * i) if is_train else tsd + dt.timedelta(days=2 * j)
        j += 0 if is_train else 1
        t = make_impressions(n, seed=i, train_days=4 if is_train else 0, test_days=0 if is_train else 2,
                             start=start, first_id=done, vocab=20_000)
        write_parquet(t, folder / "raw" / f"part-{i:05d}.parquet", row_group_size=100_000)
        done += n
        i += 1
    return tsd


def _child(raw: str, out: str, tsd: str, batch_rows: int, q) -> None:
    from genco_data import BuildConfig, build_release

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    r = build_release(BuildConfig(sources=[Path(raw)], out=Path(out), version="0.0.1",
                                  test_start_day=dt.date.fromisoformat(tsd), batch_rows=batch_rows), progress=False)
    wall = time.perf_counter() - t0
    q.put({"wall": wall, "cpu": time.process_time() - cpu0, "rows": r.rows_in, "ordering": r.ordering,
           "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def validation_rate(raw: Path, tsd: dt.date, batch_rows: int) -> float:
    import pyarrow.parquet as pq

    from genco_data.build.coerce import coerce
    from genco_data.build.unique import IdSet
    from genco_data.build.validate import row_reasons, to_release_schema

    seen = IdSet()
    rows = 0
    t = 0.0
    for f in sorted((raw / "raw").glob("*.parquet")):
        for b in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
            t0 = time.perf_counter()
            codes = row_reasons(c := coerce(b, f.name), test_start_day=tsd, seen=seen)
            to_release_schema(c.table)
            t += time.perf_counter() - t0
            rows += b.num_rows
            assert not codes.any()
    return rows / t


def anchor_rate(raw: Path, n: int) -> tuple[float, float]:
    """(rows/s of to_pylist + model_validate, rows/s of model_validate alone) on the first n rows."""
    import pyarrow.parquet as pq

    from genco_data.format.records import ImpressionRow

    f = sorted((raw / "raw").glob("*.parquet"))[0]
    table = pq.read_table(f).slice(0, n)
    t0 = time.perf_counter()
    rows = table.to_pylist()
    t1 = time.perf_counter()
    for r in rows:
        ImpressionRow.model_validate(r)
    t2 = time.perf_counter()
    return len(rows) / (t2 - t0), len(rows) / (t2 - t1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--anchor-rows", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=500_000, help="rows per raw Parquet file")
    ap.add_argument("--batch-rows", type=int, default=65_536)
    ap.add_argument("--synth", action="store_true", help="use genco_data.synth instead of tests/factories")
    ap.add_argument("--workdir", default=None, help="keep data here (default: a temporary folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="genco-bench-"))
    try:
        t0 = time.perf_counter()
        tsd = make_raw(work / "src", args.rows, args.chunk, args.synth)
        gen_s = time.perf_counter() - t0
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(str(work / "src"), str(work / "release"), tsd.isoformat(), args.batch_rows, q))
        p.start()
        build = q.get()
        p.join()
        val = validation_rate(work / "src", tsd, args.batch_rows)
        anchor_all, anchor_validate = anchor_rate(work / "src", args.anchor_rows)
        rate = build["rows"] / build["wall"]
        per_cpu = build["rows"] / build["cpu"]
        res = {
            "rows": build["rows"], "generate_s": gen_s, "build_s": build["wall"], "build_cpu_s": build["cpu"],
            "ordering": build["ordering"], "build_rows_per_s": rate, "build_rows_per_cpu_s": per_cpu,
            "validation_rows_per_s": val, "anchor_rows_per_s": anchor_all, "anchor_validate_only_rows_per_s": anchor_validate,
            "ratio_build_vs_anchor": rate / anchor_all, "ratio_validation_vs_anchor": val / anchor_all,
            "peak_rss_mb": build["rss_mb"],
        }
        res["cpus"] = os.cpu_count()
        res["load_average_1m"] = os.getloadavg()[0]
        if args.json:
            print(json.dumps(res, indent=2))
            return
        print(f"rows                     {res['rows']:>14,}   (generated in {gen_s:.1f} s; ordering: {res['ordering']})")
        print(f"build, wall              {rate:>14,.0f} rows/s   ({build['wall']:.1f} s)")
        print(f"build, per CPU-second    {per_cpu:>14,.0f} rows/s   ({build['cpu']:.1f} CPU-s)")
        print(f"validation only          {val:>14,.0f} rows/s")
        print(f"anchor (pydantic/row)    {anchor_all:>14,.0f} rows/s   (model_validate alone {anchor_validate:,.0f}; {args.anchor_rows:,} rows)")
        print(f"ratio build / anchor     {res['ratio_build_vs_anchor']:>14.1f} x")
        print(f"ratio validation / anchor{res['ratio_validation_vs_anchor']:>14.1f} x")
        print(f"peak RSS of the build    {res['peak_rss_mb']:>14,.0f} MB")
        print(f"machine                  {res['cpus']} CPUs, load average {res['load_average_1m']:.1f} at the end")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
