"""Raw logs -> a release: read, validate, order, write, count.

    plan.py       ``BuildConfig`` and the plan: the input files in the sources, the world/ to carry, the test day
    readers.py    Parquet / JSONL / CSV -> Arrow record batches, as read; file-level read errors
    coerce.py     file level: column names and types, type coercion, text parsing, UTF-8
    validate.py   the per-batch rules: vectorized, every failing row gets a named reason
    ingest.py     pass 1, per task: read, check (``check_batch``), spill good rows by (split, day) and ids
    unique.py     pass 2, per partition: exact impression-id uniqueness in bounded memory
    layout.py     chronological order and the row-group / shard cuts, from the row sizes alone
    encode.py     pass 3, per shard: the Parquet file, the shard's statistics and sample candidates
    writer.py     the release's Parquet settings, row sizes, the sample
    rejects.py    ``rejects/``: rejected rows read back as their reader produced them
    sketch.py     distinct counts: exact below a threshold, Apache DataSketches HLL above
    stats.py      the Table-1 statistics of a split (mergeable across workers)
    passes.py     the passes on an engine, results in job order
    disk.py       disk space: refuse a build that cannot fit, one line when the disk fills
    engines/      where jobs run: ``local`` (process pool) or ``ray`` (Ray Data)
    builder.py    ``build_release``: the atomic build (lock, temporary folder, move into place), manifest

The builder never imports the card: :func:`genco_data.pipeline.build_release` (``genco_data.build_release``)
is build-then-card, the call users want; ``genco_data.build.build_release`` writes everything but the card.
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    "BuildConfig": "genco_data.build.plan",
    **{n: "genco_data.build.builder" for n in ("BuildResult", "build_release")},
    **{n: "genco_data.build.plan" for n in ("FORMATS", "ROW_GROUP_MAX_BYTES", "SHARD_MAX_BYTES", "MAX_FILE_BYTES")},
    "row_bytes": "genco_data.build.writer",
    "auto_rows_per_shard": "genco_data.build.plan",
    "check_batch": "genco_data.build.ingest",
    "DistinctCounter": "genco_data.build.sketch",
    **{n: "genco_data.build.validate" for n in ("REASONS", "validate", "row_reasons")},
    **{n: "genco_data.build.coerce" for n in ("coerce", "check_schema")},
    **{n: "genco_data.build.stats" for n in ("StatsAccumulator", "release_stats", "format_stats", "files_stats")},
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
