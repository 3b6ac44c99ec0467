"""Table 1 of a simulated release beside the paper's (the anchor), by the independent computation of
:mod:`genco_data.synth.table1` over the release's train shards.

    python benchmarks/table1.py                                   # the 300k-row default release (issue 15's check)
    python benchmarks/table1.py --rows 3000000 --preset default   # another size: the rows per ad do not change
    python benchmarks/table1.py --release path/to/release         # an existing release

Prints, per component, the four rows (element ids per ad, coverage of ads, average candidates, exposures per
candidate per day) with the paper's figure and the relative error (points for coverage), ``!`` where a figure is
outside the simulator's tolerance, then the per-row readings; exits 1 when any figure is out of tolerance.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from genco_data.synth import SynthConfig, simulate
from genco_data.synth.config import PRESETS
from genco_data.synth.table1 import check, format_check, table1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", type=Path, default=None, help="an existing release (default: simulate and build one)")
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--rows", type=int, default=300_000, help="train rows of the simulated release")
    ap.add_argument("--test-rows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        release = args.release
        if release is None:
            cfg = SynthConfig.with_settings([], args.preset, train_rows=args.rows, test_rows=args.test_rows, seed=args.seed)
            t0 = time.perf_counter()
            simulate(cfg, Path(tmp) / "raw", progress=False)
            subprocess.run([sys.executable, "-m", "genco_data.cli", "build", str(Path(tmp) / "raw"), "--out", str(Path(tmp) / "rel"),
                            "--version", "1.0.0", "--quiet"], check=True, stdout=subprocess.DEVNULL)
            release = Path(tmp) / "rel"
            print(f"{args.preset} world, seed {args.seed}: simulated and built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        files = sorted((release / "data" / "impressions").glob("train-*.parquet"))
        t0 = time.perf_counter()
        stats = table1(files, policy=None)
        seconds = time.perf_counter() - t0
    res = check(stats)
    ok = all(r["ok"] for cells in res.values() for r in cells.values())
    if args.json:
        print(json.dumps({"stats": stats, "check": res, "ok": ok, "seconds": seconds}, indent=2))
    else:
        print(format_check(stats))
        print(f"{'all four rows within tolerance' if ok else 'OUT OF TOLERANCE (!)'}; computed in {seconds:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
