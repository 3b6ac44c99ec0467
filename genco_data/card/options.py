"""What the card needs beyond the release itself: :class:`CardOptions` (``genco card`` fills one in).

Each field's default is resolved where it is used: ``license`` in :mod:`~genco_data.card.front_matter`,
``changelog`` in :mod:`~genco_data.card.changelog`, ``repo_id``, ``figures_href`` and ``code_url`` in
:mod:`~genco_data.card.card`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from genco_data.errors import InvalidInputError
from genco_data.format.records import check_repo_id
from genco_data.release import FIGURES_DIR

_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/%+#?=&-]*)?$", re.ASCII)


@dataclass(frozen=True)
class CardOptions:
    """What the card needs beyond the release itself. ``genco card`` fills one in; checked on creation."""

    repo_id: str | None = None  # Hub id ORG/NAME shown in the loading snippets; None: a placeholder
    changelog: Path | None = None  # Markdown with "## X.Y.Z — title" sections; None: see the module docstring
    license: str | None = None  # Hub license id; None: cc-by-4.0 (synthetic) / unknown (raw)
    figures_href: str = FIGURES_DIR  # how the card links its figures (DATASET_CARD.md: cards/figures)
    code_url: str | None = None  # the code repository the card links; None: the package's Repository project URL

    def __post_init__(self) -> None:
        # The Hub id grammar and message of `genco publish --repo` (format.records.check_repo_id: whole match,
        # ASCII), so a card never names a repo that publish would refuse.
        if self.repo_id is not None:
            try:
                check_repo_id(self.repo_id)
            except ValueError as exc:
                raise InvalidInputError(str(exc)) from None
        if self.changelog is not None:
            object.__setattr__(self, "changelog", Path(self.changelog))
        if self.license is not None and not re.match(r"^[a-z0-9][a-z0-9.+-]*$", self.license):
            raise InvalidInputError(f"license must be a Hub license id like cc-by-4.0, got {self.license!r}")
        if self.code_url is not None and not _HTTP_URL.match(self.code_url):
            raise InvalidInputError(f"code url must be an http(s) URL without spaces, got {self.code_url!r}")
        if not self.figures_href or self.figures_href.startswith("/") or self.figures_href.endswith("/"):
            raise InvalidInputError(f"figures_href must be a relative folder without a trailing '/', got {self.figures_href!r}")


__all__ = ["CardOptions"]
