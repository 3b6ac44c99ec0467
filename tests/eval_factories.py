"""Tiny factories for the evaluator's tests: uniform-logged test splits in the release layout, and a fake
world with exactly known truths (a linear CTR model, so every expectation is a closed form)."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import COMPONENTS, candidates_col, exposed_col, propensity_col
from genco_data.format.records import FileEntry, Manifest, Source
from genco_data.release import MANIFEST_NAME, shard_name

K = len(COMPONENTS)
TEST_DAY = dt.date(2025, 7, 23)
#: (coverage, largest pool) per component; small pools so the combination matches often enough.
SMALL_POOLS = {"title": (1.0, 4), "image": (1.0, 3), "marketing": (0.4, 2), "highlight": (0.9, 4), "attribute": (0.6, 2), "structure_attribute": (0.7, 3)}
#: Pools spanning every Table-4 bucket (up to 10 candidates).
WIDE_POOLS = {"title": (1.0, 8), "image": (1.0, 7), "marketing": (0.4, 6), "highlight": (0.95, 10), "attribute": (0.6, 10), "structure_attribute": (0.7, 10)}


def _frac(x: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic pseudo-uniform number in [0, 1) per integer (Fibonacci hashing)."""
    h = (x.astype(np.uint64) + np.uint64(salt)) * np.uint64(11400714819323198485)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


