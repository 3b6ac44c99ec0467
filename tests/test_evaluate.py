"""The evaluator, as a specification: Algorithm 1 and its intervals agree with a slow row-by-row reference,
the intervals cover the truth, every malformed predictions file gets its one-line error, and the truth /
validity reports are wired to the world."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genco_data.evaluate import metrics as M
from genco_data.format.components import BUCKET_EDGES, COMPONENTS, candidates_col, exposed_col
from genco_data.errors import GencoError, InvalidInputError, PredictionsError
from genco_data.evaluate import EvalConfig, Evaluator, format_validity, metric_validity

sys.path.insert(0, str(Path(__file__).parent))
from eval_factories import (  # noqa: E402
    SMALL_POOLS,
    WIDE_POOLS,
    FakeWorld,
    make_requests,
    pool_sizes,
    predictions_table,
    uniform_log,
    write_release,
)

K = len(COMPONENTS)
Z95 = M.z_value(0.95)
nan = float("nan")


# ---------------------------------------------------------------------------------- slow reference
def _bucket(comp: str, n: int) -> int:
    lo, hi = BUCKET_EDGES[comp]
    return 0 if n < lo else 1 if n <= hi else 2


def _ratio(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """(r, delta se, score interval) of r = Σa / Σb, where a_i = w_i y_i m_i and b_i = w_i m_i."""
    R, A, B = len(a), sum(a), sum(b)
    if B == 0:
        return nan, nan, nan, nan
    r, Bbar = A / B, B / R
    se = math.sqrt(sum(((ai - r * bi) / Bbar) ** 2 for ai, bi in zip(a, b)) / (R * (R - 1)))
    # score interval: roots of (A − θB)² = z² R/(R−1) Σ b_i² θ(1 − θ)
    q = Z95**2 * R / (R - 1) * sum(bi * bi for bi in b)
    qa, qb, qc = B * B + q, -(2 * A * B + q), A * A
    disc = math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))
    return r, se, max((-qb - disc) / (2 * qa), 0.0), min((-qb + disc) / (2 * qa), 1.0)


def _lift(a, b, c, d) -> tuple[float, float, float, float]:
    R = len(a)
    if sum(b) == 0 or sum(d) == 0 or sum(c) == 0:
        return nan, nan, nan, nan
    r, u, Bbar, Dbar = sum(a) / sum(b), sum(c) / sum(d), sum(b) / R, sum(d) / R
    psi = [((ai - r * bi) / Bbar) / u - r * ((ci - u * di) / Dbar) / u**2 for ai, bi, ci, di in zip(a, b, c, d)]
    lift, se = r / u - 1, math.sqrt(sum(p * p for p in psi) / (R * (R - 1)))
    _, r_se, r_lo, r_hi = _ratio(a, b)
    if r == 0:
        return lift, se, r_lo / u - 1, r_hi / u - 1
    extra = Z95**2 * ((se / (lift + 1)) ** 2 - (r_se / r) ** 2)
    lo = math.exp(math.log(r) - math.sqrt(max((math.log(r) - math.log(r_lo)) ** 2 + extra, 0))) / u - 1 if r_lo > 0 else -1.0
    hi = math.exp(math.log(r) + math.sqrt(max((math.log(r_hi) - math.log(r)) ** 2 + extra, 0))) / u - 1
    return lift, se, lo, hi


def _algorithm1(n, shown, y, choices, j) -> float:
    """The paper's Algorithm 1, literally."""
    exposure = click = 0
    for r in range(len(y)):
        if n[r][j] == 0:
            continue
        if choices[r][j] == shown[r][j]:
            exposure += n[r][j]
            click += n[r][j] * y[r]
    return click / exposure if exposure else nan


