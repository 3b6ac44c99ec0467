"""The simulator's ground truth on synthetic releases, as the evaluator reads it: the World from
``<release>/world/`` (through the release folder, never through the model or the adapters), the full test
split as the World's ``requests``, and the true values an evaluation reports beside its estimates — the
policy's exact CTR, the uniform policy's, the oracle's, the headroom captured, and per component the CTR of
"the policy's choice on j, uniform on the others" on the rows having j.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genco_data.evaluate import metrics as M
from genco_data.evaluate.results import Truth, TruthSummary
from genco_data.format.components import COMPONENTS, CONFIGS
from genco_data.release import Release

K = len(COMPONENTS)
_AUTO = "auto"


def load_world(release: Release, world: Any, notes: list[str]) -> Any:
    """The World to score against: ``world`` itself unless it is ``"auto"``; then ``<release>/world/``
    loaded by ``genco_data.synth.World`` when present (a line in ``notes`` when synth is unavailable), else None."""
    if not (isinstance(world, str) and world == _AUTO):
        return world
    if release.world_dir is not None:
        try:
            from genco_data.synth import World
        except ImportError as exc:
            notes.append(f"world/ present but genco_data.synth.World is unavailable ({exc}); no truth")
        else:
            return World.load(release.world_dir)
    return None


def read_requests(release: Release) -> pa.Table:
    """The full test split (every impressions column), as the World's ``requests``."""
    tables = [pq.read_table(p) for p in release.data_files(CONFIGS[0], "test")]
    return pa.concat_tables(tables).combine_chunks()


@dataclass(eq=False)
class WorldTruth:
    """The true values of policies on one test split; the uniform and oracle values are cached."""

    world: Any  # the World interface: policy_value, uniform_value, component_value, optimum
    requests: pa.Table  # the full test split (read_requests)
    log: M.UniformLog
    samples: int  # Monte-Carlo draws per row (EvalConfig.truth_samples)
    _cache: dict[Any, Any] = field(default_factory=dict)

    #: Progress steps of :meth:`truth`: the policy, uniform, the oracle, then each component.
    STEPS = 3 + K

    def uniform_truth(self, j: int | None, seed: int) -> tuple[float, float]:
        """The uniform policy's true CTR on all rows (j None) or on the rows having component j (cached)."""
        key = ("uniform", j, seed)
        if key not in self._cache:
            req = self.requests if j is None or self.log.present[j].all() else self.requests.filter(pa.array(self.log.present[j]))
            v, se = self.world.uniform_value(req, n_samples=self.samples, seed=seed)
            self._cache[key] = (float(v), float(se))
        return self._cache[key]

    def truth(self, choices: np.ndarray, seed: int, bar: Any = None) -> tuple[TruthSummary, dict[int, Truth]]:
        """choices int [K, R] -> the summary (policy, uniform, oracle, headroom) and the Truth of each cell
        (row of the per-cell arrays: components 0..K-1, ``metrics.COMB``); components no row has are left out.
        ``bar`` (a tqdm bar, optional) advances by :data:`STEPS` in all."""
        world, req, log = self.world, self.requests, self.log

        def step(what: str) -> None:
            if bar is not None:
                bar.set_postfix_str(what)

        def done() -> None:
            if bar is not None:
                bar.update()

        ch = np.ascontiguousarray(choices.T, dtype=np.int64)  # [R, K]
        step("truth: policy")
        policy = float(world.policy_value(req, ch))
        done()
        step("truth: uniform")
        uni, uni_se = self.uniform_truth(None, seed)
        done()
        step("truth: oracle")
        if "oracle" not in self._cache:
            self._cache["oracle"] = float(np.mean(world.optimum(req)[1]))
        oracle = self._cache["oracle"]
        done()
        head = (policy - uni) / (oracle - uni) if oracle > uni else float("nan")
        truths = {M.COMB: Truth(policy, 0.0, uni, uni_se)}
        for j in range(K):
            mask = log.present[j]
            step(f"truth: {COMPONENTS[j]}")
            if mask.any():
                sub, sub_ch = (req, ch) if mask.all() else (req.filter(pa.array(mask)), ch[mask])
                v, se = world.component_value(sub, sub_ch, j, n_samples=self.samples, seed=seed)
                truths[j] = Truth(float(v), float(se), *self.uniform_truth(j, seed))
            done()
        return TruthSummary(policy, uni, uni_se, oracle, head), truths


__all__ = ["WorldTruth", "load_world", "read_requests"]