class FakeWorld:
    """CTR(row, combination) = base(ad) + Σ_j effect(element chosen on j); everything exact (se = 0).

    Implements the World interface of docs/INTERFACES.md: true_ctr, optimum, policy_value, uniform_value,
    component_value (``choices`` int [R, 6], -1 where the pool is empty)."""

    def __init__(self, base: tuple[float, float] = (0.07, 0.13), amp: float = 0.02, salt: int = 7) -> None:
        self.base, self.amp, self.salt = base, amp, salt

    def _base(self, req: pa.Table) -> np.ndarray:
        lo, hi = self.base
        return lo + (hi - lo) * _frac(req.column("ad_id").to_numpy(), self.salt)

    def _effects(self, req: pa.Table, j: int) -> np.ndarray:
        """[R, kmax] effect of each slot, NaN beyond the pool."""
        col = req.column(candidates_col(COMPONENTS[j]))
        n = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(col).to_numpy()
        out = np.full((len(n), max(int(n.max()), 1)), np.nan)
        rows = np.repeat(np.arange(len(n)), n)
        starts = np.concatenate([[0], np.cumsum(n)[:-1]])
        out[rows, np.arange(len(flat)) - starts[rows]] = self.amp * (_frac(flat, self.salt + 1 + j) - 0.5)
        return out

    def true_ctr(self, requests: pa.Table, choices: np.ndarray) -> np.ndarray:
        choices = np.asarray(choices)
        ctr = self._base(requests)
        for j in range(K):
            E = self._effects(requests, j)
            c = choices[:, j]
            ctr = ctr + np.where(c >= 0, E[np.arange(len(c)), np.maximum(c, 0)], 0.0)
        return ctr

    def optimum(self, requests: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        ch = np.full((requests.num_rows, K), -1, np.int64)
        for j in range(K):
            E = self._effects(requests, j)
            has = ~np.isnan(E).all(axis=1)
            ch[:, j] = np.where(has, np.nan_to_num(E, nan=-np.inf).argmax(axis=1), -1)
        return ch, self.true_ctr(requests, ch)

    def policy_value(self, requests: pa.Table, choices: np.ndarray) -> float:
        return float(self.true_ctr(requests, choices).mean())

    def _uniform_rows(self, requests: pa.Table, skip: int | None = None) -> np.ndarray:
        v = self._base(requests)
        for j in range(K):
            if j != skip:
                E = self._effects(requests, j)
                v = v + np.where(np.isnan(E).all(axis=1), 0.0, np.nanmean(np.where(np.isnan(E).all(1)[:, None], 0.0, E), axis=1))
        return v

    def uniform_value(self, requests: pa.Table, n_samples: int = 0, seed: int = 0) -> tuple[float, float]:
        return float(self._uniform_rows(requests).mean()), 0.0

    def component_value(self, requests: pa.Table, choices: np.ndarray, component: int, n_samples: int = 0, seed: int = 0) -> tuple[float, float]:
        E = self._effects(requests, component)
        c = np.asarray(choices)[:, component]
        mine = np.where(c >= 0, E[np.arange(len(c)), np.maximum(c, 0)], 0.0)
        return float((self._uniform_rows(requests, skip=component) + mine).mean()), 0.0


def make_requests(rows: int, rng: np.random.Generator, ads: int | None = None, pools: dict = SMALL_POOLS) -> pa.Table:
    """``rows`` test requests over ``ads`` ads (each ad has fixed pools), shown = 0 and click = 0 placeholders."""
    ads = ads or max(rows // 8, 1)
    ad_of_row = rng.integers(0, ads, rows)
    cols: dict[str, object] = {
        "impression_id": [f"t{i:07d}" for i in range(rows)],
        "day": [TEST_DAY] * rows,
        "logging_policy": ["uniform"] * rows,
        "user_id": rng.integers(0, 10_000, rows),
        "user_age": rng.integers(0, 7, rows).astype(np.int8),
        "user_gender": rng.integers(0, 3, rows).astype(np.int8),
        "ad_id": (ad_of_row * 7919 + 13).astype(np.int64),
        "category": rng.choice(["phone", "clothing", "wine"], rows),
        "query_id": rng.integers(0, 500, rows),
        "query_segments": [[int(s)] for s in rng.integers(0, 50, rows)],
    }
    for j, c in enumerate(COMPONENTS):
        coverage, largest = pools[c]
        sizes = np.where(rng.random(ads) < coverage, rng.integers(1, largest + 1, ads), 0)
        pools_of_ad = [[int(a * 1000 + j * 100 + k) for k in range(s)] for a, s in enumerate(sizes)]
        cand = [pools_of_ad[a] for a in ad_of_row]
        cols[candidates_col(c)] = cand
        cols[exposed_col(c)] = [0 if p else None for p in cand]
        cols[propensity_col(c)] = [1.0 / len(p) if p else None for p in cand]
    cols["click"] = np.zeros(rows, np.int8)
    return pa.table(cols, schema=impressions_schema())


def pool_sizes(table: pa.Table) -> np.ndarray:
    """int64 [R, K] pool sizes."""
    return np.stack([pc.list_value_length(table.column(candidates_col(c))).to_numpy() for c in COMPONENTS], axis=1).astype(np.int64)


def uniform_log(requests: pa.Table, world: FakeWorld, rng: np.random.Generator) -> pa.Table:
    """A fresh uniform-logged log of the same requests: shown elements uniform per component, clicks
    Bernoulli(true CTR of the shown combination). Vectorized."""
    n = pool_sizes(requests)
    shown = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1)
    y = (rng.random(len(n)) < world.true_ctr(requests, shown)).astype(np.int8)
    t = requests
    for j, c in enumerate(COMPONENTS):
        i = t.schema.get_field_index(exposed_col(c))
        t = t.set_column(i, t.schema.field(i), pa.array(shown[:, j], pa.int16(), mask=shown[:, j] < 0))
    return t.set_column(t.schema.get_field_index("click"), t.schema.field("click"), pa.array(y, pa.int8()))


def write_release(root: Path, test: pa.Table, version: str = "1.0.0", shards: int = 1, world: Path | None = None) -> Path:
    """A release folder holding only a test split (``shards`` files) and its manifest; ``world``: a
    simulator ``world/`` folder copied in and listed in the manifest (loaders verify every file)."""
    root = Path(root)
    (root / "data" / "impressions").mkdir(parents=True, exist_ok=True)
    entries = []
    if world is not None:
        import shutil

        shutil.copytree(world, root / "world")
        for f in sorted((root / "world").rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                entries.append(FileEntry(path=f.relative_to(root).as_posix(), bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    bounds = np.linspace(0, test.num_rows, shards + 1).astype(int)
    for s in range(shards):
        rel = f"data/impressions/{shard_name('test', s, shards)}"
        part = test.slice(bounds[s], bounds[s + 1] - bounds[s])
        pq.write_table(part, root / rel)
        data = (root / rel).read_bytes()
        entries.append(FileEntry(path=rel, rows=part.num_rows, bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
    manifest = Manifest(
        dataset_version=version, created_by="tests", source=Source(kind="synthetic", generator="tests.eval_factories"),
        test_start_day=TEST_DAY, splits={"impressions": {"test": test.num_rows}}, rows_in=test.num_rows, rows_rejected=0, files=entries,
    )
    (root / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return root


def predictions_table(ids: list[str] | pa.Array, choices: np.ndarray, choice_type: pa.DataType = pa.int16()) -> pa.Table:
    """A predictions table in the contract (choices int [R, 6], -1 -> null)."""
    cols = {"impression_id": pa.array(ids, pa.string())}
    for j, c in enumerate(COMPONENTS):
        cols[f"{c}_choice"] = pa.array(choices[:, j], choice_type, mask=choices[:, j] < 0)
    return pa.table(cols)
