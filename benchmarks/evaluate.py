"""Evaluator throughput: point metrics on aligned arrays (>= 10 M test rows/s is the target), beside its
anchor — a straightforward per-row Python loop of the paper's Algorithm 1 — measured in the same run; plus
an end-to-end ``Evaluator.evaluate`` of a Parquet predictions file on a written release.

    python benchmarks/evaluate.py                 # 5 M rows for the arrays, 1 M for end to end
    python benchmarks/evaluate.py --rows 2000000 --e2e-rows 200000 --anchor-rows 100000
    python benchmarks/evaluate.py --coverage 100   # interval coverage on the real simulator, 50 k-row logs

Prints one line per figure and the ratio to the anchor.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.evaluate import metrics as M
from genco_data.format.arrow import impressions_schema, predictions_schema
from genco_data.format.components import COMPONENTS, PAPER_AVG_CANDIDATES, PAPER_COVERAGE, PAPER_TRAIN_CTR
from genco_data.evaluate import Evaluator
from genco_data.format.records import FileEntry, Manifest, Source
from genco_data.release import MANIFEST_NAME

K = len(COMPONENTS)


def synthetic_log(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pools with the paper's Table-1 coverage and mean sizes, uniform shown, CTR 6.84 % -> n, shown [K, R], y, ad."""
    n = np.zeros((K, rows), np.int32)
    for j, c in enumerate(COMPONENTS):
        has = rng.random(rows) < PAPER_COVERAGE[c]
        n[j] = np.where(has, 1 + rng.poisson(PAPER_AVG_CANDIDATES[c] - 1, rows), 0)
    shown = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int16), np.int16(-1)).astype(np.int16)
    y = (rng.random(rows) < PAPER_TRAIN_CTR).astype(np.int8)
    ad = rng.integers(0, max(rows // 8, 1), rows)
    return n, shown, y, ad


def policy(n: np.ndarray, shown: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """choices [K, R]: half the cells copy the shown element, the rest uniform."""
    other = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int16), np.int16(-1)).astype(np.int16)
    return np.where(rng.random(n.shape) < 0.5, shown, other).astype(np.int16)


def point_metrics(log: M.UniformLog, choices: np.ndarray) -> dict:
    return M.estimates(M.sufficient_stats(log, M.match(log, choices)))


def anchor_algorithm1(n: list, shown: list, y: list, choices: list) -> list[float]:
    """The paper's Algorithm 1, one Python loop over rows per component (n, shown, choices: K lists of R)."""
    out = []
    for j in range(K):
        exposure = click = 0
        nj, sj, cj = n[j], shown[j], choices[j]
        for r in range(len(y)):
            if nj[r] == 0:
                continue
            if cj[r] == sj[r]:
                exposure += nj[r]
                click += nj[r] * y[r]
        out.append(click / exposure if exposure else float("nan"))
    return out


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _lists(offsets_n: np.ndarray, values: np.ndarray) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(offsets_n)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))


def write_release(root: Path, n: np.ndarray, shown: np.ndarray, y: np.ndarray, ad: np.ndarray) -> pa.Array:
    """A one-shard test split in the impressions schema, built column-wise (no per-row Python)."""
    R = y.shape[0]
    ids = pa.array(np.char.add("t", np.arange(R).astype(str)).astype(object), pa.string())
    cols: dict[str, pa.Array] = {
        "impression_id": ids,
        "day": pa.array(np.full(R, np.datetime64("2025-07-23"), "datetime64[D]"), pa.date32()),
        "logging_policy": pa.DictionaryArray.from_arrays(pa.array(np.zeros(R, np.int8)), pa.array(["uniform"])).cast(pa.string()),
        "user_id": pa.array(np.arange(R, dtype=np.int64)),
        "user_age": pa.nulls(R, pa.int8()),
        "user_gender": pa.nulls(R, pa.int8()),
        "ad_id": pa.array(ad.astype(np.int64)),
        "category": pa.nulls(R, pa.string()),
        "query_id": pa.nulls(R, pa.int64()),
        "query_segments": _lists(np.zeros(R, np.int64), np.zeros(0, np.int64)),
    }
    for j, c in enumerate(COMPONENTS):
        total = int(n[j].sum())
        cols[f"{c}_candidates"] = _lists(n[j], np.arange(total, dtype=np.int64))
        cols[f"{c}_exposed"] = pa.array(shown[j], pa.int16(), mask=shown[j] < 0)
        cols[f"{c}_propensity"] = pa.array(np.where(n[j] > 0, 1.0 / np.maximum(n[j], 1), 0).astype(np.float32), mask=n[j] == 0)
    cols["click"] = pa.array(y, pa.int8())
    table = pa.table(cols, schema=impressions_schema())
    rel = "data/impressions/test-00000-of-00001.parquet"
    (root / "data" / "impressions").mkdir(parents=True)
    pq.write_table(table, root / rel, compression="zstd")
    data = (root / rel).read_bytes()
    manifest = Manifest(
        dataset_version="0.0.1", created_by="benchmarks/evaluate.py", source=Source(kind="synthetic"), test_start_day=dt.date(2025, 7, 23),
        splits={"impressions": {"test": R}}, rows_in=R, rows_rejected=0,
        files=[FileEntry(path=rel, rows=R, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())],
    )
    (root / MANIFEST_NAME).write_text(manifest.model_dump_json(), encoding="utf-8")
    return ids


