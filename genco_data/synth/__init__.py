"""The simulator with planted ground truth — the embedded default data source.

``simulate(SynthConfig(...), out)`` writes raw impressions (``out/raw/part-NNNNN.parquet``, the impressions
schema; production-logged train days, then uniform-logged test days) and the ground truth
(``out/world/``), which :class:`World` loads and queries: exact CTR of any combination, the exact optimum
per request, the true value of a policy, of the uniform policy, and of per-component policies.

    config.py      ``SynthConfig``: every knob, checked when built; ``PRESETS`` (default, benchmark, learnable, sparse)
    world.py       the model (ground truth): ``World`` — exact CTR, optimum by max-sum, policy values
    storage.py     the ``world/`` folder on disk: world.npz + world.json, no pickle, checksummed
    draw.py        how a world is drawn from a seed: id salt, random streams, hashed ids, latent parameters
    catalog.py     the observable structure: traffic, queries, pools over days (``build`` draws it and the world);
                   the Table-1 arithmetic
    elements.py    which catalog element a pool slot shows: Zipf catalogs sized for Table 1, uniform, per slot
    table1.py      the paper's Table 1 as targets, and an independent computation of its four rows from Parquet
    logging.py     the logging policies: requests, production softmax / uniform choices, propensities
    simulation.py  ``simulate``: rows as Arrow tables, streamed into raw Parquet parts, then the world
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    "SynthConfig": "genco_data.synth.config",
    "simulate": "genco_data.synth.simulation",
    "World": "genco_data.synth.world",
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
