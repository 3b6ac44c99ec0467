"""Interoperability with the field's off-policy-evaluation library, Open Bandit Pipeline (OBP).

:func:`to_obp` turns one component of a release's uniform-logged test split into OBP's ``bandit_feedback``
dictionary; :func:`action_dist` turns a predictions file into OBP's ``action_dist`` for that component;
:func:`obp_estimates` runs OBP's IPW, SNIPW, DR and Switch-DR on both (``pip install 'genco-data[obp]'``;
the other two functions need no OBP)::

    >>> from genco_data.interop import to_obp, action_dist, obp_estimates       # doctest: +SKIP
    >>> feedback = to_obp("release", "title")                                   # doctest: +SKIP
    >>> from obp.ope import OffPolicyEvaluation, SelfNormalizedInverseProbabilityWeighting as SNIPW  # doctest: +SKIP
    >>> ope = OffPolicyEvaluation(bandit_feedback=feedback, ope_estimators=[SNIPW()])                 # doctest: +SKIP
    >>> ope.estimate_policy_values(action_dist=action_dist("release", "preds.parquet", "title"))      # doctest: +SKIP

**The mapping.** One round per test impression whose ad has the component (rows without it are left out),
in the evaluator's test order. OBP needs one action set for all rounds; here every round has its own pool, so
the *action is the index into the row's pool* (what ``<c>_exposed`` and ``<c>_choice`` already are):
``n_actions`` = the largest pool, and a round with a pool of ``n`` only ever logs or chooses actions ``< n``.
Under uniform logging ``pscore = 1/n``. ``position`` is 0 (one slot per component). ``context`` is float64
[n_rounds, 4]: user age bucket, user gender code, category (dense index over the sorted categories), each −1
where null, and the pool size ``n``.

**Why SNIPW is our calibrated sCTR.** For a deterministic policy ``action_dist`` is one-hot at its choice, so
OBP's importance weight is ``w = π(a|x) / pscore = n · 1[choice = shown]`` and
``SNIPW = Σ w r / Σ w = Σ n y 1[match] / Σ n 1[match]`` — the paper's Algorithm 1 (calibrated sCTR of the
component, :mod:`genco_data.evaluate.metrics`). IPW divides by ``n_rounds`` instead of ``Σ w`` (unbiased,
not normalised). ``tests/test_interop.py`` checks both against the evaluator.

Extra keys beside OBP's (OBP ignores them): ``impression_id`` (str [n_rounds]) and ``n_candidates``
(int64 [n_rounds]). ``action_dist`` is dense, ``n_rounds × n_actions`` float64: refused (one line) above
:data:`MAX_ACTION_DIST_CELLS`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genco_data.errors import InvalidInputError
from genco_data.evaluate.evaluator import Evaluator
from genco_data.format.components import COMPONENTS, CONFIGS, PAD_TO

#: Largest dense ``action_dist`` / reward table built (rounds × actions), 2**27 cells = 1 GiB of float64.
MAX_ACTION_DIST_CELLS = 1 << 27
#: The context columns of :func:`to_obp`, in order.
CONTEXT_COLUMNS = ("user_age", "user_gender", "category", "n_candidates")
#: Switch-DR's default threshold on the importance weight w = n: pools above the loader's PAD_TO use the
#: reward model only.
DEFAULT_SWITCH_TAU = float(PAD_TO)


def _evaluator(release: str | Path | Evaluator) -> Evaluator:
    return release if isinstance(release, Evaluator) else Evaluator(release)


def _component(component: str) -> int:
    if component not in COMPONENTS:
        raise InvalidInputError(f"unknown component {component!r}; expected one of {', '.join(COMPONENTS)}")
    return COMPONENTS.index(component)


def _rounds(ev: Evaluator, j: int) -> np.ndarray:
    rows = np.flatnonzero(ev.log.present[j])
    if rows.size == 0:
        raise InvalidInputError(f"{ev.release.root}: no test impression has component {COMPONENTS[j]!r}; nothing to export")
    return rows


def _context(ev: Evaluator) -> np.ndarray:
    """float64 [R, 3] (age, gender, category index; −1 where null) in the evaluator's test order."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = ev.release.data_files(CONFIGS[0], "test")
    table = pa.concat_tables([pq.read_table(f, columns=["impression_id", "user_age", "user_gender", "category"]) for f in files])
    if not table.column("impression_id").cast(pa.large_string()).combine_chunks().equals(ev.split.ids):
        raise InvalidInputError(f"{ev.release.root}: the test shards changed while reading them (impression ids differ)")
    cats = table.column("category").combine_chunks()
    values = pc.unique(cats.drop_null())
    order = pc.sort_indices(values)
    sorted_values = values.take(order)
    code = pc.fill_null(pc.index_in(cats, value_set=sorted_values), -1).to_numpy(zero_copy_only=False)
    cols = [pc.fill_null(table.column(c), -1).to_numpy().astype(np.float64) for c in ("user_age", "user_gender")]
    return np.stack([*cols, code.astype(np.float64)], axis=1)