def reference(n, shown, y, ad, choices) -> dict:
    """Every metric by Python loops over rows: {(metric, cell, bucket): (value, se, ci_low, ci_high)};
    cell = component index or 'comb'; bucket None = all rows."""
    R, out = len(y), {}
    for j, comp in enumerate(COMPONENTS):
        for bk in (None, 0, 1, 2):
            a, b, pa_, pb, c, d = [], [], [], [], [], []
            for i in range(R):
                inb = n[i][j] > 0 and (bk is None or _bucket(comp, n[i][j]) == bk)
                m = inb and choices[i][j] == shown[i][j]
                a.append(n[i][j] * y[i] if m else 0)
                b.append(n[i][j] if m else 0)
                pa_.append(y[i] if m else 0)
                pb.append(1 if m else 0)
                c.append(y[i] if inb else 0)
                d.append(1 if inb else 0)
            out[("calibrated", j, bk)] = _ratio(a, b)
            out[("plain", j, bk)] = _ratio(pa_, pb)
            out[("uniform", j, bk)] = _ratio(c, d)
            out[("lift", j, bk)] = _lift(a, b, c, d)
        v = _algorithm1(n, shown, y, choices, j)
        assert (math.isnan(v) and math.isnan(out[("calibrated", j, None)][0])) or math.isclose(v, out[("calibrated", j, None)][0], rel_tol=1e-12)
    a, b, pa_, pb = [], [], [], []
    for i in range(R):
        w, m = 1, True
        for j in range(K):
            if n[i][j] > 0:
                w *= n[i][j]
                m = m and choices[i][j] == shown[i][j]
        a.append(w * y[i] if m else 0)
        b.append(w if m else 0)
        pa_.append(y[i] if m else 0)
        pb.append(1 if m else 0)
    out[("calibrated", "comb", None)] = _ratio(a, b)
    out[("plain", "comb", None)] = _ratio(pa_, pb)
    out[("uniform", "comb", None)] = _ratio(list(y), [1] * R)
    out[("lift", "comb", None)] = _lift(a, b, list(y), [1] * R)
    for cell in [*range(K), "comb"]:  # NSCTR: per-ad replay CTR weighted by the ad's impressions
        imp, imps, clks = {}, {}, {}
        for i in range(R):
            if cell == "comb":
                has, m = True, all(choices[i][j] == shown[i][j] for j in range(K) if n[i][j] > 0)
            else:
                has, m = n[i][cell] > 0, n[i][cell] > 0 and choices[i][cell] == shown[i][cell]
            if has:
                imp[ad[i]] = imp.get(ad[i], 0) + 1
            if m:
                imps[ad[i]] = imps.get(ad[i], 0) + 1
                clks[ad[i]] = clks.get(ad[i], 0) + y[i]
        kept = [g for g in imps]
        if not kept:
            out[("nsctr", cell, None)] = (nan, nan, nan, nan)
            continue
        tot = sum(imp[g] for g in kept)
        v = sum(imp[g] * clks[g] / imps[g] for g in kept) / tot
        se = math.sqrt(len(kept) / (len(kept) - 1) * sum((imp[g] * (clks[g] / imps[g] - v)) ** 2 for g in kept)) / tot if len(kept) > 1 else nan
        out[("nsctr", cell, None)] = (v, se, v - Z95 * se, v + Z95 * se)
    return out


def _close(x: float, y: float) -> bool:
    """Equal to 1e-9 relative; 1e-7 absolute because the closed-form variance of a lift can lose ~1e-16
    to cancellation when it is ~0, i.e. ~1e-8 on its square root."""
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-7)


def _compare_arrays(n, shown, y, ad, choices) -> None:
    """n, shown, choices [R, K] (-1 absent), y, ad [R]: the vectorized path equals the reference."""
    log = M.UniformLog.build(n.T, shown.T, y, ad)
    matches = M.match(log, choices.T.astype(np.int16))
    est = M.estimates(M.sufficient_stats(log, matches))
    ns, ns_se = M.nsctr(log, matches)
    ref = reference(n.tolist(), shown.tolist(), y.tolist(), ad.tolist(), choices.tolist())
    for (metric, cell, bk), want in ref.items():
        row = M.COMB if cell == "comb" else cell
        if metric == "nsctr":
            got = (ns[row], ns_se[row], ns[row] - Z95 * ns_se[row], ns[row] + Z95 * ns_se[row])
        else:
            col = M.ALL if bk is None else bk
            got = tuple(est[f"{metric}{s}"][row, col] for s in ("", "_se", "_lo", "_hi"))
        assert all(_close(g, w) for g, w in zip(got, want)), (metric, cell, bk, got, want)


