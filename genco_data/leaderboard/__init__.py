"""The leaderboard: submissions verified by recomputation, never by trust; a board that is data, never markup.

    rules.py    limits, the submission file, seed and predictions-file rules, per-seed summary numbers
    entries.py  verified entries on disk: collision-free ids, reading, writing one without losing another
    verify.py   verify_submission: recompute every metric with the Evaluator (the truth from the maintainer's world)
    board.py    render_board / render_leaderboard: escaped Markdown, deterministic, never wiped by mistake
    check.py    check_entries (``genco leaderboard check``): re-verify every committed entry

A submission (``records.Submission``) names a release (version + manifest sha256) and one predictions Parquet
per seed with its sha256. ``verify_submission`` writes a ``records.LeaderboardEntry`` into ``cards/leaderboard/``;
``render_leaderboard`` turns the entries into ``cards/LEADERBOARD.md`` (same entries -> same bytes).
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_RULES = ("MIN_SEEDS", "RANK_METRIC", "TRUTH_RANK_METRIC", "MAX_SUBMISSION_BYTES", "MAX_PREDICTIONS_BYTES", "MAX_ENTRY_BYTES",
          "REPORT_TOLERANCE", "load_submission", "check_submission_rules", "check_predictions_file", "summary_from_result")
_EXPORTS = {
    **{n: "genco_data.leaderboard.rules" for n in _RULES},
    **{n: "genco_data.leaderboard.entries" for n in ("entry_id", "entry_filename", "load_entries", "load_entry")},
    "verify_submission": "genco_data.leaderboard.verify",
    **{n: "genco_data.leaderboard.board" for n in ("rank_metric", "render_board", "render_leaderboard", "md_text")},
    "check_entries": "genco_data.leaderboard.check",
    "sha256_file": "genco_data.fsutil",
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