def to_obp(release: str | Path | Evaluator, component: str) -> dict[str, Any]:
    """OBP's ``bandit_feedback`` for ``component`` of the release's uniform test split (see the module
    docstring): ``n_rounds``, ``n_actions``, ``action`` int64 [n_rounds], ``reward`` int64 (click),
    ``pscore`` float64 (1/n), ``position`` int64 (0), ``context`` float64 [n_rounds, 4], plus
    ``impression_id`` and ``n_candidates``. ``release`` may be an :class:`Evaluator` (reused: no second read)."""
    j = _component(component)
    ev = _evaluator(release)
    rows = _rounds(ev, j)
    n = ev.log.n[j, rows].astype(np.int64)
    context = np.concatenate([_context(ev)[rows], n[:, None].astype(np.float64)], axis=1)
    return {
        "n_rounds": int(rows.size),
        "n_actions": int(n.max()),
        "action": ev.log.shown[j, rows].astype(np.int64),
        "reward": ev.log.y[rows].astype(np.int64),
        "pscore": 1.0 / n,
        "position": np.zeros(rows.size, np.int64),
        "context": context,
        "impression_id": np.asarray(ev.split.ids.take(rows).to_pylist(), dtype=object),
        "n_candidates": n,
    }


def _dense_shape(n_rounds: int, n_actions: int, component: str) -> tuple[int, int, int]:
    if n_rounds * n_actions > MAX_ACTION_DIST_CELLS:
        raise InvalidInputError(
            f"{component}: a dense OBP action_dist would hold {n_rounds:,} rounds x {n_actions:,} actions "
            f"= {n_rounds * n_actions:,} cells, over the {MAX_ACTION_DIST_CELLS:,}-cell limit (MAX_ACTION_DIST_CELLS)"
        )
    return n_rounds, n_actions, 1


def action_dist(release: str | Path | Evaluator, predictions: Any, component: str) -> np.ndarray:
    """OBP's ``action_dist`` float64 [n_rounds, n_actions, 1] of a deterministic policy: one-hot at its
    choice for ``component``, rounds as in :func:`to_obp`. ``predictions`` is anything
    :meth:`Evaluator.check_predictions` takes (a Parquet path, a table, a dict of arrays), checked the same way."""
    j = _component(component)
    ev = _evaluator(release)
    rows = _rounds(ev, j)
    choice = ev.check_predictions(predictions)[rows, j]  # [n_rounds], 0 <= choice < n
    n_actions = int(ev.log.n[j, rows].max())
    dist = np.zeros(_dense_shape(rows.size, n_actions, component))
    dist[np.arange(rows.size), choice, 0] = 1.0
    return dist


def mean_reward_by_action(feedback: dict[str, Any]) -> np.ndarray:
    """A context-free reward model for DR: ``q̂(x, a)`` = the logged mean click of pool index ``a`` (the
    overall mean where ``a`` was never logged) -> float64 [n_rounds, n_actions, 1], the same for every round."""
    a, r, k = feedback["action"], feedback["reward"].astype(np.float64), feedback["n_actions"]
    shown = np.bincount(a, minlength=k).astype(np.float64)
    clicks = np.bincount(a, weights=r, minlength=k)
    q = np.where(shown > 0, clicks / np.maximum(shown, 1), r.mean())
    shape = _dense_shape(feedback["n_rounds"], k, "reward model")
    return np.broadcast_to(q[None, :, None], shape).copy()


def obp_estimates(release: str | Path | Evaluator, predictions: Any, component: str, *,
                  estimated_rewards: np.ndarray | None = None, switch_tau: float = DEFAULT_SWITCH_TAU) -> dict[str, float]:
    """OBP's IPW, SNIPW, DR and Switch-DR (threshold ``switch_tau`` on w = n) of the policy in
    ``predictions`` on ``component`` -> ``{"ipw", "snipw", "dr", "switch-dr"}``. ``estimated_rewards``
    [n_rounds, n_actions, 1] is DR's reward model (default :func:`mean_reward_by_action`). Needs ``obp``."""
    try:
        from obp.ope import (
            DoublyRobust,
            InverseProbabilityWeighting,
            OffPolicyEvaluation,
            SelfNormalizedInverseProbabilityWeighting,
            SwitchDoublyRobust,
        )
    except ImportError as exc:
        raise InvalidInputError(f"obp_estimates needs Open Bandit Pipeline: pip install 'genco-data[obp]' ({exc})") from None
    ev = _evaluator(release)
    feedback = to_obp(ev, component)
    dist = action_dist(ev, predictions, component)
    q = mean_reward_by_action(feedback) if estimated_rewards is None else np.asarray(estimated_rewards, dtype=np.float64)
    ope = OffPolicyEvaluation(bandit_feedback=feedback, ope_estimators=[
        InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(), DoublyRobust(), SwitchDoublyRobust(tau=switch_tau)])
    values = ope.estimate_policy_values(action_dist=dist, estimated_rewards_by_reg_model=q)
    return {name: float(v) for name, v in values.items()}


__all__ = [
    "CONTEXT_COLUMNS",
    "DEFAULT_SWITCH_TAU",
    "MAX_ACTION_DIST_CELLS",
    "action_dist",
    "mean_reward_by_action",
    "obp_estimates",
    "to_obp",
]
