"""Padded batches per second from a release on disk, beside two Python anchors, in one run, on one core.

    python benchmarks/loader.py                       # writes 200k Table-1-shaped rows into a temp release
    python benchmarks/loader.py --rows 400000 --json
    python benchmarks/loader.py --release PATH        # an existing release folder (train split)
    python benchmarks/loader.py --synth               # genco_data.synth + genco_data.build make the release

Every figure is rows/s of finished :class:`genco_data.load.Batch` objects (or, for the anchors, the
same tensors built by a straightforward Python collate), consumed and dropped as a training loop would.
torch and pyarrow are limited to one thread (the numpy operations used are single-threaded). Measured in the
same process over the same rows:

- ``anchor: decode``     pyarrow decoding the same columns of the same row groups (the cold path's anchor:
                         target ours cold >= 0.6x of it, in CPU seconds, interleaved passes of the same run).
- ``ours cold``          StreamingDataset over the Parquet shards: decode + validate + hash/lookup + pad, with the
                         default hashed vocabularies (sized by the manifest: nothing read before the first
                         batch; padded by the compiled one-pass kernels of ``genco_data.load.kernels``), the
                         same vocabularies through the numpy padding path (``pad_engine("numpy")``, the
                         reference), and exact vocabularies (built by one pass, whose cost is printed; numpy path).
                         The kernels' compile / cache-load time is paid before timing and printed.
- ``ours cache 1st``     the same with ``cache_dir``, first epoch (pads and writes the padded cache).
- ``ours cache``         later epochs with ``cache_dir`` (copies out of the memory-mapped padded cache).
- ``HF Dataset``         ``loader(datasets.Dataset)`` unshuffled and ``shuffle=True`` (blocks + buffer; target <= 2x),
                         and a uniform permutation through ``ShardedBatchSampler`` for comparison.
- ``anchor (a)``         HF ``datasets`` ``with_format("torch")`` rows + a Python padding collate.
- ``anchor (b)``         pyarrow ``to_pylist()`` + the same Python padding.
- ``memcpy``             copying the padded bytes of a batch (the ceiling).

The anchors run on the first ``--anchor-rows`` rows only (they are ~100x slower); their rate is reported
as measured on that subset. Each figure is the best of ``--repeats`` passes, as wall-clock rows/s and as
rows per CPU-second of this process (``time.process_time``), the steadier figure on a shared machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from genco_data import load as td  # noqa: E402
from genco_data.format.arrow import impressions_schema  # noqa: E402
from genco_data.load.padding import pad_engine  # noqa: E402
from genco_data.format.components import (  # noqa: E402
    COMPONENTS,
    PAD_TO,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    candidates_col,
    exposed_col,
    propensity_col,
)

ROWS_PER_SHARD = 100_000
ROW_GROUP_ROWS = 100_000  # the builder's default


# ---------------------------------------------------------------------------------------------
# Data: Table-1-shaped rows, generated with numpy (no per-row Python)
# ---------------------------------------------------------------------------------------------
def table1_rows(n: int, seed: int, first: int, n_ads: int = 40_000, n_users: int = 300_000) -> pa.Table:
    """``n`` rows whose pools follow Table 1: coverage and mean pool size per component (pools are per ad,
    ads Zipf-popular, sizes 1 + Poisson(mean - 1), so a few structure_attribute/highlight pools exceed 15)."""
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(12345)  # the same ads / users in every chunk
    ad = np.minimum(rng.zipf(1.2, n) - 1, n_ads - 1)
    cols: dict[str, pa.Array] = {
        "impression_id": pa.array(np.char.add("imp-", np.arange(first, first + n).astype(str))),
        "day": pa.array(np.full(n, 19700 + first // 50_000, np.int32)).cast(pa.date32()),
        "logging_policy": pa.array(np.full(n, "production")),
        "user_id": pa.array(world.integers(0, 2**62, n_users)[rng.integers(0, n_users, n)]),
        "user_age": pa.array(rng.integers(0, 7, n).astype(np.int8), mask=rng.random(n) < 0.1),
        "user_gender": pa.array(rng.integers(0, 3, n).astype(np.int8), mask=rng.random(n) < 0.1),
        "ad_id": pa.array(world.integers(0, 2**62, n_ads)[ad]),
        "category": pa.array(np.array(["phone", "clothing", "food", "books", "beauty", "sports", "home", "toys"])[ad % 8]),
        "query_id": pa.array(world.integers(0, 2**62, 80_000)[rng.integers(0, 80_000, n)], mask=rng.random(n) < 0.3),
    }
    ns = rng.integers(0, 6, n)
    seg_ids = world.integers(0, 2**62, 30_000)
    cols["query_segments"] = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(ns)]).astype(np.int32)), pa.array(seg_ids[rng.integers(0, 30_000, ns.sum())])
    )
    for c in COMPONENTS:
        size = np.where(world.random(n_ads) < PAPER_COVERAGE[c], 1 + world.poisson(PAPER_AVG_CANDIDATES[c] - 1, n_ads), 0)
        pool_offs = np.concatenate([[0], np.cumsum(size)])
        pool_ids = world.integers(0, 2**62, pool_offs[-1])
        k = size[ad]
        offs = np.concatenate([[0], np.cumsum(k)])
        row = np.repeat(np.arange(n), k)
        vals = pool_ids[pool_offs[ad][row] + np.arange(offs[-1]) - offs[:-1][row]]
        cols[candidates_col(c)] = pa.ListArray.from_arrays(pa.array(offs.astype(np.int32)), pa.array(vals))
        cols[exposed_col(c)] = pa.array((rng.random(n) * np.maximum(k, 1)).astype(np.int16), mask=k == 0)
        cols[propensity_col(c)] = pa.array((1.0 / np.maximum(k, 1)).astype(np.float32), mask=k == 0)
    cols["click"] = pa.array((rng.random(n) < 0.0684).astype(np.int8))
    return pa.table(cols, schema=impressions_schema())


def write_release(root: Path, rows: int) -> Path:
    """A release folder (train split only) written like the builder: zstd, content-defined chunking,
    page index, row groups of 100k rows, shards of 100k rows."""
    from genco_data.format.records import FileEntry, Manifest, Source
    from genco_data.release import MANIFEST_NAME, shard_name

    count = -(-rows // ROWS_PER_SHARD)
    files = []
    for k in range(count):
        n = min(ROWS_PER_SHARD, rows - k * ROWS_PER_SHARD)
        rel = f"data/impressions/{shard_name('train', k, count)}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table1_rows(n, seed=k, first=k * ROWS_PER_SHARD), path, compression="zstd",
                       use_content_defined_chunking=True, write_page_index=True, row_group_size=ROW_GROUP_ROWS)
        data = path.read_bytes()
        files.append(FileEntry(path=rel, rows=n, bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    manifest = Manifest(dataset_version="0.0.1", created_by="benchmarks/loader.py", source=Source(kind="synthetic"),
                        test_start_day=dt.date(2030, 1, 1), splits={"impressions": {"train": rows}},
                        rows_in=rows, rows_rejected=0, files=files)
    (root / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return root


def synth_release(root: Path, rows: int) -> Path:
    from genco_data import BuildConfig, build_release
    from genco_data.synth import SynthConfig, simulate

    summary = simulate(SynthConfig(train_rows=rows, test_rows=max(1000, rows // 10), seed=0), root / "raw", progress=False)
    out = root / "release"
    build_release(BuildConfig(sources=[root / "raw"], out=out, version="0.0.1",
                              test_start_day=dt.date.fromisoformat(summary["test_start_day"])), progress=False)
    return out


# ---------------------------------------------------------------------------------------------
# The anchors' straightforward Python padding (same truncation rule and vocabulary)
# ---------------------------------------------------------------------------------------------
class PyVocab:
    def __init__(self, v: td.Vocabularies) -> None:
        self.maps = {n: {int(x): i + td.FIRST_INDEX for i, x in enumerate(k)} for n, k in v.keys.items()}
        self.cats = {c: i + td.FIRST_INDEX for i, c in enumerate(v.categories)}

    def get(self, name: str, x) -> int:
        return 0 if x is None else self.maps[name].get(int(x), td.OOV_INDEX)


def _int(x) -> int | None:
    """None for a null (HF's torch format turns a null int into NaN), else the int."""
    if x is None:
        return None
    f = float(x)
    return None if f != f else int(x)


def python_pad(rows: list[dict], pv: PyVocab) -> dict[str, torch.Tensor]:
    B, S = len(rows), td.SEGMENTS_PAD_TO
    cand = [[[0] * PAD_TO for _ in COMPONENTS] for _ in range(B)]
    orig = [[[-1] * PAD_TO for _ in COMPONENTS] for _ in range(B)]
    exposed, ncand, prop = [[-1] * 6 for _ in range(B)], [[0] * 6 for _ in range(B)], [[0.0] * 6 for _ in range(B)]
    segs, ctx = [[0] * S for _ in range(B)], {k: [0] * B for k in ("user_id", "ad_id", "query_id", "user_age", "user_gender", "category")}
    click = [0.0] * B
    for b, r in enumerate(rows):
        for ci, c in enumerate(COMPONENTS):
            pool = r[candidates_col(c)]
            pool = pool.tolist() if hasattr(pool, "tolist") else pool
            e = _int(r[exposed_col(c)])
            n = len(pool)
            ncand[b][ci] = n
            if not n:
                continue
            keep = list(range(min(n, PAD_TO))) if (n <= PAD_TO or e < PAD_TO) else list(range(PAD_TO - 1)) + [e]
            for s, k in enumerate(keep):
                cand[b][ci][s] = pv.get(c, pool[k])
                orig[b][ci][s] = k
            exposed[b][ci] = keep.index(e)
            prop[b][ci] = float(r[propensity_col(c)])
        q = r["query_segments"]
        q = q.tolist() if hasattr(q, "tolist") else q
        for s, x in enumerate(q[:S]):
            segs[b][s] = pv.get("query_segments", x)
        for k in ("user_id", "ad_id", "query_id", "user_age", "user_gender"):
            ctx[k][b] = pv.get(k, _int(r[k]))
        ctx["category"][b] = 0 if r["category"] is None else pv.cats.get(r["category"], 1)
        click[b] = float(r["click"])
    cand_t = torch.tensor(cand, dtype=torch.int64)
    out = {"candidates": cand_t, "mask": cand_t != 0, "original_index": torch.tensor(orig, dtype=torch.int16),
           "exposed": torch.tensor(exposed), "n_candidates": torch.tensor(ncand), "propensity": torch.tensor(prop),
           "click": torch.tensor(click), "query_segments": torch.tensor(segs)}
    out.update({k: torch.tensor(v) for k, v in ctx.items()})
    return out


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def timed(fn, repeats: int) -> dict[str, float]:
    """Rows/s of ``fn() -> rows`` over ``repeats`` passes: best wall, median wall, best CPU time
    (``time.process_time``: the figure to trust on a shared machine)."""
    wall, cpu, rows = [], [], 0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rows = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"rows": rows, "rows_per_s": rows / min(wall), "median_rows_per_s": rows / statistics.median(wall),
            "rows_per_cpu_s": rows / max(min(cpu), 1e-9)}


