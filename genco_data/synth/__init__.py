"""The simulator with planted ground truth — the embedded default data source.

``simulate(SynthConfig(...), out)`` writes raw impressions (``out/raw/part-NNNNN.parquet``, the impressions
schema; production-logged train days, then uniform-logged test days) and the ground truth
(``out/world/``), which :class:`World` loads and queries: exact CTR of any combination, the exact optimum
per request, the true value of a policy, of the uniform policy, and of per-component policies.
The model is stated in :mod:`genco_data.synth.world`, the logging in :mod:`genco_data.synth.logging`.
"""
from __future__ import annotations

from genco_data.synth.config import SynthConfig
from genco_data.synth.logging import simulate
from genco_data.synth.world import World

__all__ = ["SynthConfig", "simulate", "World"]
