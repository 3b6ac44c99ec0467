"""Simulator throughput beside a naive per-row Python generator of the same model (the anchor), in one run.

    python benchmarks/synth.py                      # 2M rows (+5 % test rows), anchor on 3000 rows
    python benchmarks/synth.py --rows 10000000      # the RAM check: peak RSS of a 10M-row simulation

Prints, each measured in this run:

* ``generate``: rows/s of the vectorized generator producing impressions-schema Arrow tables in memory
  (day pools, requests, production/uniform choices, true CTR, clicks, Arrow columns) — no Parquet;
* ``simulate``: rows/s of ``genco_data.synth.simulate`` end to end (world, calibration, zstd Parquet parts,
  world/), wall and per CPU-second, and its peak RSS, measured in a child process that does nothing else;
* ``anchor``: rows/s of a per-row Python loop drawing the same rows from the same world (bisect for ads and
  users, list filtering for the pools, math.exp softmax, ``pa.Table.from_pylist``);
* the ratio generate / anchor (both per CPU-second, so that a busy machine does not skew it).
"""
from __future__ import annotations

import argparse
import bisect
import math
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _simulate_child(rows: int, test_rows: int, out: str, q) -> None:
    from genco_data.synth import SynthConfig, simulate

    cfg = SynthConfig(train_rows=rows, test_rows=test_rows, seed=0)
    cpu0, t0 = time.process_time(), time.perf_counter()
    simulate(cfg, Path(out), progress=False)
    q.put({"wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0,
           "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def generate_only(rows: int, test_rows: int) -> dict:
    """The simulate loop without the Parquet writes: Arrow tables built and dropped."""
    import numpy as np

    from genco_data.synth import SynthConfig
    from genco_data.synth import catalog as C
    from genco_data.synth import logging as L
    from genco_data.synth import simulation as S
    from genco_data.synth.world import sigmoid

    cfg = SynthConfig(train_rows=rows, test_rows=test_rows, seed=0)
    world, cat = C.build(cfg)
    world = world._with_base(L.calibrate_base(world, cat, cfg))
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = 0
    for policy, total, days, offset in (("production", cfg.train_rows, cfg.train_days, 0), ("uniform", cfg.test_rows, cfg.test_days, cfg.train_days)):
        rng = np.random.default_rng(1)
        for d in range(days):
            lo, hi = -(-d * total // days), -(-(d + 1) * total // days)
            pools = L.day_pools(world, cat, offset + d)
            for s in range(lo, hi, cfg.batch_rows):
                n = min(cfg.batch_rows, hi - s)
                r = L.draw_rows(world, cat, cfg, pools, rng, n, uniform=policy == "uniform")
                click = rng.random(n) < sigmoid(world.base + r.logit)
                S.rows_table(world, cat, pools, r, 20_000, click, s, policy, 1)
                done += n
    return {"rows": done, "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0, "world": (world, cat, cfg)}


def anchor(world, cat, cfg, rows: int) -> dict:
    """Per-row Python: the same model, one impression at a time, then ``pa.Table.from_pylist``."""
    import pyarrow as pa

    from genco_data.format.arrow import impressions_schema
    from genco_data.format.components import COMPONENTS
    from genco_data.synth.world import CATEGORIES, PARENT

    a = world.arrays
    # a naive implementation would hold plain Python lists
    ad_cum, user_cum = cat.ad_cum.tolist(), cat.user_cum.tolist()
    ad_id, ad_cat, appeal, ad_vec = a["ad_id"].tolist(), a["ad_category"].tolist(), a["ad_appeal"].tolist(), a["ad_vec"].tolist()
    user_id, user_vec, taste = a["user_id"].tolist(), a["user_vec"].tolist(), a["user_taste"].tolist()
    age, gender = a["user_age"].tolist(), a["user_gender"].tolist()
    query_id, intent, qstart = a["query_id"].tolist(), a["query_intent"].tolist(), cat.query_start.tolist()
    segments = cat.segments.to_pylist()
    W, gamma = a["weights"].tolist(), a["synergy"].tolist()
    el = [
        dict(id=a[f"elem{j}_id"].tolist(), q=a[f"elem{j}_quality"].tolist(), s=a[f"elem{j}_style"].tolist(),
             prod=a[f"elem{j}_prod"].tolist(), birth=cat.birth[j].tolist(), death=cat.death[j].tolist(),
             start=cat.pool_start[j].tolist(), length=cat.pool_len[j].tolist(), elem=cat.slot_elem[j].tolist())
        for j in range(len(COMPONENTS))
    ]
    rho = world.params["user_ad_scale"] / 2.0
    rnd = random.Random(0)
    out = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(rows):
        day = i * cfg.train_days // rows
        ad = min(bisect.bisect_right(ad_cum, rnd.random()), len(ad_cum) - 1)
        user = min(bisect.bisect_right(user_cum, rnd.random()), len(user_cum) - 1)
        c = ad_cat[ad]
        q = -1
        if rnd.random() < cfg.query_rate and qstart[c + 1] > qstart[c]:
            q = qstart[c] + int(rnd.random() * (qstart[c + 1] - qstart[c]))
        t = [taste[user][k] + (intent[q][k] if q >= 0 else 0.0) for k in range(2)]
        logit = world.base + appeal[ad] + rho * sum(x * y for x, y in zip(user_vec[user], ad_vec[ad]))
        row = {"impression_id": f"{i:016x}", "day": None, "logging_policy": "production", "user_id": user_id[user],
               "user_age": age[user], "user_gender": gender[user], "ad_id": ad_id[ad], "category": CATEGORIES[c],
               "query_id": query_id[q] if q >= 0 else None, "query_segments": segments[q] if q >= 0 else []}
        shown = [None] * len(COMPONENTS)
        for j, comp in enumerate(COMPONENTS):
            e = el[j]
            # slots alive today, then the catalog element each shows
            pool = [e["elem"][k] for k in range(e["start"][ad], e["start"][ad] + e["length"][ad]) if e["birth"][k] <= day < e["death"][k]]
            row[f"{comp}_candidates"] = [e["id"][k] for k in pool]
            if not pool:
                row[f"{comp}_exposed"] = row[f"{comp}_propensity"] = None
                continue
            top = max(e["prod"][k] for k in pool)
            w = [math.exp(e["prod"][k] - top) for k in pool]
            tot = sum(w)
            u, acc, pos = rnd.random() * tot, 0.0, len(pool) - 1
            for p_i, wk in enumerate(w):
                acc += wk
                if u < acc:
                    pos = p_i
                    break
            k = pool[pos]
            shown[j] = k
            row[f"{comp}_exposed"], row[f"{comp}_propensity"] = pos, w[pos] / tot
            logit += W[c][j] * (e["q"][k] + t[0] * e["s"][k][0] + t[1] * e["s"][k][1])
        for j, p in enumerate(PARENT):
            if p >= 0 and shown[j] is not None and shown[p] is not None:
                sj, sp = el[j]["s"][shown[j]], el[p]["s"][shown[p]]
                logit += gamma[j] * (sj[0] * sp[0] + sj[1] * sp[1])
        row["click"] = int(rnd.random() < 1.0 / (1.0 + math.exp(-logit)))
        row["day"] = cfg.start_day
        out.append(row)
    pa.Table.from_pylist(out, schema=impressions_schema())
    return {"rows": rows, "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000, help="train rows (test rows = 5 %% more)")
    ap.add_argument("--anchor-rows", type=int, default=3_000)
    ap.add_argument("--skip-simulate", action="store_true", help="only generate + anchor (no Parquet, no child)")
    args = ap.parse_args()
    test_rows = args.rows // 20
    total = args.rows + test_rows
    print(f"genco synth benchmark: {args.rows:,} train + {test_rows:,} test rows; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    if not args.skip_simulate:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        with tempfile.TemporaryDirectory() as tmp:
            p = ctx.Process(target=_simulate_child, args=(args.rows, test_rows, tmp, q))
            p.start()
            sim = q.get()
            p.join()
            size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        print(f"simulate  : {total / sim['wall']:>12,.0f} rows/s wall ({sim['wall']:.1f} s), {total / sim['cpu']:>12,.0f} rows per CPU-s; "
              f"peak RSS {sim['rss_mb']:,.0f} MB; {size / 1e6:,.0f} MB on disk")

    gen = generate_only(args.rows, test_rows)
    gen_cpu = gen["rows"] / gen["cpu"]
    print(f"generate  : {gen['rows'] / gen['wall']:>12,.0f} rows/s wall ({gen['wall']:.1f} s), {gen_cpu:>12,.0f} rows per CPU-s (Arrow tables, no Parquet)")
    world, cat, cfg = gen["world"]
    anc = anchor(world, cat, cfg, args.anchor_rows)
    anc_cpu = anc["rows"] / anc["cpu"]
    print(f"anchor    : {anc['rows'] / anc['wall']:>12,.0f} rows/s wall ({anc['wall']:.1f} s), {anc_cpu:>12,.0f} rows per CPU-s (per-row Python, {anc['rows']:,} rows)")
    print(f"ratio     : generate / anchor = {gen_cpu / anc_cpu:,.0f}x (per CPU-second)")


if __name__ == "__main__":
    main()
