"""The simulator: raw rows in the impressions schema, Table-1 calibration, logging policies, and the
ground truth (exact CTR, exact optimum, policy / uniform / per-component values), saved without pickle."""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from genco_data.format.arrow import impressions_schema
from genco_data.format.components import (
    COMPONENTS,
    N_COMPONENTS,
    PAD_TO,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    PAPER_TRAIN_CTR,
    candidates_col,
    exposed_col,
    propensity_col,
)
from genco_data.errors import IntegrityError, InvalidInputError, SchemaError
from genco_data.format.records import ImpressionRow
from genco_data.synth import SynthConfig, World, simulate
from genco_data.synth import catalog as synth_catalog
from genco_data.synth import simulation as synth_simulation
from genco_data.synth.draw import hashed_ids
from genco_data.synth.config import PRESETS
from genco_data.synth.table1 import check, format_check, table1
from genco_data.synth.world import CATEGORIES

K = N_COMPONENTS
CFG = SynthConfig(train_rows=60_000, test_rows=20_000, seed=7, batch_rows=16_384)


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = simulate(CFG, out, progress=False)
    parts = sorted((out / "raw").glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    policy = table.column("logging_policy")
    return {
        "out": out,
        "summary": summary,
        "parts": parts,
        "table": table,
        "train": table.filter(pc.equal(policy, "production")),
        "test": table.filter(pc.equal(policy, "uniform")),
        "world": World.load(out / "world"),
    }


@pytest.fixture(scope="module")
def small(sim):
    """Test rows whose pools are all short enough to enumerate every combination (≤ 120)."""
    test = sim["test"]
    n = _lengths(test)
    combos = np.prod(np.maximum(n, 1), axis=1)
    idx = np.flatnonzero(combos <= 120)[:40]
    assert len(idx) >= 20
    return test.take(pa.array(idx))


def _lengths(table: pa.Table) -> np.ndarray:
    return np.stack([pc.list_value_length(table.column(candidates_col(c))).to_numpy() for c in COMPONENTS], axis=1).astype(np.int64)


def _logged(table: pa.Table) -> np.ndarray:
    return np.stack([table.column(exposed_col(c)).fill_null(-1).to_numpy().astype(np.int64) for c in COMPONENTS], axis=1)


def _enumerate(table: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Every combination of every row: (requests repeated, choices [N, 6], row index [N])."""
    n = _lengths(table)
    rows, choices = [], []
    for r in range(table.num_rows):
        ranges = [range(k) if k else [-1] for k in n[r]]
        for combo in itertools.product(*ranges):
            rows.append(r)
            choices.append(combo)
    rows_a = np.array(rows)
    return table.take(pa.array(rows_a)), np.array(choices, dtype=np.int64), rows_a


# ----------------------------------------------------------------------------------------- the rows
def test_parts_have_exactly_the_impressions_schema(sim):
    assert len(sim["parts"]) == 4 + 2  # ceil(60k / 16384) train parts, then ceil(20k / 16384) test parts
    for p in sim["parts"]:
        assert pq.read_schema(p).remove_metadata().equals(impressions_schema(), check_metadata=False), p
    assert sim["table"].num_rows == CFG.train_rows + CFG.test_rows


def test_rows_satisfy_every_invariant_vectorized(sim):
    t = sim["table"]
    ids = t.column("impression_id")
    assert pc.count_distinct(ids).as_py() == t.num_rows
    assert set(pc.unique(pc.utf8_length(ids)).to_pylist()) == {16}
    for col in ("user_id", "ad_id", "query_id"):
        assert pc.min(t.column(col)).as_py() >= 0
    assert t.column("user_id").null_count == 0 and t.column("ad_id").null_count == 0
    assert set(t.column("category").unique().to_pylist()) <= set(CATEGORIES)
    assert set(t.column("click").unique().to_pylist()) == {0, 1}
    n = _lengths(t)
    shown = _logged(t)
    assert ((shown == -1) == (n == 0)).all() and (shown < np.maximum(n, 1)).all()
    for j, c in enumerate(COMPONENTS):
        prop = t.column(propensity_col(c))
        assert prop.null_count == int((n[:, j] == 0).sum())
        p = prop.drop_null().to_numpy()
        assert (p > 0).all() and (p <= 1).all()
        flat = pc.list_flatten(t.column(candidates_col(c))).to_numpy()
        row = np.repeat(np.arange(t.num_rows), n[:, j])
        order = np.lexsort((flat, row))
        same = (np.diff(row[order]) == 0) & (np.diff(flat[order]) == 0)
        assert not same.any(), f"duplicate id inside a {c} pool"
        assert (flat >= 0).all()
    # queries: null sometimes, then no segments; segments may be empty with a query too
    q_null = t.column("query_id").is_null().to_numpy(zero_copy_only=False)
    seg_n = pc.list_value_length(t.column("query_segments")).to_numpy()
    assert 0.1 < q_null.mean() < 0.3 and (seg_n[q_null] == 0).all() and (seg_n[~q_null] == 0).any()
    assert 0 < t.column("user_age").null_count < t.num_rows * 0.1


def test_a_sample_of_rows_passes_the_pydantic_row_model(sim):
    for row in sim["table"].slice(0, 300).to_pylist():
        ImpressionRow.model_validate(row)


def test_days_train_chronological_then_test_uniform(sim):
    t = sim["table"]
    days = t.column("day").to_numpy().astype("datetime64[D]").astype(np.int64)
    policy = np.array(t.column("logging_policy").to_pylist())
    train_days, test_days = days[policy == "production"], days[policy == "uniform"]
    assert (policy[: CFG.train_rows] == "production").all() and (policy[CFG.train_rows :] == "uniform").all()
    assert (np.diff(days) >= 0).all(), "rows are chronological, train first"
    assert train_days.max() < test_days.min()
    start = dt.date.fromisoformat(sim["summary"]["test_start_day"])
    assert start == CFG.start_day + dt.timedelta(days=33) == dt.date(2025, 7, 23)
    assert (test_days.min(), test_days.max()) == ((start - dt.date(1970, 1, 1)).days, (start - dt.date(1970, 1, 1)).days + 1)
    assert len(np.unique(train_days)) == 33 and train_days.min() == (CFG.start_day - dt.date(1970, 1, 1)).days
    per_day = np.unique(train_days, return_counts=True)[1]
    assert per_day.max() - per_day.min() <= 1, "train rows spread evenly over the days"


def test_test_rows_are_uniform_with_propensity_one_over_n(sim):
    t = sim["test"]
    n = _lengths(t)
    for j, c in enumerate(COMPONENTS):
        has = n[:, j] > 0
        p = t.column(propensity_col(c)).to_numpy(zero_copy_only=False)[has]
        assert np.array_equal(p.astype(np.float32), (1.0 / n[has, j]).astype(np.float32))
        # uniform: the shown position / n is ~U(0, 1)
        pos = _logged(t)[has, j] / n[has, j]
        assert abs(pos.mean() - (1 - 1 / n[has, j]).mean() / 2) < 0.02


def test_train_rows_record_the_production_softmax_propensity(sim):
    t, world = sim["train"].slice(0, 2000), sim["world"]
    n, shown = _lengths(t), _logged(t)
    for j, c in enumerate(COMPONENTS):
        ids_sorted = np.argsort(world.arrays[f"elem{j}_id"])
        pools = t.column(candidates_col(c)).to_pylist()
        props = t.column(propensity_col(c)).to_pylist()
        for r in np.flatnonzero(n[:, j] > 0)[:200]:
            ids = np.array(pools[r])
            e = ids_sorted[np.searchsorted(world.arrays[f"elem{j}_id"][ids_sorted], ids)]
            score = world.arrays[f"elem{j}_prod"][e]
            soft = np.exp(score - score.max()) / np.exp(score - score.max()).sum()
            assert props[r] == pytest.approx(soft[shown[r, j]], rel=1e-5)
    # the draws follow the recorded propensities: E[1/p(shown)] = n (the IPS identity)
    t, n = sim["train"], _lengths(sim["train"])
    for j, c in enumerate(COMPONENTS):
        has = n[:, j] > 1
        inv = 1.0 / t.column(propensity_col(c)).to_numpy(zero_copy_only=False)[has]
        gap = inv - n[has, j]  # E[1/p - n] = 0 row by row; 4 standard errors (attribute has few rows: ~8 % of them)
        assert abs(gap.mean()) < max(4 * gap.std() / np.sqrt(has.sum()), 0.01 * n[has, j].mean()), c


def test_table1_statistics_and_train_ctr(sim):
    """All four Table-1 rows, per ad, by the independent computation of synth.table1 over the raw parts; the
    simulator's own summary gives the per-row figures."""
    train, summary = sim["train"], sim["summary"]
    n = _lengths(train)
    assert abs(train.column("click").to_numpy().mean() - PAPER_TRAIN_CTR) < 0.003
    assert summary["train_ctr"] == pytest.approx(train.column("click").to_numpy().mean())
    stats = table1(sim["parts"])
    assert stats["rows"] == CFG.train_rows and stats["days"] == CFG.train_days and stats["ads"] > 0.98 * CFG.num_ads
    bad = {(row, c): r for row, cells in check(stats).items() for c, r in cells.items() if not r["ok"]}
    assert not bad, format_check(stats)
    for j, c in enumerate(COMPONENTS):
        has = n[:, j] > 0
        assert summary["coverage"][c] == pytest.approx(has.mean()) and summary["avg_candidates"][c] == pytest.approx(n[has, j].mean())
        assert stats["components"][c]["coverage_rows"] == pytest.approx(has.mean())
    # the choice that lets all four rows hold: ads with an attribute are shown ~10x less often
    assert stats["components"]["attribute"]["coverage_rows"] < 0.5 * PAPER_COVERAGE["attribute"]
    # pools longer than PAD_TO occur, but rarely: per ad (the calibration unit; per row it moves with the traffic)
    per_ad = pa.table({"ad": train.column("ad_id"), **{c: n[:, j] for j, c in enumerate(COMPONENTS)}}).group_by("ad").aggregate(
        [(c, "max") for c in COMPONENTS])
    over = np.array([(per_ad.column(f"{c}_max").to_numpy() > PAD_TO).sum() / max((per_ad.column(f"{c}_max").to_numpy() > 0).sum(), 1)
                     for c in COMPONENTS])
    assert 0 < over.max() < 0.05, over


def test_pools_change_over_days(sim):
    t = sim["train"]
    ads = t.column("ad_id").to_numpy()
    days = t.column("day").to_numpy().astype("datetime64[D]").astype(np.int64)
    pools = t.column(candidates_col("title")).to_pylist()
    first_last: dict[int, tuple[tuple, tuple]] = {}
    for a, d, p in zip(ads, days, pools):
        f = first_last.setdefault(int(a), (tuple(p), tuple(p)))
        first_last[int(a)] = (f[0], tuple(p))
    changed = [f != l for f, l in first_last.values()]
    added = [len(set(l) - set(f)) > 0 for f, l in first_last.values()]
    assert 0.1 < np.mean(changed) < 0.95 and any(added)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = SynthConfig(train_rows=3000, test_rows=1000, seed=5, batch_rows=1500)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    sa, sb = simulate(cfg, a, progress=False), simulate(cfg, b, progress=False)
    simulate(SynthConfig(train_rows=3000, test_rows=1000, seed=6, batch_rows=1500), c, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 + 1 + 2 and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert sa == {**sb, "out": sa["out"]}
    assert (a / "raw/part-00000.parquet").read_bytes() != (c / "raw/part-00000.parquet").read_bytes()
    ids_a = set(pq.read_table(a / "raw/part-00000.parquet").column("ad_id").to_pylist())
    ids_c = set(pq.read_table(c / "raw/part-00000.parquet").column("ad_id").to_pylist())
    assert not ids_a & ids_c


def test_hashed_ids_are_distinct_nonnegative_and_random_looking():
    ids = hashed_ids(16, np.arange(200_000), salt=12345)
    assert ids.dtype == np.int64 and (ids >= 0).all() and len(np.unique(ids)) == len(ids)
    assert len(np.unique(np.concatenate([ids, hashed_ids(17, np.arange(200_000), salt=12345)]))) == 400_000
    assert ids.max() > 2**62 and abs(np.corrcoef(np.arange(200_000), ids)[0, 1]) < 0.01


def test_guided_search_equals_searchsorted():
    rng = np.random.default_rng(0)
    cum = np.cumsum(rng.lognormal(0, 2, 5000))
    cum /= cum[-1]
    guide = synth_catalog._guide(cum, 3 * len(cum), 1.0)
    target = np.concatenate([rng.random(20_000), cum[:100], [0.0, 1.0 - 1e-17]])
    expect = np.minimum(np.searchsorted(cum, target, side="right"), len(cum) - 1)
    assert np.array_equal(synth_catalog._search(cum, guide, 1.0, target), expect)


# ----------------------------------------------------------------------------------------- the truth
def test_true_ctr_matches_the_clicks_and_is_a_probability(sim):
    world, test = sim["world"], sim["test"]
    ctr = world.true_ctr(test, _logged(test))
    assert ctr.shape == (test.num_rows,) and ((ctr > 0) & (ctr < 1)).all()
    clicks = test.column("click").to_numpy()
    assert abs(clicks.mean() - ctr.mean()) < 4 * np.sqrt(ctr.mean() / test.num_rows)
    hi = ctr > np.quantile(ctr, 0.8)
    assert clicks[hi].mean() > 2 * clicks[~hi].mean(), "appeal dominates: the true CTR predicts clicks"


def test_optimum_equals_brute_force_on_small_pools(sim, small):
    world = sim["world"]
    best, best_ctr = world.optimum(small)
    rep, choices, row = _enumerate(small)
    ctr = world.true_ctr(rep, choices)
    brute = np.full(small.num_rows, -1.0)
    np.maximum.at(brute, row, ctr)
    np.testing.assert_allclose(best_ctr, brute, rtol=1e-12)
    np.testing.assert_allclose(world.true_ctr(small, best), best_ctr, rtol=1e-12)
    assert ((best == -1) == (_lengths(small) == 0)).all()


def test_optimum_on_a_forest_when_tree_nodes_are_absent(sim, small):
    """Without image (the root) or highlight, their subtrees become separate trees; still exact."""
    def emptied(table: pa.Table, comp: str, rows: np.ndarray) -> pa.Table:
        pools = table.column(candidates_col(comp)).to_pylist()
        for r in rows:
            pools[r] = []
        i = table.schema.get_field_index(candidates_col(comp))
        return table.set_column(i, table.schema.field(i), pa.array(pools, pa.list_(pa.int64())))

    req = emptied(emptied(small, "image", np.arange(0, small.num_rows, 2)), "highlight", np.arange(0, small.num_rows, 3))
    best, best_ctr = sim["world"].optimum(req)
    rep, choices, row = _enumerate(req)
    brute = np.full(req.num_rows, -1.0)
    np.maximum.at(brute, row, sim["world"].true_ctr(rep, choices))
    np.testing.assert_allclose(best_ctr, brute, rtol=1e-12)
    assert (best[::2, COMPONENTS.index("image")] == -1).all()


def test_optimum_beats_random_combinations_and_handles_long_pools(sim):
    world, test = sim["world"], sim["test"]
    n = _lengths(test)
    long_rows = np.flatnonzero((n > PAD_TO).any(axis=1))
    assert len(long_rows) > 0
    req = test.take(pa.array(np.concatenate([long_rows, np.arange(300)])))
    n = _lengths(req)
    best, best_ctr = world.optimum(req)
    rng = np.random.default_rng(0)
    for _ in range(30):
        ch = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1)
        assert (world.true_ctr(req, ch) <= best_ctr * (1 + 1e-12)).all()
    # and no single-component change improves it (local optimality, also for pools over PAD_TO)
    for j in range(K):
        for k in range(int(n[:, j].max())):
            ch = best.copy()
            ok = n[:, j] > k
            ch[ok, j] = k
            assert (world.true_ctr(req, ch)[ok] <= best_ctr[ok] * (1 + 1e-12)).all()


def test_headroom_oracle_beats_uniform_by_15_to_30_percent(sim):
    world, test = sim["world"], sim["test"]
    uniform, se = world.uniform_value(test, n_samples=16, seed=1)
    oracle = world.policy_value(test, world.optimum(test)[0])
    assert se < 0.001 * uniform
    assert 0.15 <= oracle / uniform - 1 <= 0.30, oracle / uniform - 1  # +22.8 % on the 300 k default release
    # the logged uniform combinations are a fair draw of the uniform policy
    logged = world.policy_value(test, _logged(test))
    assert abs(logged - uniform) < 0.01 * uniform


def test_uniform_and_component_values_agree_with_brute_force(sim, small):
    world = sim["world"]
    rep, choices, row = _enumerate(small)
    ctr = world.true_ctr(rep, choices)
    per_row = np.bincount(row, weights=ctr) / np.bincount(row)
    value, se = world.uniform_value(small, n_samples=400, seed=3)
    assert abs(value - per_row.mean()) < 4 * se + 1e-12 and se > 0
    policy = world.optimum(small)[0]
    n = _lengths(small)
    for j in range(K):
        has = n[:, j] > 0
        match = choices[:, j] == policy[row, j]
        exact_rows = np.bincount(row[match], weights=ctr[match], minlength=small.num_rows) / np.maximum(np.bincount(row[match], minlength=small.num_rows), 1)
        exact = exact_rows[has].mean()
        v, s = world.component_value(small, policy, j, n_samples=400, seed=4)
        assert abs(v - exact) < 4 * s + 1e-12, (COMPONENTS[j], v, exact, s)


def test_component_value_is_what_calibrated_sctr_estimates(sim):
    """On the uniform log, Σ n·y·1[shown = choice] / Σ n·1[shown = choice] ≈ component_value."""
    world, test = sim["world"], sim["test"]
    policy = world.optimum(test)[0]
    n, shown, y = _lengths(test), _logged(test), test.column("click").to_numpy()
    for j, c in enumerate(COMPONENTS):
        m = (shown[:, j] == policy[:, j]) & (n[:, j] > 0)
        estimate = (n[m, j] * y[m]).sum() / n[m, j].sum()
        value, _ = world.component_value(test, policy, j, n_samples=8)
        sd = np.sqrt(value * n[m, j].mean() / n[m, j].sum())  # ~ binomial sd of the ratio
        assert abs(estimate - value) < 4 * sd, (c, estimate, value, sd)


# ----------------------------------------------------------------------------------------- storage & errors
def test_world_round_trip_without_pickle(sim, tmp_path):
    world = sim["world"]
    world.save(tmp_path / "w")
    again = World.load(tmp_path / "w")
    assert again.params == world.params and again.params["test_start_day"] == "2025-07-23"
    assert set(again.arrays) == set(world.arrays)
    for k, v in world.arrays.items():
        assert v.dtype != object and np.array_equal(v, again.arrays[k]), k
    with np.load(tmp_path / "w" / "world.npz", allow_pickle=False) as z:
        assert set(z.files) == set(world.arrays)
    with zipfile.ZipFile(tmp_path / "w" / "world.npz") as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    meta = json.loads((sim["out"] / "world" / "world.json").read_text())
    assert meta["generator"].startswith("genco_data.synth") and meta["tree_parent"]["image"] is None
    assert World.load(sim["out"]).params == world.params  # a release folder holding world/ works too
    test = sim["test"].slice(0, 500)
    np.testing.assert_array_equal(again.optimum(test)[1], world.optimum(test)[1])


def test_a_tampered_or_missing_world_is_refused(sim, tmp_path):
    with pytest.raises(InvalidInputError, match="no world.json"):
        World.load(tmp_path)
    sim["world"].save(tmp_path / "w")
    data = bytearray((tmp_path / "w" / "world.npz").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "w" / "world.npz").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        World.load(tmp_path / "w")


def test_bad_requests_and_choices_are_refused(sim):
    world, test = sim["world"], sim["test"].slice(0, 50)
    good = _logged(test)
    bad_ad = test.set_column(test.schema.get_field_index("ad_id"), "ad_id", pa.array(np.full(50, 123), pa.int64()))
    cases = [
        (lambda: world.true_ctr(bad_ad, good), InvalidInputError, "50 ad_id values are not in this world"),
        (lambda: world.true_ctr(test.drop_columns(["title_candidates"]), good), SchemaError, "missing column"),
        (lambda: world.true_ctr(test, good[:10]), InvalidInputError, r"expected shape \(50, 6\)"),
        (lambda: world.true_ctr(test, good.astype(float)), InvalidInputError, "expected integers"),
        (lambda: world.true_ctr(test, np.where(good >= 0, good + 100, -1)), InvalidInputError, r"choices\[0, 0\] \(title\)"),
        (lambda: world.true_ctr(test, np.zeros_like(good) + (good == -1) * 5), InvalidInputError, "expected -1 for an empty pool"),
        (lambda: world.component_value(test, good, 6), InvalidInputError, "component"),
        (lambda: world.uniform_value(test, n_samples=1), InvalidInputError, "n_samples"),
        (lambda: world.true_ctr({"ad_id": [1]}, good), TypeError, "pyarrow Table"),
    ]
    for call, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            call()


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"train_rows": -1}, InvalidInputError, r"train_rows: expected an int >= 0, got -1"),
        ({"train_rows": 0, "test_rows": 0}, InvalidInputError, "must be >= 1"),
        ({"train_rows": 1.5}, TypeError, "train_rows: expected an int, got float"),
        ({"seed": True}, TypeError, "seed: expected an int, got bool"),
        ({"train_days": 0}, InvalidInputError, "train_days: expected an int >= 1"),
        ({"batch_rows": 0}, InvalidInputError, "batch_rows"),
        ({"n_ads": 0}, InvalidInputError, "n_ads: expected an int >= 1"),
        ({"start_day": "2025-06-20"}, TypeError, "start_day: expected a datetime.date"),
        ({"churn": 1.5}, InvalidInputError, r"churn: expected a float in \[0.0, 1.0\], got 1.5"),
        ({"appeal_scale": float("nan")}, InvalidInputError, "appeal_scale"),
        ({"target_ctr": 1.0}, InvalidInputError, r"target_ctr: expected a float in \(0, 1\)"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        SynthConfig(**kwargs)


def test_config_defaults_and_scaling():
    cfg = SynthConfig()
    assert (cfg.train_rows, cfg.test_rows, cfg.seed, cfg.train_days, cfg.test_days) == (200_000, 50_000, 0, 33, 2)
    assert cfg.start_day == dt.date(2025, 6, 20) and cfg.test_start_day == dt.date(2025, 7, 23)
    assert (cfg.num_ads, cfg.num_users, cfg.num_queries) == (1955, 62_500, 12_500)  # 200k / (3.1 · 33) ads
    assert SynthConfig(train_rows=10_000_000).num_ads == 97_752 and SynthConfig(n_ads=7).num_ads == 7
    assert SynthConfig(train_rows=100, test_rows=0).num_ads == 16  # MIN_ADS
    assert SynthConfig(calibration="rows", train_rows=10_000_000).num_ads == 40_200  # the earlier worlds' scaling
    json.dumps(cfg.to_dict())
    with pytest.raises(AttributeError):
        cfg.seed = 1  # type: ignore[misc]


def test_interrupted_run_leaves_no_world_json_and_a_rerun_replaces_it(tmp_path, monkeypatch):
    cfg = SynthConfig(train_rows=3000, test_rows=500, batch_rows=1000)
    out = tmp_path / "o"
    simulate(cfg, out, progress=False)
    (out / "raw" / "part-00099.parquet").write_bytes(b"stale")

    def boom(table, path, rows):
        if path.name == "part-00002.parquet":
            raise OSError("disk full")
        pq.write_table(table, path)
        return rows

    monkeypatch.setattr(synth_simulation, "_write_part", boom)
    with pytest.raises(OSError, match="disk full"):
        simulate(cfg, out, progress=False)
    assert not (out / "world" / "world.json").exists() and not (out / "raw" / "part-00099.parquet").exists()
    with pytest.raises(InvalidInputError, match="interrupted"):
        World.load(out / "world")
    monkeypatch.undo()
    simulate(cfg, out, progress=True)
    assert len(list((out / "raw").glob("part-*.parquet"))) == 4 and (out / "world" / "world.json").is_file()


def test_only_one_split_and_a_file_as_out(tmp_path):
    s = simulate(SynthConfig(train_rows=0, test_rows=700), tmp_path / "t", progress=False)
    assert s["train_rows"] == 0 and pq.read_table(tmp_path / "t" / "raw" / "part-00000.parquet").num_rows == 700
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder"):
        simulate(SynthConfig(train_rows=10, test_rows=10), tmp_path / "f", progress=False)
    with pytest.raises(TypeError, match="SynthConfig"):
        simulate({"train_rows": 10}, tmp_path / "g")  # type: ignore[arg-type]


def test_cli_synth(tmp_path, capsys):
    from genco_data import cli

    out = tmp_path / "cli"
    assert cli.main(["synth", "--out", str(out), "--train-rows", "2000", "--test-rows", "500", "--seed", "3", "--quiet"]) == 0
    assert "wrote 2,000 train + 500 test rows" in capsys.readouterr().out
    assert (out / "world" / "world.json").is_file() and list((out / "raw").glob("part-*.parquet"))
    assert cli.main(["synth", "--out", str(out), "--train-rows", "2000", "--test-rows", "500", "--json", "--quiet"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["test_start_day"] == "2025-07-23" and payload["seed"] == 0
    assert cli.main(["synth", "--out", str(out), "--train-rows", "-5", "--quiet"]) == 2
    assert "genco synth: error: SynthConfig.train_rows: expected an int >= 0, got -5" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- shared catalogs
@pytest.mark.parametrize("scope", ["category", "global"])
def test_shared_catalogs_recur_across_ads_keep_table1_and_never_repeat_inside_a_pool(tmp_path, scope):
    cfg = dataclasses.replace(CFG, **{**PRESETS["learnable"], "catalog_scope": scope})
    simulate(cfg, tmp_path / "s", progress=False)
    table = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "s" / "raw").glob("part-*.parquet"))])
    world = World.load(tmp_path / "s" / "world")
    train = table.filter(pc.equal(table.column("logging_policy"), "production"))
    n = _lengths(train)
    ad = train.column("ad_id").to_numpy()
    for j, c in enumerate(COMPONENTS):
        col = table.column(candidates_col(c)).combine_chunks()
        flat = col.flatten().to_numpy()
        row = np.repeat(np.arange(len(col)), np.diff(col.offsets.to_numpy()))
        assert len(np.unique(np.stack([row, flat], 1), axis=0)) == len(flat), f"{c}: an element twice in one pool"
        # the world holds the catalog, not one element per slot: far fewer elements than (ad, slot) pairs
        n_elements = len(world.arrays[f"elem{j}_id"])
        groups = len(CATEGORIES) if scope == "category" else 1
        assert 16 * groups <= n_elements <= groups * max(16, int(n.max()) * 2), (c, n_elements)
        assert np.isin(flat, world.arrays[f"elem{j}_id"]).all()
        # an element is shown under many ads
        shown = train.column(exposed_col(c)).fill_null(-1).to_numpy()
        tc = train.column(candidates_col(c)).combine_chunks()
        has = shown >= 0
        ids = tc.flatten().to_numpy()[tc.offsets.to_numpy()[:-1][has] + shown[has]]
        ads_per_element = [len(np.unique(ad[has][ids == e])) for e in np.unique(ids)[:20]]
        # (per slot it is exactly 1; components on few ads with long-tailed pools recur less)
        assert np.mean(ads_per_element) >= (5 if PAPER_COVERAGE[c] == 1.0 else 1.3), (c, ads_per_element)
        if scope == "category":  # an element belongs to one category
            cats = train.column("category").to_numpy(zero_copy_only=False)[has]
            assert all(len(set(cats[ids == e])) == 1 for e in np.unique(ids)[:20])
        has_c = n[:, j] > 0
        assert abs(has_c.mean() - PAPER_COVERAGE[c]) <= 0.03 and abs(n[has_c, j].mean() / PAPER_AVG_CANDIDATES[c] - 1) <= 0.10
    assert world.params["config"]["catalog_size"] == 16 and world.params["config"]["catalog_scope"] == scope


