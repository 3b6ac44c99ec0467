"""The rendered board (``cards/LEADERBOARD.md``): data, never markup.

Every value that comes from a submission is text to show, not Markdown or HTML to interpret:

* :func:`md_text` puts a field on one line (control characters, Unicode line separators and bidi controls
  become spaces), turns ``& < > " '`` into HTML entities (no tag, no attribute, no entity survives) and
  backslash-escapes the Markdown punctuation that could start emphasis, code, a link, an image, a table cell
  or math mid-line (``\\ ` * _ [ ] | ~ $``);
* :func:`md_link` makes a link only of what :func:`genco_data.format.records.is_safe_link` accepts (an
  http(s) URL or a path inside the repository; ``javascript:``, ``data:`` and the like were refused when the
  submission was read) and percent-encodes every character that could end the link target.

Rendering is deterministic (same entries, same bytes). :func:`render_leaderboard` writes the board holding its
writer lock, refuses a missing entries folder and an ``--out`` that is a folder, and never replaces a board
with an empty one unless ``allow_empty``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import quote

from genco_data.errors import SubmissionError
from genco_data.format.components import COMPONENTS
from genco_data.format.records import LeaderboardEntry, MetricSummary, is_safe_link
from genco_data.fsutil import os_errors_as, write_text_atomic
from genco_data.leaderboard.entries import load_entries
from genco_data.leaderboard.rules import RANK_METRIC, TRUTH_RANK_METRIC
from genco_data.locks import writer_lock

_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
#: Markdown punctuation that can act mid-line: emphasis, code, links/images (``[``/``]``; ``(``, ``!`` only act
#: next to them), table cells, strike-through, math. (``#``, ``+``, ``-`` act only at a line start, and a cell
#: never starts a line.)
_MD_PUNCT = set("\\`*_[]|~$")
#: Characters a link target keeps as they are (everything else is percent-encoded).
_URL_SAFE = ":/?#@!$&*+,;=%-._~"

COMBINATION_NOTE = (
    "*Combination*: calibrated-sCTR lift of the whole combination (test rows where the policy's choice is the logged "
    "element on every component, weighted by Π n); few rows match on all six, so it is far noisier than the "
    "per-component lifts that *Mean lift* averages."
)


def md_text(value: object) -> str:
    """``value`` as inert Markdown/HTML text on one line (see the module docstring)."""
    text = _NOT_ONE_LINE.sub(" ", str(value))
    out = []
    for ch in text:
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in _MD_PUNCT:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def md_link(label: str, url: str) -> str:
    """``[label](url)`` for a safe link, percent-encoded; ``–`` for anything else."""
    if not is_safe_link(url):
        return "–"
    return f"[{md_text(label)}]({quote(url, safe=_URL_SAFE)})"


def _fmt(m: MetricSummary | None, pct: bool = True) -> str:
    if m is None:
        return "–"
    scale = 100 if pct else 1
    mean = f"{scale * m.mean:+.2f}" if pct else f"{m.mean:.3f}"
    if len(m.per_seed) < 2:
        return f"{mean} ± n/a (1 seed)"
    return f"{mean} ± {scale * m.std:.2f}" if pct else f"{mean} ± {m.std:.3f}"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def rank_metric(entries: list[LeaderboardEntry]) -> str:
    """The key a version's table is ranked by: on a synthetic release (every entry verified against the
    maintainer's world) the true headroom captured — the quantity the offline metrics only estimate, and at
    the default test size they estimate it too noisily to order methods; otherwise :data:`RANK_METRIC`
    (calibrated sCTR)."""
    if entries and all(e.synthetic and TRUTH_RANK_METRIC in e.metrics for e in entries):
        return TRUTH_RANK_METRIC
    return RANK_METRIC


HEADER = [
    "# Leaderboard",
    "",
    "Every number below was **recomputed** from the submitted predictions by `genco leaderboard verify`",
    "(see [LEADERBOARD_RULES.md](LEADERBOARD_RULES.md)); `genco leaderboard check` re-verifies the committed entries.",
    "Lifts are calibrated sCTR relative to the uniform test log's CTR, in %, mean ± std over seeds (sample std;",
    "n/a for one seed). *Headroom* = share of the oracle's true-CTR gain over uniform that the method captures",
    "(synthetic releases only; computed from the planted ground truth, which the maintainer keeps). Synthetic",
    "versions are ranked by headroom, others by the mean of the six per-component lifts.",
    "",
]


def render_board(entries: list[LeaderboardEntry]) -> str:
    """The board as Markdown: one table per dataset version (newest first), ranked by :func:`rank_metric`."""
    lines = list(HEADER)
    by_version: dict[str, list[LeaderboardEntry]] = {}
    for e in entries:
        by_version.setdefault(e.submission.dataset_version, []).append(e)
    if not by_version:
        lines.append("_No verified entries yet._")
    for version in sorted(by_version, key=_version_key, reverse=True):
        group = list(by_version[version])
        key = rank_metric(group)
        group.sort(key=lambda e: (-(e.metrics[key].mean if key in e.metrics else -math.inf), e.method))
        basis = "the planted truth" if key == TRUTH_RANK_METRIC else "calibrated sCTR"
        lines += [f"## Dataset version {version}", "", f"Ranked by `{key}` ({basis}; mean over seeds).", ""]
        header = ["Rank", "Method", "Mean lift", "Combination"] + list(COMPONENTS) + ["Headroom", "#Params", "Hardware", "Seeds", "Code"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * len(header)) + "|")
        for rank, e in enumerate(group, 1):
            m = e.metrics
            row = [str(rank), md_text(e.method), _fmt(m.get(RANK_METRIC)), _fmt(m.get("combination_lift"))]
            row += [_fmt(m.get(f"{c}_lift")) for c in COMPONENTS]
            row.append(_fmt(m.get(TRUTH_RANK_METRIC)) if e.synthetic else "–")
            row += [f"{e.submission.n_parameters:,}", md_text(e.submission.hardware), str(len(e.seeds)),
                    md_link("code", e.submission.code_url)]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", COMBINATION_NOTE, ""]
    return "\n".join(lines).rstrip() + "\n"


def _empty_board() -> str:
    return render_board([])


@os_errors_as(SubmissionError)
def render_leaderboard(entries_dir: Path, out: Path, allow_empty: bool = False) -> Path:
    """Render ``entries_dir/*.json`` into ``out`` (deterministic; written atomically under ``out``'s writer
    lock). Refuses: a missing entries folder; ``out`` being a folder; an empty board over an existing board
    with entries (a mistyped ``--entries`` would wipe it) unless ``allow_empty``."""
    out = Path(out)
    if out.is_dir():
        raise SubmissionError(f"{out}: --out is a folder; give the board's file name (e.g. {out / 'LEADERBOARD.md'})")
    with writer_lock(out, "genco leaderboard render"):
        entries = load_entries(entries_dir)
        text = render_board(entries)
        if not entries and not allow_empty and out.is_file():
            try:
                old = out.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                old = None
            if old != _empty_board():
                raise SubmissionError(
                    f"{entries_dir} holds no entries and {out} is a board with entries: not replaced "
                    "(check --entries; pass --allow-empty to write an empty board)"
                )
        try:
            write_text_atomic(out, text)
        except IsADirectoryError:
            raise SubmissionError(f"{out}: --out is a folder") from None
        except OSError as exc:
            raise SubmissionError(f"{out}: cannot write the board ({exc.strerror or exc})") from None
    return out


__all__ = ["md_text", "md_link", "rank_metric", "render_board", "render_leaderboard", "COMBINATION_NOTE"]
