"""Small leaderboard factories: a simulated release, predictions files of simple policies, submission folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data import __version__
from genco_data.format.arrow import predictions_schema
from genco_data.format.components import COMPONENTS, candidates_col, choice_col
from genco_data.fsutil import sha256_file
from genco_data.pipeline import BuildConfig, build_release
from genco_data.release import Release


def simulated_release(root: Path, train_rows: int = 3000, test_rows: int = 2000, seed: int = 3) -> Path:
    from genco_data.synth import SynthConfig, simulate

    simulate(SynthConfig(train_rows=train_rows, test_rows=test_rows, seed=seed), root / "raw", progress=False)
    out = root / "release"
    build_release(BuildConfig(sources=[root / "raw"], out=out, version="1.0.0"), progress=False)
    return out


def pool_table(release: Path) -> pa.Table:
    files = Release.open(release).data_files("impressions", "test")
    return pa.concat_tables(pq.read_table(f, columns=["impression_id"] + [candidates_col(c) for c in COMPONENTS]) for f in files)


def write_predictions(release: Path, path: Path, seed: int, policy: str = "random") -> Path:
    """Choices of a uniform-random (seeded) or 'first element' policy, in the predictions contract."""
    table = pool_table(release)
    rng = np.random.default_rng(seed)
    cols = {"impression_id": table["impression_id"]}
    for c in COMPONENTS:
        n = pc.list_value_length(table[candidates_col(c)]).to_numpy(zero_copy_only=False).astype(np.int64)
        pick = np.floor(rng.random(len(n)) * np.maximum(n, 1)).astype(np.int16) if policy == "random" else np.zeros(len(n), np.int16)
        cols[choice_col(c)] = pa.array(pick, pa.int16(), mask=n == 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols, schema=predictions_schema(with_scores=False)), path)
    return path


def make_submission(release: Path, folder: Path, seeds=(0, 1, 2, 3, 4), policy: str = "random", **over) -> Path:
    """``folder/submission.json`` + one predictions file per seed; ``over`` replaces submission fields."""
    folder.mkdir(parents=True, exist_ok=True)
    preds = []
    for s in seeds:
        p = write_predictions(release, folder / f"seed{s}.parquet", s, policy)
        preds.append({"seed": s, "path": p.name, "sha256": sha256_file(p)})
    sub = {
        "method": f"Test {policy}",
        "authors": ["A. Tester"],
        "contact": "tester@example.org",
        "code_url": "https://example.org/code",
        "command": "python make_predictions.py",
        "dataset": "genco-org/creatives",
        "dataset_version": Release.open(release).manifest.dataset_version,
        "manifest_sha256": sha256_file(release / "manifest.json"),
        "genco_data_version": __version__,
        "predictions": preds,
        "n_parameters": 0,
        "hardware": "2 CPU cores",
        "external_data": False,
        "used_test_labels": False,
    }
    sub.update(over)
    path = folder / "submission.json"
    path.write_text(json.dumps(sub, indent=2), encoding="utf-8")
    return path