def test_catalogs_zipf_by_default_uniform_learnable_per_slot_sparse_same_seed_same_bytes(tmp_path):
    cfg = SynthConfig(train_rows=3000, test_rows=500, seed=5)
    assert (cfg.catalog, cfg.catalog_scope, cfg.calibration) == ("zipf", "category", "ads")
    a, b = simulate(cfg, tmp_path / "a", progress=False), simulate(cfg, tmp_path / "b", progress=False)
    assert a["base"] == b["base"]
    for p in sorted((tmp_path / "a" / "raw").glob("part-*.parquet")):
        assert p.read_bytes() == (tmp_path / "b" / "raw" / p.name).read_bytes()
    learnable = SynthConfig.with_settings([], "learnable", train_rows=3000, test_rows=500, seed=5)
    assert (learnable.catalog, learnable.catalog_size, learnable.catalog_scope, learnable.calibration) == ("uniform", 16, "global", "rows")
    sparse = SynthConfig.with_settings([], "sparse", train_rows=3000, test_rows=500, seed=5)
    assert sparse.catalog == "per_slot" and sparse.catalog_size is None
    simulate(learnable, tmp_path / "l", progress=False)
    per_slot = simulate(sparse, tmp_path / "c", progress=False)
    shared = World.load(tmp_path / "l" / "world")
    own = World.load(tmp_path / "c" / "world")
    assert len(own.arrays["elem0_id"]) > 2 * len(shared.arrays["elem0_id"])
    assert per_slot["base"] != a["base"]


