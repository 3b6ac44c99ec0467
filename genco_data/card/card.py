"""The release's dataset card (``<release>/README.md``): the body, the template fill, ``render_card``.

``render_card(release)`` is called by every build and by ``genco card``. It writes::

    <release>/README.md                       YAML front matter + the card body (below)
    <release>/figures/candidate_counts.png    pool-size histograms per component, train and test
    <release>/figures/ctr_by_day.png          CTR and impressions per day, test start marked

The front matter is :mod:`~genco_data.card.front_matter`'s, the figures :mod:`~genco_data.card.figures`',
the changelog :mod:`~genco_data.card.changelog`'s; the options are :class:`~genco_data.card.options.CardOptions`.

**Body** — the template ``genco_data/card/templates/dataset_card.md`` (``{{name}}`` placeholders, every one must
be filled) with generated blocks: the schema table from :class:`~genco_data.format.records.ImpressionRow` (never
written by hand), the Table-1 statistics from ``manifest.stats`` beside the paper's figures
(``components.PAPER_*``), splits and files from the manifest, provenance from ``manifest.source``, and the
changelog. The text is a pure function of the manifest, the pool-size counts of the data, the
:class:`CardOptions` and the changelog file: no timestamps, no absolute paths — the same release renders
the same bytes anywhere.
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from genco_data.card.changelog import _SYNTH_GENERATOR, changelog_markdown
from genco_data.card.figures import CAPTIONS, FIGURE_CANDIDATES, FIGURE_CTR, FIGURES, figure_data, render_figures
from genco_data.card.front_matter import LICENSE_RAW, LICENSE_SYNTHETIC, PRETTY_NAME, _license, card_front_matter
from genco_data.card.options import CardOptions
from genco_data.format.components import (
    COMPONENTS,
    CONFIGS,
    PAD_TO,
    PAPER_AVG_CANDIDATES,
    PAPER_COVERAGE,
    PAPER_TRAIN_CTR,
    PRODUCTION,
    SPLITS,
    TRUNCATION_RULE,
    UNIFORM,
)
from genco_data.fsutil import write_text_atomic
from genco_data.format.records import ImpressionRow, Manifest
from genco_data.release import CARD_NAME, DATA_DIR, FIGURES_DIR, WORLD_DIR, Release

#: Placeholder Hub id in the loading snippet when the card is rendered without ``--repo``.
REPO_PLACEHOLDER = "ORG/NAME"
#: Where ``write_default_card`` puts the default release's card and figures (relative to the repository root).
DEFAULT_CARD_FILE = "DATASET_CARD.md"
DEFAULT_FIGURES_DIR = "cards/figures"
_TEMPLATE = "dataset_card.md"
#: Where a synthetic release's truth is (issue #15: the truth is private; ``genco publish`` leaves ``world/`` out
#: unless ``--include-world``). Said in the card's summary; the source row and the provenance repeat who keeps it.
TRUTH_NOTE = (
    f"The ground truth (`{WORLD_DIR}/`) is kept by the maintainer; the published `manifest.json` pins its sha256; "
    "entries are scored against it with `genco leaderboard verify --world`; make your own worlds with "
    "`genco synth --seed N`."
)


CITATION = """@article{gu2025genco,
  title         = {Generative Modeling with Multi-Instance Reward Learning for E-commerce Creative Optimization},
  author        = {Gu, Qiaolei and Li, Yu and Zeng, DingYi and Wang, Lu and Pang, Ming and Peng, Changping and Lin, Zhangang and Law, Ching and Shao, Jingping},
  journal       = {arXiv preprint arXiv:2508.09730},
  year          = {2025},
  eprint        = {2508.09730},
  archivePrefix = {arXiv},
  primaryClass  = {cs.LG},
  url           = {https://arxiv.org/abs/2508.09730}
}"""

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


# ------------------------------------------------------------------------------------------ the body
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def schema_table() -> str:
    """Markdown table of the row schema, generated from :class:`~genco_data.format.records.ImpressionRow`.

    Per-component columns are shown once with ``<c>`` for the component (they are identical but for ``c``)."""
    from genco_data.format.arrow import impressions_schema

    schema = impressions_schema()
    lines = ["| column | Arrow type | nullable | description |", "|---|---|---|---|"]
    first = COMPONENTS[0]
    for name, field in ImpressionRow.model_fields.items():
        shown = name
        description = field.description or ""
        owner = next((c for c in COMPONENTS if name.startswith(c + "_") and name[len(c) + 1:] in ("candidates", "exposed", "propensity")), None)
        if owner is not None:
            if owner != first:
                continue
            shown = "<c>_" + name[len(first) + 1:]
            description = description.replace(f"{first}: ", "", 1).replace(f"`{first}_", "`<c>_").replace(f"lacks {first}", "lacks c")
        arrow = (field.json_schema_extra or {})["arrow"]
        nullable = "yes" if schema.field(name).nullable else "no"
        lines.append(f"| `{shown}` | `{arrow}` | {nullable} | {_cell(description)} |")
    return "\n".join(lines)


def _pct(x: float | None, nd: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{nd}f} %"


def _num(x: float | None, nd: int = 2) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _over_pad(data: dict[str, Any] | None, c: str) -> float | None:
    if data is None:
        return None
    counts = data["pool_sizes"][c]["train"]
    having = sum(counts[1:])
    return sum(counts[PAD_TO + 1:]) / having if having else None


def stats_table(stats: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    """Markdown table of ``manifest.stats`` (train split) beside the paper's Table 1."""
    if not stats.get("components"):
        return "_The manifest holds no statistics (run `genco stats <release>`)._"
    lines = [
        f"| component | distinct ids | coverage | avg. candidates | exposures / candidate / day | pools > {PAD_TO} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in COMPONENTS:
        s = stats["components"].get(c, {})
        lines.append(
            f"| `{c}` | {s.get('distinct_ids', 0):,} | {_pct(s.get('coverage'))} ({_pct(PAPER_COVERAGE[c])}) "
            f"| {_num(s.get('avg_candidates'))} ({PAPER_AVG_CANDIDATES[c]:.1f}) "
            f"| {_num(s.get('exposures_per_candidate_per_day'), 1)} | {_pct(_over_pad(data, c), 2)} |"
        )
    return "\n".join(lines)


def _stats_line(stats: dict[str, Any]) -> str:
    if not stats.get("rows"):
        return "No train statistics."
    span = f"{stats['first_day']} .. {stats['last_day']}" if stats.get("first_day") else "no days"
    return (
        f"{stats['rows']:,} impressions over {stats['days']} days ({span}), {stats['clicks']:,} clicks: "
        f"CTR {_pct(stats['ctr'], 2)} ({_pct(PAPER_TRAIN_CTR, 2)}); {stats['distinct_users']:,} users, "
        f"{stats['distinct_ads']:,} ads."
    )


def _splits_table(manifest: Manifest) -> str:
    lines = ["| config | split | rows | logging policy | shards | bytes |", "|---|---|---:|---|---:|---:|"]
    for config in CONFIGS:
        for split in SPLITS:
            prefix = f"{DATA_DIR}/{config}/{split}-"
            files = [f for f in manifest.files if f.path.startswith(prefix)]
            policy = f"`{PRODUCTION}`" if split == "train" else f"`{UNIFORM}`"
            name = f"`{config}`" + (" (default)" if config == CONFIGS[0] else "")
            lines.append(
                f"| {name} | `{split}` | {manifest.splits[config][split]:,} | {policy} | {len(files)} "
                f"| {sum(f.bytes for f in files):,} |"
            )
    return "\n".join(lines)


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k in sorted(d):
        v = d[k]
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _provenance(manifest: Manifest) -> str:
    src = manifest.source
    parts = []
    if src.kind == "synthetic":
        parts.append(
            f"Synthetic: generated by `{src.generator or 'an unknown generator'}` with seed `{src.seed}` and the "
            "world parameters below; the ground truth (every element's quality, the synergies, the users' and "
            f"queries' tastes) is `{WORLD_DIR}/` (JSON + NumPy `.npz`, loadable without pickle), read only by the "
            "evaluator's truth metrics and kept by the maintainer (`genco publish` leaves it out unless "
            "`--include-world`)."
        )
        if src.parameters:
            rows = ["| parameter | value |", "|---|---|"]
            rows += [f"| `{k}` | `{json.dumps(v)}` |" for k, v in _flatten(src.parameters)]
            parts.append("\n".join(rows))
    else:
        parts.append("Built from raw log exports (the files below) by `genco build`.")
    if src.inputs:
        rows = ["| input file | bytes | sha256 |", "|---|---:|---|"]
        rows += [f"| `{_cell(i.path)}` | {i.bytes:,} | `{i.sha256}` |" for i in src.inputs]
        parts.append("Input files read by the build:\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def _logging_section(manifest: Manifest) -> str:
    imp = manifest.splits[CONFIGS[0]]
    lines = [
        f"- **train** ({imp['train']:,} rows) — `{PRODUCTION}`: the platform's own, biased policy. "
        "Propensities are whatever it gave the shown element, in (0, 1].",
        f"- **test** ({imp['test']:,} rows) — `{UNIFORM}`: every element of a pool equally likely, propensity "
        "`1/n`. The builder rejects any test row logged otherwise.",
    ]
    p = manifest.source.parameters
    if manifest.source.kind == "synthetic" and (manifest.source.generator or "").startswith(_SYNTH_GENERATOR):
        sharp, noise = p.get("production_sharpness"), p.get("production_noise")
        detail = (
            f" (inverse temperature {sharp}, estimate noise sd {noise} quality sds)" if sharp is not None and noise is not None else ""
        )
        lines.append(
            "\nIn this synthetic release the production policy chooses each component independently, by a softmax"
            f"{detail} over a fixed, noisy estimate of each element's quality that ignores the user's taste and "
            "the synergies between components; the product of a row's propensities is therefore the propensity of "
            "its combination."
        )
    else:
        lines.append(
            "\nPropensities are recorded per component; whether their product is the propensity of the whole "
            "combination depends on the production system (it is, only if components were chosen independently)."
        )
    return "\n".join(lines)


def _limitations(manifest: Manifest) -> str:
    items = []
    if manifest.source.kind == "synthetic":
        items.append(
            "**Synthetic.** The rows come from a simulator calibrated to the paper's Table 1 (pool sizes, "
            "coverage, CTR), not from JD.com's logs. Its click model (ad appeal + user×ad affinity + element "
            "quality + request taste + synergies along a tree of components) is simple by design; absolute CTRs "
            "and lifts say nothing about real traffic. Use it to test methods and metrics, where the planted truth "
            "tells how wrong an offline estimate is."
        )
    items += [
        "**Hashed ids only.** No text, images or prices: elements are ids, so models learn from co-occurrence "
        "and clicks alone; an element unseen in train is out of vocabulary.",
        "**Short uniform test window.** The test split covers the days after the train window only; "
        "calibrated sCTR has variance growing with the pool sizes, and the combination-level figure "
        "(weights `Π n`) is heavy-tailed — read its interval, not just its value.",
        "**Per-component propensities.** Off-policy learning on the train split with combination "
        "propensities relies on the assumption stated above.",
        f"**Truncation.** Pools longer than {PAD_TO} are truncated by the PyTorch adapter (the stored data are "
        "complete); the share is in the statistics table.",
    ]
    return "\n".join(f"- {t}" for t in items)


def _license_section(license_id: str, manifest: Manifest) -> str:
    if license_id == LICENSE_SYNTHETIC and manifest.source.kind == "synthetic":
        return (
            f"`{license_id}` — Creative Commons Attribution 4.0. The rows are the output of an open-source "
            "simulator (no real user data); attribution = cite the paper below and name this dataset and its "
            "version. The `genco-data` code that generates and loads it is Apache-2.0."
        )
    if license_id == LICENSE_RAW:
        return (
            "`unknown` — this release was built from raw exports whose terms are the data owner's. Re-render the "
            "card with `genco card <release> --license <id>` once they are known, before publishing."
        )
    return f"`{license_id}` (as given to `genco card --license`)."


def _license_note(license_id: str, manifest: Manifest) -> str:
    if license_id == LICENSE_SYNTHETIC and manifest.source.kind == "synthetic":
        return "synthetic data, free to use with attribution"
    if license_id == LICENSE_RAW:
        return "the data owner's terms apply"
    return "see License"


def package_code_url() -> str | None:
    """The code repository of the installed ``genco-data`` (its ``Repository`` / ``Source`` / ``Homepage``
    project URL from the package metadata, i.e. ``[project.urls]`` in pyproject.toml), or None."""
    from importlib import metadata

    try:
        urls = metadata.metadata("genco-data").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    found = {}
    for item in urls:
        label, _, url = item.partition(",")
        found[label.strip().lower()] = url.strip()
    return next((found[k] for k in ("repository", "source", "code", "homepage") if found.get(k)), None)


def _code_line(options: CardOptions) -> str:
    url = options.code_url or package_code_url()
    what = "`genco-data` (Apache-2.0): builder, loaders, evaluator, reference model — `pip install genco-data`"
    if url is None:
        return what + "; repository URL not set (`genco card --code-url URL`)"
    return f"[{_cell(url)}]({url}) — " + what


def _template() -> str:
    return resources.files("genco_data.card").joinpath("templates", _TEMPLATE).read_text(encoding="utf-8")


def fill_template(template: str, values: dict[str, str]) -> str:
    """Replace every ``{{name}}``; an unknown placeholder or an unused value is an error (no silent drift)."""
    used = set(_PLACEHOLDER.findall(template))
    missing = used - set(values)
    unused = set(values) - used
    if missing or unused:
        raise ValueError(f"card template: placeholders without a value {sorted(missing)}, values without a placeholder {sorted(unused)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _summary(manifest: Manifest) -> str:
    imp = manifest.splits[CONFIGS[0]]
    total = imp["train"] + imp["test"]
    if manifest.source.kind == "synthetic":
        what = (
            f"A synthetic stand-in for the JD.com creative-optimization logs of the GenCO paper: {total:,} "
            f"impressions generated by `{manifest.source.generator}` (seed {manifest.source.seed}) from a world "
            "with planted ground truth, calibrated to the paper's Table 1. Every policy can be scored offline by "
            f"replay *and* against its true CTR. {TRUTH_NOTE}"
        )
    else:
        what = (
            f"E-commerce creative-optimization impression logs in the format of the GenCO paper: {total:,} "
            f"impressions built from {len(manifest.source.inputs)} raw export file(s)."
        )
    return what


def card_text(manifest: Manifest, options: CardOptions | None = None, data: dict[str, Any] | None = None) -> str:
    """The whole ``README.md`` of a release with ``manifest`` (front matter + body). ``data`` is
    :func:`figure_data` (for the share of truncated pools); without it that column shows ``–``."""
    options = options or CardOptions()
    m = manifest
    license_id = _license(m, options)
    tag = f"v{m.dataset_version}"
    src = m.source
    if src.kind == "synthetic":
        source_line = (f"synthetic — `{src.generator}`, seed `{src.seed}`; ground truth (`{WORLD_DIR}/`) kept by the "
                       "maintainer, its sha256 pinned in `manifest.json`")
    else:
        source_line = f"raw exports — {len(src.inputs)} input file(s), listed under Provenance"
    values = {
        "pretty_name": PRETTY_NAME,
        "summary": _summary(m),
        "dataset_version": m.dataset_version,
        "tag": tag,
        "format_version": m.format_version,
        "created_by": m.created_by,
        "source_line": source_line,
        "license": license_id,
        "license_note": _license_note(license_id, m),
        "code_line": _code_line(options),
        "repo_id": options.repo_id or REPO_PLACEHOLDER,
        "repo_note": (
            "" if options.repo_id else f"(`{REPO_PLACEHOLDER}`: the Hub id this release is published under.)\n\n"
        ),
        "sample_rows": f"{sum(m.splits[CONFIGS[1]].values()):,}",
        "pad_to": str(PAD_TO),
        "splits_table": _splits_table(m),
        "test_start_day": m.test_start_day.isoformat(),
        "rejected_line": (
            f"The build read {m.rows_in:,} rows and rejected {m.rows_rejected:,} "
            f"({_pct(m.rows_rejected / m.rows_in if m.rows_in else 0.0, 3)}) that broke a row invariant."
        ),
        "schema_table": schema_table(),
        "stats_line": _stats_line(m.stats),
        "stats_table": stats_table(m.stats, data),
        "figures_href": options.figures_href,
        "figure_candidates": FIGURE_CANDIDATES,
        "figure_ctr": FIGURE_CTR,
        "caption_candidates": CAPTIONS[FIGURE_CANDIDATES],
        "caption_ctr": CAPTIONS[FIGURE_CTR],
        "logging_section": _logging_section(m),
        "truncation_rule": TRUNCATION_RULE,
        "provenance": _provenance(m),
        # data/ and world/ only, as the sentence says: the card's own entry (and its figures') must not feed its text
        "n_files": str(len([f for f in m.files if f.path.startswith((DATA_DIR + "/", WORLD_DIR + "/"))])),
        "total_bytes": f"{sum(f.bytes for f in m.files if f.path.startswith((DATA_DIR + '/', WORLD_DIR + '/'))):,}",
        "limitations": _limitations(m),
        "license_section": _license_section(license_id, m),
        "citation": CITATION,
        "changelog": changelog_markdown(m, options),
    }
    body = fill_template(_template(), values)
    return "---\n" + card_front_matter(m, options) + "---\n\n" + body


def render_card(release_path: str | Path, options: CardOptions | None = None, progress: bool = False) -> Path:
    """Write ``<release>/README.md`` and ``<release>/figures/*.png`` from the release; returns the card's path.
    ``progress`` draws a tqdm bar (stderr): one step per data shard read, per figure and for the text."""
    from tqdm import tqdm

    options = options or CardOptions()
    rel = Release.open(release_path)
    changelog_markdown(rel.manifest, options)  # a bad --changelog is a one-line error before any work (or bar)
    shards = sum(len(rel.data_files(CONFIGS[0], s)) for s in SPLITS)
    with tqdm(total=shards + len(FIGURES) + 1, desc="genco card", unit="step", disable=not progress, leave=False) as bar:
        bar.set_postfix_str("reading the data")
        data = figure_data(rel, bar)
        bar.set_postfix_str("figures")
        render_figures(rel, rel.root / FIGURES_DIR, data)
        bar.update(len(FIGURES))
        bar.set_postfix_str(CARD_NAME)
        text = card_text(rel.manifest, options, data)
        path = rel.root / CARD_NAME
        write_text_atomic(path, text)
        bar.update()
    return path


__all__ = [
    "card_text",
    "render_card",
    "schema_table",
    "stats_table",
    "fill_template",
    "package_code_url",
    "FIGURES_DIR",
    "TRUNCATION_RULE",
    "CITATION",
]
