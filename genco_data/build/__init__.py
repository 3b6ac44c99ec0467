"""Raw logs -> a release: read, validate, order, write, count.

    validate.py   the per-batch rules: vectorized, every failing row gets a named reason
    stats.py      the Table-1 statistics of a split
    builder.py    ``build_release``: plan the inputs, read Parquet/JSONL/CSV, spill/replay by day, shards,
                  rejects, sample, manifest

The builder never imports the card: :func:`genco_data.pipeline.build_release` (``genco_data.build_release``)
is build-then-card, the call users want; ``genco_data.build.build_release`` writes everything but the card.
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    **{n: "genco_data.build.builder" for n in (
        "BuildConfig", "BuildResult", "build_release", "FORMATS", "ROW_GROUP_MAX_BYTES", "SHARD_MAX_BYTES",
        "MAX_FILE_BYTES", "row_bytes")},
    **{n: "genco_data.build.validate" for n in ("REASONS", "validate", "row_reasons", "coerce", "check_schema")},
    **{n: "genco_data.build.stats" for n in ("StatsAccumulator", "release_stats", "format_stats", "files_stats")},
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