def test_synth_set_overrides_fields_and_refuses_bad_ones(tmp_path, capsys):
    from genco_data import cli

    cfg = SynthConfig.with_settings(["catalog_size=12", "catalog-scope=global", "quality_scale=0.05", "n_ads=none"], train_rows=10)
    assert (cfg.catalog_size, cfg.catalog_scope, cfg.quality_scale, cfg.n_ads, cfg.train_rows) == (12, "global", 0.05, None, 10)
    out = tmp_path / "o"
    argv = ["synth", "--out", str(out), "--train-rows", "2000", "--test-rows", "300", "--quiet"]
    assert cli.main([*argv, "--set", "catalog_size=16", "--set", "catalog_scope=global", "--json"]) == 0
    assert json.loads((out / "world" / "world.json").read_text())["config"]["catalog_scope"] == "global"
    # a preset, and --set on top of it
    assert cli.main([*argv, "--preset", "sparse", "--set", "quality_scale=0.07"]) == 0
    saved = json.loads((out / "world" / "world.json").read_text())["config"]
    assert (saved["catalog_size"], saved["catalog_scope"], saved["quality_scale"], saved["taste_scale"]) == (None, "category", 0.07, 0.025)
    assert cli.main([*argv, "--preset", "huge"]) == 2 and "--preset 'huge': expected one of default, benchmark, learnable, sparse" in capsys.readouterr().err
    capsys.readouterr()
    for bad, pattern in [
        ("bogus=1", "expected NAME=VALUE with NAME one of"),
        ("catalog_size", "expected NAME=VALUE"),
        ("catalog_size=x", "catalog_size expects an int or none"),
        ("quality_scale=big", "quality_scale expects float"),
        ("catalog_scope=world", "catalog_scope: expected 'category' or 'global'"),
        ("start_day=2025-01-01", "expected NAME=VALUE"),
        ("catalog_size=0", "catalog_size: expected an int >= 1"),
        ("catalog=shops", "catalog: expected one of 'zipf', 'uniform', 'per_slot'"),
        ("calibration=days", "calibration: expected 'ads' or 'rows'"),
    ]:
        assert cli.main([*argv, "--set", bad]) == 2, bad
        err = capsys.readouterr().err
        assert pattern in err and "Traceback" not in err and err.count("\n") == 1, (bad, err)
