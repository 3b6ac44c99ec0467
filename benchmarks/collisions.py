"""Hash collisions of the default id tables: the arithmetic at the paper's sizes, and measured on a release.

    python benchmarks/collisions.py                    # simulates the default release (SynthConfig()) in a temp folder
    python benchmarks/collisions.py --release PATH     # an existing release (its train split and manifest)
    python benchmarks/collisions.py --factor 2         # tables of 2 buckets per distinct id

Arithmetic (``genco_data.load.hashing.expected_collisions``): ``n`` distinct ids hashed into ``K`` buckets, an id
shares its bucket with probability ``1 - (1 - 1/K)**(n-1)`` and ``K (1 - (1 - 1/K)**n)`` buckets are used; the
paper sizes each table by its distinct ids (K = n, Table 1: 230 M / 140 M / 15 M / 300 M / 70 M / 320 M element ids).
Measured: the train split's distinct ids of each table hashed by the default vocabularies
(``Vocabularies.for_release``: K = the manifest's count x factor), the share of ids sharing a bucket, the share
of buckets used, and the share of the split's id occurrences (candidate slots, rows) that land in a shared
bucket — what a model sees. The anchor of each measured figure is the arithmetic for the same n and K.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genco_data.format.components import COMPONENTS, candidates_col  # noqa: E402
from genco_data.load import Vocabularies, parquet_files  # noqa: E402
from genco_data.load.hashing import expected_collisions, hash_buckets  # noqa: E402

#: Table 1 of the paper: distinct ids per component in the train split.
PAPER_DISTINCT = {"title": 230e6, "image": 140e6, "marketing": 15e6, "highlight": 300e6, "attribute": 70e6, "structure_attribute": 320e6}


def measure(release: Path, factor: float) -> dict[str, dict]:
    vocabs = Vocabularies.for_release(release, factor=factor)
    files = parquet_files(release, "train")
    out = {}
    for name in (*COMPONENTS, "user_id", "ad_id", "query_id", "query_segments"):
        col = candidates_col(name) if name in COMPONENTS else name
        arr = pq.read_table(files, columns=[col]).column(col).combine_chunks()
        if name in COMPONENTS or name == "query_segments":
            arr = pc.list_flatten(arr)
        ids = arr.drop_null().to_numpy(zero_copy_only=False).astype(np.int64)
        uniq, counts = np.unique(ids, return_counts=True)
        k = vocabs.size(name) - 2
        rows = hash_buckets(uniq, vocabs._salts[name], k)
        _, inv, per_bucket = np.unique(rows, return_inverse=True, return_counts=True)
        shared = per_bucket[inv] > 1
        want = expected_collisions(len(uniq), k)
        out[name] = {"ids": int(len(uniq)), "buckets": k, "size_from": vocabs.size_sources.get(name),
                     "shared_id_share": float(shared.mean()) if len(uniq) else 0.0, "expected_shared_id_share": want["shared_id_share"],
                     "buckets_used_share": len(per_bucket) / k, "expected_buckets_used_share": want["buckets_used"] / k,
                     "occurrences_in_shared_buckets": float(counts[shared].sum() / max(1, counts.sum()))}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", type=Path, default=None)
    p.add_argument("--factor", type=float, default=1.0, help="buckets per distinct id (default 1, the paper's sizing)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    paper = {c: expected_collisions(int(n), int(args.factor * n)) for c, n in PAPER_DISTINCT.items()}
    with tempfile.TemporaryDirectory() as tmp:
        release = args.release
        if release is None:
            from genco_data import BuildConfig, build_release
            from genco_data.synth import SynthConfig, simulate

            summary = simulate(SynthConfig(), Path(tmp) / "raw", progress=False)
            release = Path(tmp) / "rel"
            build_release(BuildConfig(sources=[Path(tmp) / "raw"], out=release, version="1.0.0",
                                      test_start_day=dt.date.fromisoformat(summary["test_start_day"])), progress=False)
        measured = measure(release, args.factor)
    if args.json:
        print(json.dumps({"factor": args.factor, "paper": paper, "measured": measured}, indent=2))
        return 0
    print(f"paper sizes (Table 1), K = {args.factor:g} x n:")
    for c, r in paper.items():
        print(f"  {c:<20} n = {r['ids'] / 1e6:5.0f} M   ids sharing a bucket {100 * r['shared_id_share']:6.2f} %   "
              f"buckets used {100 * r['buckets_used'] / r['buckets']:6.2f} %")
    print(f"measured on {'the default release' if args.release is None else args.release} (train split), K from the manifest x {args.factor:g}:")
    print(f"  {'table':<20}{'ids':>9}{'buckets':>10}  {'sharing (expected)':>20}  {'used (expected)':>17}  {'occurrences shared':>19}")
    for name, r in measured.items():
        print(f"  {name:<20}{r['ids']:>9,}{r['buckets']:>10,}  {100 * r['shared_id_share']:>8.1f} % ({100 * r['expected_shared_id_share']:4.1f} %)"
              f"  {100 * r['buckets_used_share']:>6.1f} % ({100 * r['expected_buckets_used_share']:4.1f} %)"
              f"  {100 * r['occurrences_in_shared_buckets']:>17.1f} %  [{r['size_from']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