def _random_log(rng: np.random.Generator, R: int, maxpool: int = 12, p_match: float = 0.5):
    n = np.where(rng.random((R, K)) < 0.8, rng.integers(1, maxpool + 1, (R, K)), 0)
    shown = np.where(n > 0, (rng.random((R, K)) * n).astype(np.int64), -1)
    other = np.where(n > 0, (rng.random((R, K)) * n).astype(np.int64), -1)
    choices = np.where(rng.random((R, K)) < p_match, shown, other)
    y = (rng.random(R) < 0.3).astype(np.int8)
    ad = rng.integers(0, max(R // 3, 1), R)
    return n, shown, y, ad, choices


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture(scope="module")
def wide(tmp_path_factory, world):
    """A 3,000-row release whose pools span every Table-4 bucket, its Evaluator, and a fixed policy."""
    rng = np.random.default_rng(1)
    req = make_requests(3000, rng, pools=WIDE_POOLS)
    test = uniform_log(req, world, rng)
    root = write_release(tmp_path_factory.mktemp("wide"), test, shards=2)
    n = pool_sizes(test)
    shown = np.stack([pc.fill_null(test.column(exposed_col(c)), -1).to_numpy() for c in COMPONENTS], axis=1)
    choices = np.where(rng.random(n.shape) < 0.5, shown, np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1))
    return root, test, choices


# ------------------------------------------------------------------------ numbers = the reference
def test_release_numbers_match_the_row_by_row_reference(wide, world):
    root, test, choices = wide
    ev = Evaluator(root, world=None)
    res = ev.evaluate(predictions_table(test.column("impression_id"), choices)).to_dict()
    n = pool_sizes(test)
    shown = np.stack([pc.fill_null(test.column(exposed_col(c)), -1).to_numpy() for c in COMPONENTS], axis=1)
    ref = reference(n.tolist(), shown.tolist(), test.column("click").to_pylist(), test.column("ad_id").to_pylist(), choices.tolist())
    keys = {"calibrated": "calibrated_sctr", "plain": "plain_sctr", "uniform": "uniform_ctr", "lift": "lift", "nsctr": "nsctr"}
    for (metric, cell, bk), want in ref.items():
        d = res["combination"] if cell == "comb" else res["components"][COMPONENTS[cell]]
        if bk is not None:
            d = list(d["buckets"].values())[bk]
        got = d[keys[metric]]
        got = tuple(nan if got[k] is None else got[k] for k in ("value", "se", "ci_low", "ci_high"))
        assert all(_close(g, w) for g, w in zip(got, want)), (metric, cell, bk, got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), R=st.integers(2, 40), p_match=st.sampled_from([0.0, 0.3, 0.7, 1.0]))
def test_property_vectorized_equals_reference_on_random_logs(seed, R, p_match):
    _compare_arrays(*_random_log(np.random.default_rng(seed), R, p_match=p_match))


def test_uniform_policy_estimates_the_mean_click_and_oracle_has_full_headroom(wide, world):
    """Not by construction: the uniform CTR is the log's mean click and an unbiased draw of the world's uniform
    value; the truth of a non-oracle policy is (v - u) / (o - u) from direct world calls; the oracle is optimal
    (no single-component change of any row raises its true CTR; the fake world is additive, so this is global)."""
    root, test, _ = wide
    ev = Evaluator(root, world=world)
    req = ev.requests
    n = pool_sizes(req)
    clicks = test.column("click").to_numpy().astype(np.float64)
    rng = np.random.default_rng(4)
    rand = np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1)
    r = ev.evaluate({"choices": rand})
    assert r.combination.uniform.value == pytest.approx(clicks.mean(), rel=1e-12)
    u = world.uniform_value(req)[0]
    assert abs(clicks.mean() - u) < 4 * math.sqrt(u * (1 - u) / len(clicks))  # the log is a uniform draw from the world
    opt, opt_ctr = world.optimum(req)
    v, o = world.policy_value(req, rand), float(np.mean(opt_ctr))
    assert (r.truth.policy, r.truth.uniform, r.truth.oracle) == pytest.approx((v, u, o), rel=1e-12)
    assert r.truth.headroom_captured == pytest.approx((v - u) / (o - u), rel=1e-9) and r.truth.headroom_captured < 0.5
    best = world.true_ctr(req, opt)
    for j in range(K):
        for k in range(int(n[:, j].max())):
            alt, has = opt.copy(), n[:, j] > k
            alt[has, j] = k
            assert (world.true_ctr(req, alt)[has] <= best[has] + 1e-12).all(), (COMPONENTS[j], k)
    ro = ev.evaluate({"choices": opt})
    assert ro.truth is not None and math.isclose(ro.truth.headroom_captured, 1.0)
    assert ro.combination.truth.value == pytest.approx(o)
    for c in ro.components:
        assert c.truth is not None and c.truth.se == 0.0