def coverage_study(logs: int, rows: int, seed: int) -> None:
    """Coverage of the reported 95 % intervals (score) and of value ± 1.96·se (delta) over ``logs`` fresh
    uniform logs of the same ``rows`` simulator requests, for a fixed policy (oracle on a random half of the
    cells, first slot elsewhere), against the matching truths from the real ``genco_data.synth`` world."""
    import pyarrow.compute as pc

    from genco_data.synth import SynthConfig, World, simulate

    with tempfile.TemporaryDirectory() as tmp:
        summary = simulate(SynthConfig(train_rows=0, test_rows=rows, seed=seed), Path(tmp), progress=False)
        req = pa.concat_tables([pq.read_table(p) for p in sorted(Path(tmp, "raw").glob("*.parquet"))]).combine_chunks()
        world = World.load(Path(tmp) / "world")
    n = np.stack([pc.list_value_length(req.column(f"{c}_candidates")).to_numpy() for c in COMPONENTS])  # [K, R]
    rng = np.random.default_rng(seed)
    opt = world.optimum(req)[0].T  # [K, R]
    policy = np.where(rng.random(n.shape) < 0.5, opt, np.where(n > 0, 0, -1)).astype(np.int16)
    ch = np.ascontiguousarray(policy.T, dtype=np.int64)
    truth = []
    for j in range(K):
        has = n[j] > 0
        truth.append(world.component_value(req.filter(pa.array(has)), ch[has], j, n_samples=64, seed=seed)[0])
    truth.append(world.policy_value(req, ch))
    truth = np.array(truth)
    cover = np.zeros((2, K + 1))
    matched = np.zeros(K + 1)
    for _ in range(logs):
        shown = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1)
        y = (rng.random(n.shape[1]) < world.true_ctr(req, shown.T)).astype(np.int8)
        log = M.UniformLog.build(n, shown, y, req.column("ad_id").to_numpy())
        m = M.match(log, policy)
        est = M.estimates(M.sufficient_stats(log, m))
        v, se = est["calibrated"][:, M.ALL], est["calibrated_se"][:, M.ALL]
        cover[0] += (est["calibrated_lo"][:, M.ALL] <= truth) & (truth <= est["calibrated_hi"][:, M.ALL])
        cover[1] += np.abs(v - truth) <= M.z_value(0.95) * se
        matched += m.count()
    names = [*COMPONENTS, "combination"]
    print(f"coverage of the calibrated-sCTR 95 % intervals over {logs} fresh uniform logs of {rows:,} simulator requests "
          f"(seed {seed}, test CTR {summary.get('test_ctr', float('nan')):.4f}):")
    print("  " + " ".join(f"{c:>20}" for c in names))
    print("  " + " ".join(f"{m / logs:>20,.0f}" for m in matched) + "   mean matched rows")
    print("  " + " ".join(f"{c / logs:>20.0%}" for c in cover[0]) + "   score interval (reported)")
    print("  " + " ".join(f"{c / logs:>20.0%}" for c in cover[1]) + "   delta: value +- 1.96 se")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of the aligned-array benchmark")
    ap.add_argument("--anchor-rows", type=int, default=200_000, help="rows the Python anchor loops over")
    ap.add_argument("--e2e-rows", type=int, default=1_000_000, help="rows of the end-to-end Parquet benchmark (0: skip)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--coverage", type=int, default=0, metavar="LOGS",
                    help="instead: interval coverage over LOGS fresh logs of the real simulator (needs genco_data.synth)")
    ap.add_argument("--coverage-rows", type=int, default=50_000)
    args = ap.parse_args(argv)
    if args.coverage:
        coverage_study(args.coverage, args.coverage_rows, args.seed)
        return 0
    rng = np.random.default_rng(args.seed)
    print(f"# evaluate benchmark: python {platform.python_version()}, numpy {np.__version__}, pyarrow {pa.__version__}, {platform.machine()}")

    n, shown, y, ad = synthetic_log(args.rows, rng)
    t = time.perf_counter()
    log = M.UniformLog.build(n, shown, y, ad)
    t_build = time.perf_counter() - t
    choices = policy(n, shown, rng)
    t_point = best_of(lambda: point_metrics(log, choices), args.repeats)
    t_nsctr = best_of(lambda: M.nsctr(log, M.match(log, choices)), args.repeats)
    fast = args.rows / t_point

    a = min(args.anchor_rows, args.rows)
    lists = [n[:, :a].tolist(), shown[:, :a].tolist(), y[:a].tolist(), choices[:, :a].tolist()]
    t_anchor = best_of(lambda: anchor_algorithm1(*lists), 1)
    slow = a / t_anchor
    # the two agree on the subset (same Algorithm 1)
    sub = M.UniformLog.build(n[:, :a], shown[:, :a], y[:a], ad[:a])
    got = M.estimates(M.sufficient_stats(sub, M.match(sub, choices[:, :a])))["calibrated"][:K, M.ALL]
    assert np.allclose(got, anchor_algorithm1(*lists), rtol=1e-12, equal_nan=True)

    print(f"point metrics (calibrated+plain+combination sCTR, lifts, Table-4 buckets, delta SEs, score CIs) on {args.rows:,} aligned rows: "
          f"{t_point * 1e3:.1f} ms = {fast / 1e6:.1f} M rows/s")
    print(f"anchor: per-row Python loop of Algorithm 1 (calibrated sCTR only, 6 components) on {a:,} rows: "
          f"{t_anchor * 1e3:.0f} ms = {slow / 1e6:.3f} M rows/s")
    print(f"ratio: {fast / slow:,.0f}x the anchor (target >= 10 M rows/s: {'met' if fast >= 10e6 else 'NOT met'})")
    print(f"NSCTR (per-ad groups, cluster SEs) on {args.rows:,} rows: {t_nsctr * 1e3:.1f} ms = {args.rows / t_nsctr / 1e6:.1f} M rows/s; "
          f"one-off test-log precompute: {t_build:.2f} s")

    if args.e2e_rows:
        R = args.e2e_rows
        n2, shown2, y2, ad2 = synthetic_log(R, rng)
        ch2 = policy(n2, shown2, rng)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "release"
            ids = write_release(root, n2, shown2, y2, ad2)
            perm = rng.permutation(R)  # shuffled rows: alignment by id is exercised
            cols = {"impression_id": ids.take(pa.array(perm))}
            for j, c in enumerate(COMPONENTS):
                cols[f"{c}_choice"] = pa.array(ch2[j, perm], pa.int16(), mask=ch2[j, perm] < 0)
            pred = Path(tmp) / "pred.parquet"
            pq.write_table(pa.table(cols, schema=predictions_schema(with_scores=False)), pred)
            ev = Evaluator(root, world=None)
            t = time.perf_counter()
            ev.split  # noqa: B018 - load the test split once (cached per Evaluator)
            t_load = time.perf_counter() - t
            t_eval = best_of(lambda: ev.evaluate(pred), args.repeats)
        print(f"end to end: Evaluator.evaluate(predictions.parquet, shuffled) on a {R:,}-row release: {t_eval * 1e3:.0f} ms "
              f"= {R / t_eval / 1e6:.2f} M rows/s (read + validate + align + every metric); test split load {t_load:.2f} s once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
