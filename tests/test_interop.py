"""genco_data.interop: Open Bandit Pipeline's bandit_feedback from a release, and OBP's estimators on it.

The anchor is the paper's own metric: for a deterministic policy OBP's SNIPW is Σ n y 1[match] / Σ n 1[match],
i.e. our calibrated sCTR of the component, and IPW the same numerator over n_rounds."""
from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from eval_factories import WIDE_POOLS, FakeWorld, make_requests, pool_sizes, predictions_table, uniform_log, write_release
from genco_data.errors import InvalidInputError, PredictionsError
from genco_data.evaluate.evaluator import Evaluator
from genco_data.format.components import COMPONENTS, exposed_col
from genco_data.interop import action_dist, mean_reward_by_action, obp_estimates, to_obp


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 4,000-row uniform test split in two shards, its Evaluator, and a policy matching the log half the time."""
    rng = np.random.default_rng(11)
    test = uniform_log(make_requests(4000, rng, pools=WIDE_POOLS), FakeWorld(), rng)
    root = write_release(tmp_path_factory.mktemp("obp"), test, shards=2)
    n = pool_sizes(test)
    shown = np.stack([pc.fill_null(test.column(exposed_col(c)), -1).to_numpy() for c in COMPONENTS], axis=1)
    choices = np.where(rng.random(n.shape) < 0.5, shown, np.where(n > 0, (rng.random(n.shape) * n).astype(np.int64), -1))
    preds = predictions_table(test.column("impression_id"), choices)
    return root, test, Evaluator(root), preds, choices


@pytest.mark.parametrize("component", ["title", "marketing", "structure_attribute"])
def test_bandit_feedback_is_the_components_uniform_log(case, component):
    root, test, ev, _, _ = case
    j = COMPONENTS.index(component)
    fb = to_obp(ev, component)
    n = pool_sizes(test)[:, j]
    has = n > 0
    shown = pc.fill_null(test.column(exposed_col(component)), -1).to_numpy()
    assert fb["n_rounds"] == has.sum() and fb["n_actions"] == n.max()
    assert np.array_equal(fb["action"], shown[has]) and np.array_equal(fb["reward"], test.column("click").to_numpy()[has])
    assert np.allclose(fb["pscore"], 1 / n[has]) and not fb["position"].any()
    assert fb["context"].shape == (has.sum(), 4) and np.array_equal(fb["context"][:, 3], n[has])
    assert np.array_equal(fb["context"][:, 0], test.column("user_age").to_numpy()[has])
    assert list(fb["impression_id"]) == test.column("impression_id").to_numpy(zero_copy_only=False)[has].tolist()
    assert all((fb["action"] < fb["n_candidates"]) & (fb["action"] >= 0))
    dist = action_dist(ev, case[3], component)
    assert dist.shape == (fb["n_rounds"], fb["n_actions"], 1) and np.allclose(dist.sum(axis=1), 1)
    assert np.array_equal(dist[:, :, 0].argmax(1), case[4][has, j])


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_obp_snipw_equals_our_calibrated_sctr_and_ipw_its_unnormalised_form(case, component):
    ope = pytest.importorskip("obp.ope", reason="Open Bandit Pipeline not installed: pip install 'genco-data[obp]'")
    root, test, ev, preds, choices = case
    fb = to_obp(ev, component)
    dist = action_dist(ev, preds, component)
    result = ev.evaluate(preds)
    cell = next(c for c in result.components if c.name == component)
    snipw = ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
        reward=fb["reward"], action=fb["action"], pscore=fb["pscore"], action_dist=dist, position=fb["position"])
    assert snipw == pytest.approx(cell.calibrated.value, rel=1e-12, abs=1e-15)
    j = COMPONENTS.index(component)
    n = pool_sizes(test)[:, j]
    has = n > 0
    match = choices[has, j] == fb["action"]
    ipw = ope.InverseProbabilityWeighting().estimate_policy_value(
        reward=fb["reward"], action=fb["action"], pscore=fb["pscore"], action_dist=dist, position=fb["position"])
    assert ipw == pytest.approx((n[has] * fb["reward"] * match).sum() / fb["n_rounds"], rel=1e-12)


def test_the_four_obp_estimators_run_per_component(case):
    pytest.importorskip("obp.ope", reason="Open Bandit Pipeline not installed: pip install 'genco-data[obp]'")
    root, test, ev, preds, _ = case
    result = ev.evaluate(preds)
    for cell in result.components:
        est = obp_estimates(ev, preds, cell.name)
        assert set(est) == {"ipw", "snipw", "dr", "switch-dr"} and all(np.isfinite(v) for v in est.values())
        assert est["snipw"] == pytest.approx(cell.calibrated.value, rel=1e-12)
        # DR with the per-action mean-click model stays in a plausible CTR range around the estimate
        assert 0.0 <= est["dr"] <= 1.0 and abs(est["dr"] - est["snipw"]) < 0.05
    # Switch-DR with a threshold above every weight is DR; with a threshold below every weight it is the model alone
    fb = to_obp(ev, "title")
    q = mean_reward_by_action(fb)
    big = obp_estimates(ev, preds, "title", switch_tau=1e9)
    assert big["switch-dr"] == pytest.approx(big["dr"], rel=1e-12)
    small = obp_estimates(ev, preds, "title", switch_tau=0.5, estimated_rewards=q)
    dm = float((action_dist(ev, preds, "title") * q).sum(axis=1).mean())
    assert small["switch-dr"] == pytest.approx(dm, rel=1e-12)


def test_interop_errors_are_one_line(case, tmp_path):
    root, test, ev, preds, _ = case
    with pytest.raises(InvalidInputError, match="unknown component 'logo'"):
        to_obp(ev, "logo")
    with pytest.raises(PredictionsError, match="missing"):
        action_dist(ev, preds.slice(0, 10), "title")
    import genco_data.interop as interop

    old = interop.MAX_ACTION_DIST_CELLS
    try:
        interop.MAX_ACTION_DIST_CELLS = 10
        with pytest.raises(InvalidInputError, match="over the 10-cell limit"):
            action_dist(ev, preds, "title")
    finally:
        interop.MAX_ACTION_DIST_CELLS = old