# ------------------------------------------------------------------------------------ coverage
def test_calibrated_ci_covers_the_matching_truth_in_at_least_90_of_100_logs(tmp_path, world):
    rng = np.random.default_rng(2024)
    req = make_requests(4000, rng, ads=400, pools=SMALL_POOLS)
    opt, _ = world.optimum(req)
    n = pool_sizes(req)
    first = np.where(n > 0, 0, -1)
    policy = np.where(rng.random(n.shape) < 0.6, opt, first)  # fixed: a function of the request only
    preds = {"choices": policy}
    covered = np.zeros(K + 1, int)
    for rep in range(100):
        ev = Evaluator(write_release(tmp_path / f"r{rep}", uniform_log(req, world, rng)), world=world)
        r = ev.evaluate(preds)
        for j, cell in enumerate((*r.components, r.combination)):
            covered[j] += cell.calibrated.covers(cell.truth.value)
    assert (covered >= 90).all(), dict(zip([*COMPONENTS, "combination"], covered.tolist()))


def test_bootstrap_roughly_agrees_with_the_delta_method(tmp_path, world):
    rng = np.random.default_rng(5)
    req = make_requests(5000, rng, pools=SMALL_POOLS)
    root = write_release(tmp_path / "rel", uniform_log(req, world, rng))
    r = Evaluator(root, world=None).evaluate({"choices": world.optimum(req)[0]}, bootstrap=300, seed=3)
    for cell in (*r.components, r.combination):
        for est in (cell.calibrated, cell.lift, cell.plain):
            assert 0.75 < est.boot_se / est.se < 1.33, (cell.name, est)
            assert abs(est.boot_low - est.ci_low) < 0.5 * est.se * Z95 and abs(est.boot_high - est.ci_high) < 0.5 * est.se * Z95
        assert 0.6 < cell.nsctr.boot_se / cell.nsctr.se < 1.6, (cell.name, cell.nsctr)


# --------------------------------------------------------------------------- inputs and alignment
def test_order_dtype_and_api_forms_give_identical_results(wide):
    root, test, choices = wide
    ev = Evaluator(root, world=None)
    base = ev.evaluate(predictions_table(test.column("impression_id"), choices)).to_dict()
    perm = np.random.default_rng(0).permutation(test.num_rows)
    ids = test.column("impression_id").to_numpy(zero_copy_only=False)
    shuffled = predictions_table(ids[perm].tolist(), choices[perm], pa.int64())
    for form in (shuffled, {"choices": choices}, {"choices": choices[perm], "impression_id": ids[perm]},
                 predictions_table(ids.tolist(), choices, pa.int8()), predictions_table(ids.tolist(), choices, pa.uint64())):
        got = ev.evaluate(form).to_dict()
        for k in ("components", "combination"):
            assert got[k] == base[k]
    assert (ev.check_predictions(shuffled) == choices).all()


def test_id_alignment_survives_hash_collisions(wide, monkeypatch):
    from genco_data.evaluate import predictions as ev_mod

    root, test, choices = wide
    perm = np.random.default_rng(1).permutation(test.num_rows)
    ids = test.column("impression_id").to_numpy(zero_copy_only=False)
    table = predictions_table(ids[perm].tolist(), choices[perm])
    monkeypatch.setattr(ev_mod, "_hash64", lambda a: np.zeros(len(a), np.uint64))  # every id collides
    assert (Evaluator(root, world=None).check_predictions(table) == choices).all()


def test_result_carries_versions_and_renders(wide, world):
    root, test, choices = wide
    r = Evaluator(root, world=world).evaluate({"choices": choices})
    d = r.to_dict()
    assert d["dataset_version"] == "1.0.0"
    assert d["manifest_sha256"] == hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest()
    json.dumps(d, allow_nan=False)
    text = r.format_table()
    for word in ("calibrated sCTR", "combination", "headroom captured", "Table 4", *COMPONENTS):
        assert word in text
    flat = r.metrics()
    assert flat["calibrated_sctr/combination"] == r.combination.calibrated.value and "truth/oracle" in flat
    head = r.summary_metrics()
    assert head["combination_lift"] == r.combination.lift.value and head["headroom_captured"] == r.truth.headroom_captured
    assert all(math.isfinite(v) for v in head.values())
    assert "impression_id" in Evaluator.expected_input_format and "title_choice" in Evaluator.expected_input_format