def consume(batches) -> int:
    n = 0
    for b in batches:
        n += len(b)
    return n


def decode_pass(files) -> int:
    """The anchor of the cold path: pyarrow decoding the same columns of the same row groups, one thread."""
    n = 0
    for f in files:
        pf = pq.ParquetFile(f, memory_map=True)
        for g in range(pf.num_row_groups):
            n += pf.read_row_group(g, columns=list(td.REQUIRED_COLUMNS), use_threads=False).num_rows
    return n


def interleaved(fns: dict, repeats: int) -> dict[str, dict[str, float]]:
    """``timed`` for several functions, their passes interleaved (A B A B ...) so that a load change on a shared
    machine hits all of them alike; best CPU and wall time of each."""
    best = {k: {"wall": float("inf"), "cpu": float("inf"), "walls": []} for k in fns}
    rows = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            rows[k] = fn()
            w, c = time.perf_counter() - t0, time.process_time() - c0
            best[k]["wall"], best[k]["cpu"] = min(best[k]["wall"], w), min(best[k]["cpu"], c)
            best[k]["walls"].append(w)
    return {k: {"rows": rows[k], "rows_per_s": rows[k] / v["wall"], "median_rows_per_s": rows[k] / statistics.median(v["walls"]),
                "rows_per_cpu_s": rows[k] / max(v["cpu"], 1e-9)} for k, v in best.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", type=Path, help="existing release folder (default: write one into a temp dir)")
    ap.add_argument("--rows", type=int, default=200_000, help="rows to write when no --release is given")
    ap.add_argument("--synth", action="store_true", help="make the release with genco_data.synth + build")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--anchor-rows", type=int, default=20_000, help="rows the Python anchors process")
    ap.add_argument("--no-python-anchors", action="store_true", help="skip the (slow) per-row Python anchors")
    ap.add_argument("--cold-only", action="store_true", help="only the cold path against decode (skip cache, HF, anchors)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    load0 = os.getloadavg()[0]
    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with tempfile.TemporaryDirectory(prefix="genco-loader-bench-") as tmp:
        tmp = Path(tmp)
        if args.release is not None:
            release = args.release
        elif args.synth:
            release = synth_release(tmp, args.rows)
        else:
            release = write_release(tmp / "release", args.rows)
        files = td.parquet_files(release, "train")
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        disk = sum(f.stat().st_size for f in files)
        from genco_data.release import Release

        Release.open(release), td.Vocabularies  # imports (pyarrow.compute, ~0.5 s once per process), paid by both kinds alike
        c0 = time.process_time()
        hashed = td.Vocabularies.for_release(release)  # the default: sized by the manifest, nothing read
        hashed_s = time.process_time() - c0
        c0 = time.process_time()
        vocabs = td.Vocabularies.build(release)  # exact: one pass over the train split
        exact_s = time.process_time() - c0
        bs, R = args.batch_size, args.repeats
        res: dict[str, dict] = {}

        def record(name: str, fn, repeats: int = R) -> None:
            res[name] = timed(fn, repeats)

        cold = td.StreamingDataset(release, hashed, batch_size=bs)
        cold_exact = td.StreamingDataset(release, vocabs, batch_size=bs)
        t0 = time.perf_counter()
        td.pad_table(pq.ParquetFile(files[0]).read_row_group(0).slice(0, 64), hashed)  # the kernels: compile or load the cache
        kernel_first_s = time.perf_counter() - t0
        consume(cold), consume(cold_exact), decode_pass(files)  # warm the page cache and the lookup tables
        def numpy_padding() -> int:
            with pad_engine("numpy"):  # the same-run reference: the numpy padding path, same hashed vocabularies
                return consume(cold)

        with pad_engine("numpy"):
            consume(cold)
        res.update(interleaved({"anchor: pyarrow decode of the same columns": lambda: decode_pass(files),
                                "ours cold (Parquet -> Batch, hashed vocab)": lambda: consume(cold),
                                "ours cold, hashed, numpy padding (reference)": numpy_padding,
                                "ours cold, exact vocab": lambda: consume(cold_exact)}, R))
        if not args.cold_only:
            ds_shuf = td.StreamingDataset(release, hashed, batch_size=bs, shuffle=True)
            record("ours cold, shuffled", lambda: consume(ds_shuf))
            cache = td.StreamingDataset(release, hashed, batch_size=bs, cache_dir=tmp / "cache")
            record("ours cache 1st epoch (pads + writes)", lambda: consume(cache), repeats=1)
            record("ours cache (memory-mapped padded)", lambda: consume(cache))
            cache_shuf = td.StreamingDataset(release, hashed, batch_size=bs, cache_dir=tmp / "cache", shuffle=True)
            record("ours cache, shuffled", lambda: consume(cache_shuf))

            import datasets

            hf_full = datasets.Dataset.from_parquet([str(f) for f in files], cache_dir=str(tmp / "hf"))
            res.update(interleaved({"HF Dataset: loader(ds)": lambda: consume(td.loader(hf_full, batch_size=bs, vocabs=hashed)),
                                    "HF Dataset: loader(ds, shuffle=True)": lambda: consume(td.loader(hf_full, batch_size=bs, vocabs=hashed, shuffle=True))}, R))
            mds = td.MapDataset(release, hashed)
            sampler = lambda: td.ShardedBatchSampler(len(mds), bs, shuffle=True)  # noqa: E731 - a uniform permutation
            record("map-style, uniform random batches (sampler)", lambda: consume(
                torch.utils.data.DataLoader(mds, batch_sampler=sampler(), collate_fn=lambda b: b)))

            na = min(args.anchor_rows, rows)
            if not args.no_python_anchors:  # anchors, on the first anchor-rows rows
                pv = PyVocab(vocabs)
                hf = hf_full.select(range(na))
                hf = hf.select_columns(list(td.REQUIRED_COLUMNS))  # the torch formatter cannot tensorize dates
                hf_torch = hf.with_format("torch")
                hf_loader = torch.utils.data.DataLoader(hf_torch, batch_size=bs, collate_fn=lambda r: python_pad(r, pv))
                record("anchor (a) HF with_format(torch) + Python collate", lambda: consume(x["click"] for x in hf_loader), repeats=1)

                def anchor_b() -> int:
                    n = 0
                    for f in files:
                        for rb in pq.ParquetFile(f).iter_batches(batch_size=bs, use_threads=False):
                            if n >= na:
                                return n
                            n += len(python_pad(rb.to_pylist(), pv)["click"])
                    return n

                record("anchor (b) pyarrow to_pylist + Python padding", anchor_b, repeats=1)

            first = td.pad_table(pq.ParquetFile(files[0]).read_row_group(0).slice(0, 16384), hashed)
            arrays = [t.numpy() for t in first.tensors().values()]
            row_bytes = sum(a.nbytes for a in arrays) / len(first)

            def memcpy() -> int:
                n = 0
                while n < rows:
                    for a in arrays:
                        np.array(a)  # a copy of the padded bytes
                    n += len(first)
                return n

            record("memcpy of the padded bytes", memcpy)
        else:
            na, row_bytes = 0, float("nan")

    dec = res["anchor: pyarrow decode of the same columns"]
    for v in res.values():
        v["x_decode_cpu"] = v["rows_per_cpu_s"] / dec["rows_per_cpu_s"]
    cold_ratio = res["ours cold (Parquet -> Batch, hashed vocab)"]["x_decode_cpu"]
    hf_plain, hf_shuf = res.get("HF Dataset: loader(ds)"), res.get("HF Dataset: loader(ds, shuffle=True)")
    shuffle_cost = hf_plain["rows_per_cpu_s"] / hf_shuf["rows_per_cpu_s"] if hf_plain and hf_shuf else float("nan")
    load = os.getloadavg()
    meta = {"rows": rows, "parquet_bytes": disk, "padded_bytes_per_row": row_bytes, "batch_size": bs,
            "vocab_cpu_s": {"hashed (default, from the manifest)": hashed_s, "exact (one pass)": exact_s},
            "kernels_first_call_s": kernel_first_s, "hashed_sizes": hashed.sizes(), "exact_sizes": vocabs.sizes(), "threads": 1, "repeats": R, "anchor_rows": na,
            "cold_x_decode_cpu": cold_ratio, "hf_shuffle_cost_cpu": shuffle_cost,
            "release": str(args.release) if args.release else ("synth" if args.synth else "numpy Table-1 generator"),
            "load_average_1min_at_start_end": [load0, load[0]], "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps({"meta": meta, "results": res}, indent=2))
        return 0
    print(f"{rows:,} train rows, {disk / 1e6:.1f} MB Parquet, {row_bytes:.0f} padded bytes/row, batch {bs}, "
          f"1 thread, best of {R}; load average {load0:.1f} -> {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"vocabularies before the first batch: hashed (default) {hashed_s * 1e3:.1f} ms CPU, exact {exact_s:.2f} s CPU; "
          f"padding kernels' first call {kernel_first_s:.2f} s wall (numba: compiles once, then loads its cache)")
    print(f"{'':52s} {'rows/s wall':>12s} {'median':>10s} {'rows/CPU-s':>11s} {'x decode CPU':>13s}")
    for name, v in res.items():
        print(f"{name:52s} {v['rows_per_s']:12,.0f} {v['median_rows_per_s']:10,.0f} {v['rows_per_cpu_s']:11,.0f} {v['x_decode_cpu']:12.2f}x")
    ref_ratio = res["ours cold, hashed, numpy padding (reference)"]["x_decode_cpu"]
    print(f"cold loader / pyarrow decode (CPU, same run): {cold_ratio:.2f}x (target >= 0.6: {'met' if cold_ratio >= 0.6 else 'NOT met'}); "
          f"numpy padding path {ref_ratio:.2f}x")
    if hf_plain:
        print(f"HF Dataset shuffled costs {shuffle_cost:.2f}x unshuffled (CPU; target <= 2: {'met' if shuffle_cost <= 2 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
