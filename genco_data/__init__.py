"""genco-data: the release-and-loader package of the GenCO creative-optimization dataset.

The folder tree is the pipeline (see each package's docstring)::

    format/     the contract: components, pydantic records, Arrow schema / HF Features / JSON Schema
    synth/      the simulator with planted ground truth (the embedded default data source)
    build/      raw logs -> validated, sharded Parquet, rejects, statistics, manifest
    release.py  the release folder: layout, manifest, open, verify
    card/       the dataset card and its figures;  pipeline.py: build, then card
    load/       torch adapters: padding to 15 candidates, vocabularies, Batch, datasets, loader
    evaluate/   calibrated sCTR with intervals, truth on synthetic releases, validity study, text report
    interop.py  Open Bandit Pipeline's bandit_feedback (to_obp) and its estimators
    leaderboard/  submissions verified by recomputation, the board, the check of committed entries
    board_page.py (the board as a static Space), hub.py, cli.py

The names users call are here, imported on first use: ``import genco_data`` imports nothing heavy and never
torch (only :mod:`genco_data.load`'s torch modules do, when ``loader`` / ``Batch`` are asked for).
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

__version__ = "0.1.0"

_EXPORTS = {
    "COMPONENTS": "genco_data.format.components",
    "PAD_TO": "genco_data.format.components",
    "GencoError": "genco_data.errors",
    "SynthConfig": "genco_data.synth.config",
    "simulate": "genco_data.synth.simulation",
    "World": "genco_data.synth.world",
    "BuildConfig": "genco_data.build.plan",
    "build_release": "genco_data.pipeline",
    "Release": "genco_data.release",
    "load_release": "genco_data.release",
    "verify_release": "genco_data.release",
    "Batch": "genco_data.load.batch",
    "Vocabularies": "genco_data.load.vocab",
    "loader": "genco_data.load.datasets",
    "Evaluator": "genco_data.evaluate.evaluator",
    "to_obp": "genco_data.interop",
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = ["__version__", *_EXPORTS]