def test_no_world_means_no_truth_and_a_broken_world_is_a_one_line_error(wide):
    root, _, choices = wide
    assert Evaluator(root, world=None).evaluate({"choices": choices}).truth is None
    (root / "world").mkdir(exist_ok=True)  # present but empty
    try:
        try:
            from genco_data.synth import World  # noqa: F401
        except ImportError:
            r = Evaluator(root).evaluate({"choices": choices})
            assert r.truth is None and any("world/" in n for n in r.notes)
        else:
            with pytest.raises(GencoError) as info:
                Evaluator(root).evaluate({"choices": choices})
            assert "\n" not in str(info.value)
    finally:
        (root / "world").rmdir()


def test_a_non_uniform_test_split_is_refused(tmp_path, world):
    rng = np.random.default_rng(3)
    t = uniform_log(make_requests(50, rng), world, rng)
    i = t.schema.get_field_index("logging_policy")
    t = t.set_column(i, t.schema.field(i), pa.array(["production"] + ["uniform"] * 49))
    with pytest.raises(InvalidInputError, match="row 0: logging_policy 'production'"):
        Evaluator(write_release(tmp_path / "r", t)).evaluate({"choices": np.zeros((50, K), int)})


# ---------------------------------------------------------------------------- malformed predictions
def _bad_files(test: pa.Table, choices: np.ndarray):
    ids = test.column("impression_id").to_pylist()
    n = pool_sizes(test)
    good = predictions_table(ids, choices)
    empty_row = int(np.flatnonzero(n[:, 2] == 0)[0])  # marketing is absent somewhere
    full_row = int(np.flatnonzero(n[:, 2] > 0)[0])

    def setcol(t, name, arr):
        return t.set_column(t.schema.get_field_index(name), name, arr)

    def with_choice(j, row, value):
        ch = choices.copy()
        ch[row, j] = value
        return predictions_table(ids, ch)

    def scores(row_len_fix=None, nan_at=None):
        lists = [[0.5] * int(k) if k else None for k in n[:, 0]]
        if row_len_fix is not None:
            lists[row_len_fix] = [0.5] * (int(n[row_len_fix, 0]) + 1)
        if nan_at is not None:
            lists[nan_at] = [float("nan")] * int(n[nan_at, 0])
        return good.append_column("title_scores", pa.array(lists, pa.list_(pa.float32())))

    def float_choices():
        return setcol(good, "image_choice", pc.cast(good.column("image_choice"), pa.float64()))

    return {
        "missing rows": (good.slice(0, len(ids) - 3), r"3 test impression\(s\) missing"),
        "duplicate ids": (pa.concat_tables([good, good.slice(5, 1)]), r"1 id\(s\) duplicated \(e\.g\. 't0000005' 2 times"),
        "unknown id": (setcol(good, "impression_id", pa.array(ids[:-1] + ["nope"])), r"unknown id\(s\).*'nope'"),
        "null id": (setcol(good, "impression_id", pa.array(ids[:-1] + [None], pa.string())), r"null id"),
        "out of range": (with_choice(0, 7, 99), r"'title_choice': out of range.*row 7.*99 for a pool of"),
        "negative choice": (with_choice(1, 4, -1).set_column(2, "image_choice", pa.array(np.where(np.arange(len(ids)) == 4, -5, np.maximum(choices[:, 1], 0)), pa.int16())), r"'image_choice': out of range"),
        "null where pool nonempty": (with_choice(2, full_row, -1), r"'marketing_choice': null where the pool is non-empty"),
        "value where pool empty": (setcol(good, "marketing_choice", pa.array(np.maximum(choices[:, 2], 0), pa.int16())), rf"'marketing_choice': a value where the pool is empty.*row {empty_row}"),
        "NaN scores": (scores(nan_at=3), r"'title_scores': non-finite or null score.*row 3"),
        "wrong score length": (scores(row_len_fix=2), r"'title_scores': length differs.*row 2"),
        "float choices": (float_choices(), r"'image_choice': expected an integer index.*got double"),
        "string choices": (setcol(good, "title_choice", pc.cast(good.column("title_choice"), pa.string())), r"'title_choice': expected an integer index.*got string"),
        "integer ids": (setcol(good, "impression_id", pa.array(range(len(ids)))), r"'impression_id': expected string"),
        "missing column": (good.drop_columns(["highlight_choice"]), r"missing column\(s\) highlight_choice"),
        "extra column": (good.append_column("seed", pa.array([0] * len(ids))), r"unexpected column\(s\) seed"),
        "no rows": (good.slice(0, 0), r"no rows"),
        "empty file": (b"", r"empty file \(0 bytes\)"),
        "not parquet": (b"impression_id,title_choice\nt0,1\n", r"not a readable Parquet file"),
    }


