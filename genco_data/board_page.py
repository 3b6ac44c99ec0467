"""The leaderboard as a static Hugging Face Space: ``genco leaderboard render --html DIR``.

:func:`write_space` reads the verified entries (:func:`genco_data.leaderboard.load_entries`) and writes::

    DIR/README.md              the Space's card: YAML front matter with ``sdk: static`` (app_file index.html)
    DIR/index.html             the page: one sortable table per dataset version, a per-component lift chart
                               with intervals (inline SVG), the rules; every style and script inline
    DIR/entries.json           the numbers the page shows (method, seeds, mean / std / per-seed of each metric)
    DIR/LEADERBOARD_RULES.md   the full rules, when the entries folder has them beside it

**No network.** The page loads nothing: no external script, style, font or image, and a
Content-Security-Policy (``default-src 'none'``; the one inline script allowed by its sha256) keeps it so —
an injected ``<script>`` would not run even if escaping failed.

**Entries are untrusted data.** Every field goes through :func:`html.escape` (text and attributes); a
``code_url`` becomes a link only when it is ``http(s)://`` (anything else is shown as text); numbers are
formatted from floats, never pasted. No JSON is embedded in the page (a ``</script>`` inside a string could
close the script): the sort reads ``data-v`` attributes.

**Numbers.** Cells are mean ± std over seeds in % (``n/a (1 seed)`` for the std of one seed). The chart shows,
per component and method, the mean lift over seeds (dot), each seed's value (small dots: training
randomness), and the evaluator's 95 % interval of the lift averaged over seeds (bar: the test split's
sampling noise). Same entries → same bytes.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from genco_data.leaderboard.board import rank_metric
from genco_data.leaderboard.entries import load_entries
from genco_data.leaderboard.rules import MIN_SEEDS, RANK_METRIC, REPORT_TOLERANCE, TRUTH_RANK_METRIC
from genco_data.errors import InvalidInputError
from genco_data.format.components import COMPONENTS
from genco_data.fsutil import write_text_atomic
from genco_data.format.records import LeaderboardEntry, MetricSummary

SPACE_README = "README.md"
INDEX = "index.html"
ENTRIES_JSON = "entries.json"
RULES = "LEADERBOARD_RULES.md"
SPACE_TITLE = "GenCO creative-optimization leaderboard"
_HTTP = re.compile(r"^https?://[^\s\"'<>`]+$", re.ASCII)

#: The page's script: sort a table by the clicked header (numbers by data-v, text otherwise); the header
#: carries aria-sort. It is the only script, allowed by hash in the Content-Security-Policy.
_SCRIPT = """
document.querySelectorAll('table.board').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var numeric = th.getAttribute('data-type') === 'number';
      function key(row) {
        var cell = row.cells[col];
        if (!numeric) { return cell.textContent.trim().toLowerCase(); }
        var v = parseFloat(cell.getAttribute('data-v'));
        return isNaN(v) ? null : v;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === y) { return 0; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        return (x < y ? -1 : 1) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1400px; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } p.note { color: #555; font-size: 0.9rem; }
table.board { border-collapse: collapse; font-size: 0.82rem; width: 100%; }
table.board th, table.board td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.45rem; text-align: right; white-space: nowrap; }
table.board th { cursor: pointer; background: #f4f6f8; position: sticky; top: 0; user-select: none; }
table.board th[aria-sort=ascending]::after { content: " \\25B2"; } table.board th[aria-sort=descending]::after { content: " \\25BC"; }
table.board td.text, table.board th.text { text-align: left; white-space: normal; }
table.board td.method { min-width: 16rem; font-weight: 600; } table.board td.hardware { min-width: 12rem; font-size: 0.75rem; color: #555; }
.scroll { overflow-x: auto; } pre.rules { white-space: pre-wrap; background: #f7f7f7; padding: 1rem; font-size: 0.8rem; }
svg text { font-family: system-ui, sans-serif; }
"""


# ------------------------------------------------------------------------------------------ helpers
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct_cell(m: MetricSummary | None, seeds: int) -> tuple[str, str]:
    """(cell text, data-v) of a metric in % — mean ± std, ``n/a (1 seed)`` for one seed's std."""
    mean = _finite(m.mean) if m is not None else None
    if mean is None:
        return "–", ""
    std = _finite(m.std)
    spread = "n/a (1 seed)" if seeds < 2 else ("–" if std is None else f"{100 * std:.2f}")
    return f"{100 * mean:+.2f} ± {spread}", repr(mean)


def _code_cell(url: str) -> str:
    if _HTTP.match(url):
        return f'<a href="{_e(url)}" rel="noopener noreferrer nofollow">code</a>'
    return _e(url)


def _columns(group: list[LeaderboardEntry]) -> list[tuple[str, str]]:
    """(metric key, header) of the numeric columns of a version's table."""
    cols = []
    if all(e.synthetic for e in group):
        cols.append((TRUTH_RANK_METRIC, "Headroom captured"))
    cols += [(RANK_METRIC, "Mean component lift"), ("combination_lift", "Combination lift")]
    cols += [(f"{c}_lift", c) for c in COMPONENTS]
    return cols


def _ranked(group: list[LeaderboardEntry]) -> tuple[str, list[LeaderboardEntry]]:
    key = rank_metric(group)

    def score(e: LeaderboardEntry) -> float:
        m = e.metrics.get(key)
        v = _finite(m.mean) if m is not None else None
        return -math.inf if v is None else v

    return key, sorted(group, key=lambda e: (-score(e), e.submission.method))


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


# ------------------------------------------------------------------------------------------- the table
def _table(group: list[LeaderboardEntry]) -> str:
    key, ranked = _ranked(group)
    cols = _columns(group)
    head = ['<th data-type="number">Rank</th>', '<th class="text" data-type="text">Method</th>']
    head += [f'<th data-type="number" data-key="{_e(k)}">{_e(label)}</th>' for k, label in cols]
    head += ['<th data-type="number">Seeds</th>', '<th data-type="number">#Params</th>',
             '<th class="text" data-type="text">Hardware</th>', '<th class="text" data-type="text">Code</th>']
    rows = []
    for rank, e in enumerate(ranked, 1):
        seeds = len(e.seeds)
        cells = [f'<td data-v="{rank}">{rank}</td>', f'<td class="text method">{_e(e.submission.method)}</td>']
        for k, _ in cols:
            text, v = _pct_cell(e.metrics.get(k), seeds)
            cells.append(f'<td data-v="{_e(v)}">{_e(text)}</td>')
        cells += [f'<td data-v="{seeds}">{seeds}</td>', f'<td data-v="{e.submission.n_parameters}">{e.submission.n_parameters:,}</td>',
                  f'<td class="text hardware">{_e(e.submission.hardware)}</td>', f'<td class="text">{_code_cell(e.submission.code_url)}</td>']
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<p class="note">Ranked by <code>{_e(key)}</code> (mean over seeds); click a column header to sort.</p>\n'
            '<div class="scroll"><table class="board"><thead><tr>' + "".join(head) + "</tr></thead>\n<tbody>\n"
            + "\n".join(rows) + "\n</tbody></table></div>")


# ------------------------------------------------------------------------------------------- the chart
def _lift_ci(e: LeaderboardEntry, c: str) -> tuple[float | None, float | None]:
    """The evaluator's 95 % interval of ``c``'s lift, averaged over the entry's seeds (None if absent)."""
    lows, highs = [], []
    for seed in e.per_seed:
        comp = seed.get("components") if isinstance(seed, dict) else None
        lift = comp.get(c, {}).get("lift") if isinstance(comp, dict) and isinstance(comp.get(c), dict) else None
        if isinstance(lift, dict):
            lo, hi = _finite(lift.get("ci_low")), _finite(lift.get("ci_high"))
            if lo is not None and hi is not None:
                lows.append(lo)
                highs.append(hi)
    if not lows:
        return None, None
    return sum(lows) / len(lows), sum(highs) / len(highs)


def _chart(group: list[LeaderboardEntry]) -> str:
    """Inline SVG: one panel per component, one row per method (rank order), x = lift in %."""
    _, ranked = _ranked(group)
    data = []
    for e in ranked:
        per = {}
        for c in COMPONENTS:
            m = e.metrics.get(f"{c}_lift")
            mean = _finite(m.mean) if m is not None else None
            seeds = [v for v in (_finite(x) for x in (m.per_seed if m is not None else [])) if v is not None]
            per[c] = (mean, seeds, *_lift_ci(e, c))
        data.append((e.submission.method, per))
    values = [v for _, per in data for mean, seeds, lo, hi in per.values() for v in (mean, lo, hi, *seeds) if v is not None]
    lim = max([abs(v) for v in values] + [0.01])
    lim = min(lim, 5.0)  # a ±500 % interval would flatten everything else: clip it and say so
    label_w, panel_w, gap, row_h, top = 250, 150, 14, 20, 42
    width = label_w + len(COMPONENTS) * (panel_w + gap)
    height = top + row_h * len(data) + 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'aria-label="per-component lift over uniform with intervals">']
    for k, c in enumerate(COMPONENTS):
        x0 = label_w + k * (panel_w + gap)

        def sx(v: float, x0: float = x0) -> float:
            return round(x0 + (max(-lim, min(lim, v)) + lim) / (2 * lim) * panel_w, 2)

        out.append(f'<text x="{x0 + panel_w / 2}" y="16" font-size="12" text-anchor="middle" font-weight="600">{_e(c)}</text>')
        out.append(f'<rect x="{x0}" y="{top - 8}" width="{panel_w}" height="{row_h * len(data) + 8}" fill="#fafbfc" stroke="#ddd"/>')
        out.append(f'<line x1="{sx(0)}" y1="{top - 8}" x2="{sx(0)}" y2="{top + row_h * len(data)}" stroke="#888" stroke-dasharray="3,3"/>')
        for t, anchor in ((-lim, "start"), (0.0, "middle"), (lim, "end")):
            out.append(f'<text x="{sx(t)}" y="{top + row_h * len(data) + 14}" font-size="9" text-anchor="{anchor}">{100 * t:+.0f}%</text>')
        for i, (method, per) in enumerate(data):
            y = top + row_h * i + row_h / 2 - 4
            mean, seeds, lo, hi = per[c]
            if lo is not None and hi is not None:
                out.append(f'<line x1="{sx(lo)}" y1="{y}" x2="{sx(hi)}" y2="{y}" stroke="#4477aa" stroke-width="3" stroke-opacity="0.45"/>')
            for v in seeds:
                out.append(f'<circle cx="{sx(v)}" cy="{y}" r="1.8" fill="#666" fill-opacity="0.6"/>')
            if mean is not None:
                out.append(f'<circle cx="{sx(mean)}" cy="{y}" r="4" fill="#cc3311"><title>{_e(method)} {_e(c)}: '
                           f'{100 * mean:+.2f}%</title></circle>')
    for i, (method, _) in enumerate(data):
        y = top + row_h * i + row_h / 2
        short = method if len(method) <= 40 else method[:39] + "…"
        out.append(f'<text x="{label_w - 8}" y="{y}" font-size="11" text-anchor="end">{_e(short)}</text>')
    out.append(f'<text x="{label_w}" y="{height - 4}" font-size="10">red dot: mean over seeds; grey dots: each seed; '
               f'blue bar: the evaluator\'s 95 % interval, averaged over seeds; axis clipped at ±{100 * lim:.0f} %</text>')
    out.append("</svg>")
    return "\n".join(out)


# -------------------------------------------------------------------------------------------- the page
def _rules_section(rules: str | None) -> str:
    summary = (f"<ul><li>Every number is <b>recomputed</b> from the submitted predictions by <code>genco leaderboard "
               f"verify</code>; self-reported numbers must agree within {REPORT_TOLERANCE:g}.</li>"
               f"<li>At least {MIN_SEEDS} seeds, one predictions file per seed, each pinned by its sha256, for the "
               "release pinned by its version and manifest sha256.</li>"
               "<li>Test labels may be used for evaluation only; predictions are read as Parquet, never executed.</li>"
               "<li>Lifts are calibrated sCTR over the uniform test log's CTR, in %. On synthetic releases methods are "
               "ranked by the headroom captured (true CTR from the planted ground truth), otherwise by the mean of the "
               "six per-component lifts. The combination-level lift weighs each matched row by the product of its pool "
               "sizes: few rows carry it, so its spread is large.</li>"
               "<li>Participants get the logs; the maintainer keeps the ground truth (<code>world/</code>) and scores "
               "entries with <code>genco leaderboard verify --world</code>; make your own worlds for development with "
               "<code>genco synth --seed N</code>.</li></ul>")
    full = f'<details><summary>Full rules ({RULES})</summary><pre class="rules">{_e(rules)}</pre></details>' if rules else ""
    return "<h2>Rules</h2>\n" + summary + full


def render_page(entries: list[LeaderboardEntry], rules: str | None = None) -> str:
    """The whole ``index.html`` (deterministic)."""
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    by_version: dict[str, list[LeaderboardEntry]] = {}
    for e in entries:
        by_version.setdefault(e.submission.dataset_version, []).append(e)
    sections = []
    for version in sorted(by_version, key=_version_key, reverse=True):
        group = by_version[version]
        sections.append(f'<section class="version"><h2>Dataset version {_e(version)}</h2>\n{_table(group)}\n'
                        f'<h3>Per-component lift over uniform</h3>\n<div class="scroll">{_chart(group)}</div></section>')
    body = "\n".join(sections) if sections else "<p>No verified entries yet.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{_e(SPACE_TITLE)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{_e(SPACE_TITLE)}</h1>
<p class="note">Policies for the GenCO creative-optimization dataset (Gu et al., 2025, arXiv 2508.09730), scored offline by
replay on the uniform-logged test split. Cells are mean ± std over seeds, in %. Every entry was verified by
recomputation with <code>genco-data</code>.</p>
{body}
{_rules_section(rules)}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def space_readme() -> str:
    """The Space's README.md: Hugging Face Spaces front matter (static SDK) and one paragraph."""
    return f"""---
title: GenCO leaderboard
emoji: 📊
colorFrom: blue
colorTo: gray
sdk: static
app_file: {INDEX}
pinned: false
short_description: Verified policies for the GenCO creative-optimization dataset
---

# {SPACE_TITLE}

A static page (no server, no network requests) generated by `genco leaderboard render --html` from the
verified entries of the `genco-data` leaderboard. The numbers the page shows are also in `{ENTRIES_JSON}`.
"""


def _entries_json(entries: list[LeaderboardEntry]) -> str:
    rows = [{"method": e.submission.method, "dataset_version": e.submission.dataset_version, "seeds": list(e.seeds),
             "n_parameters": e.submission.n_parameters, "hardware": e.submission.hardware, "code_url": e.submission.code_url,
             "synthetic": e.synthetic, "metrics": {k: m.model_dump(mode="json") for k, m in sorted(e.metrics.items())}}
            for e in sorted(entries, key=lambda e: (e.submission.dataset_version, e.submission.method))]
    return json.dumps(rows, indent=1, sort_keys=True, allow_nan=False, default=lambda x: None) + "\n"


def write_space(entries_dir: str | Path, out_dir: str | Path, rules: str | Path | None = None) -> list[Path]:
    """Write the Space for the entries in ``entries_dir`` into ``out_dir`` (created); returns the written
    files. ``rules`` defaults to ``LEADERBOARD_RULES.md`` beside the entries folder, when it exists. Refuses
    (one line) a missing entries folder, an entries folder without entries, and an ``out_dir`` that is a file."""
    from genco_data.locks import writer_lock

    entries_dir, out_dir = Path(entries_dir), Path(out_dir)
    if not entries_dir.is_dir():
        raise InvalidInputError(f"--entries {entries_dir}: no such folder of verified entries")
    entries = load_entries(entries_dir)
    if not entries:
        raise InvalidInputError(f"--entries {entries_dir}: no verified entry (*.json) to render")
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--html {out_dir}: exists and is not a folder")
    rules_path = Path(rules) if rules is not None else entries_dir.parent / RULES
    rules_text = rules_path.read_text(encoding="utf-8") if rules_path.is_file() else None
    files = {SPACE_README: space_readme(), INDEX: render_page(entries, rules_text), ENTRIES_JSON: _entries_json(entries)}
    if rules_text is not None:
        files[RULES] = rules_text
    with writer_lock(out_dir, "genco leaderboard render --html"):
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            write_text_atomic(out_dir / name, text)
    return [out_dir / name for name in files]


__all__ = ["render_page", "space_readme", "write_space", "SPACE_README", "INDEX", "ENTRIES_JSON", "RULES"]
