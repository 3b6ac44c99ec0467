"""How fast `genco` answers: `genco --version` and `genco --help` against the bare interpreter's start
(`python -c pass`), measured in the same run, as a ratio; and the card's drawing cost with a huge pool.

    python benchmarks/cli_start.py            # 7 repeats each, median wall seconds
    python benchmarks/cli_start.py --repeats 3

Target (issue #17): `genco --version` and `genco --help` < 0.5 s. The ratio to `python -c pass` is the fair
figure on a loaded machine (both pay the same interpreter start and the same load); the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(argv: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    anchor = _median_seconds([sys.executable, "-c", "pass"], args.repeats)
    print(f"anchor  python -c pass          {anchor:.3f} s")
    for label, argv in (("genco --version", ["--version"]), ("genco --help", ["--help"])):
        t = _median_seconds([sys.executable, "-m", "genco_data.cli", *argv], args.repeats)
        print(f"figure  {label:<22}  {t:.3f} s  = {t / anchor:.1f}x the bare interpreter  (target < 0.5 s)")


if __name__ == "__main__":
    main()