def _write(path: Path, obj) -> Path:
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        pq.write_table(obj, path)
    return path


@pytest.fixture(scope="module")
def bad_cases(wide, tmp_path_factory):
    root, test, choices = wide
    folder = tmp_path_factory.mktemp("bad")
    return root, {name: (_write(folder / f"{i}.parquet", obj), pattern) for i, (name, (obj, pattern)) in enumerate(_bad_files(test, choices).items())}


CASES = ["missing rows", "duplicate ids", "unknown id", "null id", "out of range", "negative choice", "null where pool nonempty",
         "value where pool empty", "NaN scores", "wrong score length", "float choices", "string choices", "integer ids",
         "missing column", "extra column", "no rows", "empty file", "not parquet"]


@pytest.mark.parametrize("case", CASES)
def test_malformed_predictions_get_a_one_line_error(bad_cases, case):
    root, files = bad_cases
    path, pattern = files[case]
    with pytest.raises(PredictionsError) as info:
        Evaluator(root, world=None).evaluate(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    assert re.search(pattern, msg), msg


@pytest.mark.parametrize("case", ["missing rows", "duplicate ids", "out of range", "NaN scores", "float choices", "empty file", "not parquet"])
def test_cli_exits_2_with_one_line_and_no_traceback(bad_cases, case, capsys):
    from genco_data.cli import main

    root, files = bad_cases
    path, pattern = files[case]
    assert main(["evaluate", str(path), "--data", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("genco evaluate: error: ") and "Traceback" not in err
    assert re.search(pattern, err), err


def test_cli_success_json_and_table(wide, tmp_path, capsys):
    from genco_data.cli import main

    root, test, choices = wide
    path = _write(tmp_path / "p.parquet", predictions_table(test.column("impression_id"), choices))
    assert main(["evaluate", str(path), "--data", str(root), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["dataset_version"] == "1.0.0" and len(d["manifest_sha256"]) == 64 and set(d["components"]) == set(COMPONENTS)
    assert main(["evaluate", str(path), "--data", str(root), "--bootstrap", "20"]) == 0
    assert "bootstrap (percentile) vs reported" in capsys.readouterr().out


def test_missing_file_size_limit_and_array_errors(wide, tmp_path):
    root, test, choices = wide
    ev = Evaluator(root, world=None)
    with pytest.raises(PredictionsError, match="no such file"):
        ev.evaluate(tmp_path / "nope.parquet")
    path = _write(tmp_path / "p.parquet", predictions_table(test.column("impression_id"), choices))
    with pytest.raises(PredictionsError, match=r"over the 100-byte limit"):
        Evaluator(root, world=None, config=EvalConfig(max_bytes=100)).evaluate(path)
    with pytest.raises(PredictionsError, match="integer array"):
        ev.evaluate({"choices": choices.astype(float)})
    with pytest.raises(PredictionsError, match=r"shape \[3000, 6\]"):
        ev.evaluate({"choices": choices[:10]})
    bad = choices.copy()
    bad[np.flatnonzero(bad[:, 2] < 0)[0], 2] = 0
    with pytest.raises(PredictionsError, match="must be -1 where the pool is empty"):
        ev.evaluate({"choices": bad})


# ------------------------------------------------------------------------------ validity and stats
def test_kendall_and_pearson_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 6, 40).astype(float)  # ties on purpose
        y = x + rng.integers(0, 4, 40)
        assert math.isclose(M.kendall_tau_b(x, y), scipy_stats.kendalltau(x, y).statistic, rel_tol=1e-12)
        assert math.isclose(M.pearson(x, y), scipy_stats.pearsonr(x, y).statistic, rel_tol=1e-9)


def test_metric_validity_on_a_known_world(tmp_path, world):
    rng = np.random.default_rng(11)
    req = make_requests(20_000, rng, ads=2000, pools=SMALL_POOLS)
    root = write_release(tmp_path / "rel", uniform_log(req, FakeWorld(amp=0.06, base=(0.15, 0.25)), rng))
    rep = metric_validity(root, n_policies=50, seed=1, world=FakeWorld(amp=0.06, base=(0.15, 0.25)))
    assert rep["n_policies"] == 50 and len({p["name"] for p in rep["policies"]}) == 50
    comb = rep["levels"]["combination"]["calibrated_sctr"]  # ~450 effective rows: noisy, but unbiased and calibrated
    assert comb["pearson"] > 0.6 and comb["kendall"] > 0.45 and abs(comb["bias"]) < 0.005 and comb["ci_coverage"] >= 0.8
    for c in COMPONENTS:
        per = rep["levels"][c]["calibrated_sctr"]
        assert per["pearson"] > 0.75 and abs(per["bias"]) < 0.01 and per["ci_coverage"] >= 0.8, (c, per)
    json.dumps(rep, allow_nan=False)
    text = format_validity(rep)
    assert "pearson" in text and "kendall" in text and "combination" in text
    with pytest.raises(InvalidInputError, match="world/"):
        metric_validity(root, n_policies=5, world=None)


def test_real_simulator_world_when_available(tmp_path):
    """The simulator's own world (no skip: a broken simulator API fails here). Its max-sum optimum is checked
    against brute force — every combination of every test row whose pools allow at most 512 — and the
    evaluator's oracle figure is the mean of that optimum."""
    import itertools

    from genco_data import synth

    out = tmp_path / "raw"
    summary = synth.simulate(synth.SynthConfig(train_rows=200, test_rows=3000, seed=0), out, progress=False)
    tables = [pq.read_table(p) for p in sorted((out / "raw").glob("*.parquet"))]
    raw = pa.concat_tables(tables)
    test = raw.filter(pc.equal(raw.column("logging_policy"), "uniform"))
    test = test.filter(pc.greater_equal(test.column("day"), pa.scalar(dt.date.fromisoformat(str(summary["test_start_day"])), pa.date32())))
    root = write_release(tmp_path / "rel", test, world=out / "world")
    ev = Evaluator(root)
    req = ev.requests
    opt, opt_ctr = ev.world.optimum(req)
    opt_ctr = np.asarray(opt_ctr, dtype=np.float64)
    n = pool_sizes(req)
    small = np.flatnonzero(np.prod(np.maximum(n, 1), axis=1) <= 512)[:300]
    assert len(small) >= 50
    rows, combos = [], []
    for i in small:
        for combo in itertools.product(*[range(m) if m else [-1] for m in n[i]]):
            rows.append(i)
            combos.append(combo)
    ctr = np.asarray(ev.world.true_ctr(req.take(pa.array(rows)), np.asarray(combos, dtype=np.int64)), dtype=np.float64)
    brute = np.full(req.num_rows, -np.inf)
    np.maximum.at(brute, np.asarray(rows), ctr)
    assert np.allclose(opt_ctr[small], brute[small], rtol=0, atol=1e-12), "the optimum is not the best combination"
    r = ev.evaluate({"choices": np.asarray(opt)})
    assert r.truth is not None and r.truth.oracle == pytest.approx(float(np.mean(opt_ctr)), rel=1e-12)
    assert r.combination.truth.value == pytest.approx(float(np.mean(opt_ctr)))
    from genco_data.cli import main

    assert main(["evaluate", "--validity", "--data", str(root), "--policies", "12", "--json", "--quiet"]) == 0


def test_cli_validity_needs_a_world(wide, capsys):
    from genco_data.cli import main

    root, _, _ = wide
    assert main(["evaluate", "--validity", "--data", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "world/" in err


# ------------------------------------------------------------- effective sample size and reliability (#17)
def test_every_estimate_carries_kish_n_eff_against_a_row_by_row_count(wide, world):
    root, test, choices = wide
    r = Evaluator(root, world=world).evaluate({"choices": choices})
    n = pool_sizes(test)  # [R, K]
    shown = np.stack([pc.fill_null(test.column(exposed_col(c)), -1).to_numpy() for c in COMPONENTS], axis=1)
    match = (choices == shown) & (n > 0)
    for j, cell in enumerate(r.components):
        w = n[match[:, j], j].astype(float)
        assert cell.calibrated.n_eff == pytest.approx(w.sum() ** 2 / (w * w).sum(), rel=1e-12)
        assert cell.plain.n_eff == pytest.approx(match[:, j].sum())
        assert cell.uniform.n_eff == pytest.approx((n[:, j] > 0).sum())
        assert cell.lift.n_eff == pytest.approx(min(cell.calibrated.n_eff, cell.uniform.n_eff))
    full = ((choices == shown) | (n == 0)).all(axis=1)
    wc = np.prod(np.maximum(n[full], 1), axis=1).astype(float)
    assert r.combination.calibrated.n_eff == pytest.approx(wc.sum() ** 2 / (wc * wc).sum(), rel=1e-12)
    # NSCTR: Kish of the row weights I_m / S_m (ads with matched rows)
    ad = test.column("ad_id").to_numpy()
    j = 0
    ads, inv = np.unique(ad, return_inverse=True)
    I = np.bincount(inv, weights=(n[:, j] > 0).astype(float))
    S = np.bincount(inv[match[:, j]], minlength=len(ads)).astype(float)
    keep = S > 0
    assert r.components[0].nsctr.n_eff == pytest.approx(I[keep].sum() ** 2 / (I[keep] ** 2 / S[keep]).sum(), rel=1e-12)


def test_below_the_threshold_the_text_says_too_few_and_json_says_unreliable(wide, world):
    root, test, choices = wide
    result = Evaluator(root, world=world).evaluate({"choices": choices})
    comb = result.combination.calibrated.n_eff
    assert comb > 0
    cut = EvalConfig(min_effective_rows=comb + 1)  # the combination falls below, the components stay above
    assert min(c.calibrated.n_eff for c in result.components) > comb + 1
    r = Evaluator(root, world=world, config=cut).evaluate({"choices": choices})
    d = r.to_dict()
    assert d["min_effective_rows"] == comb + 1
    est = d["combination"]["calibrated_sctr"]
    assert est["reliable"] is False and est["value"] is not None and est["ci_low"] is not None and est["n_eff"] == pytest.approx(comb)
    assert d["combination"]["lift"]["reliable"] is False
    assert all(d["components"][c]["calibrated_sctr"]["reliable"] is True for c in COMPONENTS)
    line = next(l for l in r.format_table().splitlines() if l.startswith("combination"))
    shown = f"{comb:,.0f}" if comb >= 10 else f"{comb:.1f}"
    assert line.count(f"too few matched rows (n_eff = {shown})") == 2 and "[" not in line  # no interval printed
    title = next(l for l in r.format_table().splitlines() if l.startswith("title "))
    assert "too few" not in title and title.count("[") == 2  # reliable cells keep their intervals
    # the default threshold: the documented constant
    from genco_data.evaluate.results import MIN_EFFECTIVE_ROWS

    assert EvalConfig().min_effective_rows == MIN_EFFECTIVE_ROWS == 200
    with pytest.raises(ValueError, match="min_effective_rows"):
        EvalConfig(min_effective_rows=-1)


def test_the_text_report_never_prints_an_interval_for_an_unreliable_estimate(wide, world):
    root, test, choices = wide
    r = Evaluator(root, world=world, config=EvalConfig(min_effective_rows=400)).evaluate({"choices": choices}, bootstrap=5)
    text = r.format_table()
    flagged = [(c.name, e) for c in (*r.components, r.combination) for e in (c.calibrated, c.lift) if not e.reliable]
    flagged += [(f"{c.name} {b.label}", b.lift) for c in r.components for b in c.buckets if not b.lift.reliable]
    assert flagged, "the threshold should flag something in this small release"
    main = text.split("bootstrap (percentile)")[0]
    for c in (*r.components, r.combination):
        row = next(l for l in main.splitlines() if l.startswith(f"{c.name} "))
        assert row.count("too few matched rows (n_eff = ") == (not c.calibrated.reliable) + (not c.lift.reliable)
        assert row.count("[") == c.calibrated.reliable + c.lift.reliable  # an interval only where reliable
    buckets = text.split("lift vs uniform by candidate count")[1]
    for c in r.components:
        row = next(l for l in buckets.splitlines() if l.startswith(f"{c.name} "))
        for b in c.buckets:
            if not b.lift.reliable:
                assert f"{b.label} too few matched rows (n_eff = " in row
            else:
                assert re.search(re.escape(b.label) + r" [+-]\d+\.\d+% \+-\d+\.\d+% \(n_eff [\d,]+\)", row), (b.label, row)
    bootstrap = text.split("bootstrap (percentile)")[1].split("lift vs uniform by candidate count")[0]
    for c in (*r.components, r.combination):
        row = next(l for l in bootstrap.splitlines() if l.startswith(c.name))
        assert ("too few" in row) == (not c.calibrated.reliable or not c.lift.reliable)
