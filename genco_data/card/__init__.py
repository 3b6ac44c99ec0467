"""The release's dataset card (``<release>/README.md``) and its figures (``<release>/figures/*.png``).

    card.py        front matter, body, changelog, figures, ``render_card``
    templates/     the card template and the default release's changelog
"""
from __future__ import annotations

from genco_data._lazy import lazy_face

_EXPORTS = {
    n: "genco_data.card.card"
    for n in (
        "CardOptions", "card_front_matter", "card_text", "render_card", "render_figures", "figure_data",
        "figure_description", "figure_descriptions", "schema_table", "stats_table", "parse_changelog",
        "changelog_markdown", "fill_template", "FIGURES_DIR", "FIGURES", "TRUNCATION_RULE", "CITATION",
        "LICENSE_SYNTHETIC", "LICENSE_RAW", "DEFAULT_FIGURES_DIR", "DEFAULT_CARD_FILE", "REPO_PLACEHOLDER",
    )
}
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
