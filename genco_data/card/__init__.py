"""The release's dataset card (``<release>/README.md``) and its figures (``<release>/figures/*.png``).

    options.py       CardOptions: what the card needs beyond the release (repo id, changelog, license, figures href)
    front_matter.py  the YAML front matter (configs, dataset_info, license, size category, tags)
    changelog.py     the changelog: a file's ``## X.Y.Z — title`` sections up to the release's version
    figures.py       the figures' data (sha256 in each PNG) and their drawing
    card.py          the body tables, the template fill, ``card_text``, ``render_card``
    templates/       the card template and the default release's changelog
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    **{n: "genco_data.card.options" for n in ("CardOptions",)},
    **{n: "genco_data.card.front_matter" for n in ("card_front_matter", "LICENSE_SYNTHETIC", "LICENSE_RAW", "TASK_CATEGORIES", "TASK_IDS")},
    **{n: "genco_data.card.changelog" for n in ("parse_changelog", "changelog_markdown", "settings_differences")},
    **{n: "genco_data.card.figures" for n in (
        "render_figures", "figure_data", "figure_description", "figure_descriptions", "FIGURES", "CAPTIONS",
        "MAX_EXACT_POOL", "pool_size_bins")},
    **{n: "genco_data.card.card" for n in (
        "card_text", "render_card", "schema_table", "stats_table", "fill_template", "FIGURES_DIR",
        "TRUNCATION_RULE", "CITATION", "DEFAULT_FIGURES_DIR", "DEFAULT_CARD_FILE", "REPO_PLACEHOLDER", "package_code_url")},
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
