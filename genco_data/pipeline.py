"""Build, then card: the orchestration above the stages.

The builder writes the data, rejects and manifest and never imports the card renderer; the card reads a
finished release. This module joins the two so that a release appears whole (card inside the temporary
folder, before the atomic move), and makes the embedded default release and its top-level card.

    build_release(cfg)              = build.builder.build_release(cfg, finalize=card.render_card)
    build_default_release(workdir)  = synth.simulate(SynthConfig()) -> build_release(version 1.0.0)
    write_default_card(root)        = DATASET_CARD.md + cards/figures/*.png from the default release
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from genco_data.build.builder import BuildResult
from genco_data.build.builder import build_release as _build_data
from genco_data.build.plan import BuildConfig
from genco_data.card.card import DEFAULT_CARD_FILE, DEFAULT_FIGURES_DIR, card_text, render_card
from genco_data.card.figures import figure_data, render_figures
from genco_data.card.options import CardOptions
from genco_data.errors import InvalidInputError
from genco_data.fsutil import write_text_atomic
from genco_data.release import Release

#: Options of the top-level DATASET_CARD.md: the release card, figures linked under cards/figures.
DEFAULT_CARD_OPTIONS = CardOptions(figures_href=DEFAULT_FIGURES_DIR)
DEFAULT_VERSION = "1.0.0"


def build_release(cfg: BuildConfig, progress: bool = True, card: CardOptions | None = None) -> BuildResult:
    """Build the release described by ``cfg`` with its dataset card (``README.md`` + ``figures/``), atomically:
    either ``cfg.out`` is a complete, loadable release afterwards, or the call raised and it is as before."""
    return _build_data(cfg, progress=progress, finalize=lambda folder: render_card(folder, card))


def build_default_release(workdir: str | Path, progress: bool = False) -> Path:
    """Simulate and build the embedded default release (``SynthConfig()``, version 1.0.0) under ``workdir``,
    exactly as ``genco synth --out raw && genco build raw --out release --version 1.0.0`` run in ``workdir``
    would; returns the release folder."""
    from genco_data.synth import SynthConfig, simulate

    workdir = Path(workdir)
    raw, out = workdir / "raw", workdir / "release"
    simulate(SynthConfig(), raw, progress=progress)
    build_release(BuildConfig(sources=[raw], out=out, version=DEFAULT_VERSION), progress=progress)
    return out


def default_card_text(release_path: str | Path) -> str:
    """What ``DATASET_CARD.md`` must hold for the default release at ``release_path``."""
    rel = Release.open(release_path)
    return card_text(rel.manifest, DEFAULT_CARD_OPTIONS, figure_data(rel))


def write_default_card(root: str | Path, release_path: str | Path | None = None, progress: bool = False) -> list[Path]:
    """(Re)write ``<root>/DATASET_CARD.md`` and ``<root>/cards/figures/*.png`` from the default release
    (built in a temporary folder unless ``release_path`` is given); returns the written paths."""
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="genco-default-card-") as tmp:
        release = Path(release_path) if release_path is not None else build_default_release(tmp, progress=progress)
        rel = Release.open(release)
        if rel.manifest.source.kind != "synthetic" or rel.manifest.dataset_version != DEFAULT_VERSION:
            raise InvalidInputError(f"{release}: not the default release (synthetic, version {DEFAULT_VERSION})")
        data = figure_data(rel)
        figures = render_figures(rel, root / DEFAULT_FIGURES_DIR, data)
        card_path = root / DEFAULT_CARD_FILE
        write_text_atomic(card_path, card_text(rel.manifest, DEFAULT_CARD_OPTIONS, data))
    return [card_path, *figures]


__all__ = ["BuildConfig", "BuildResult", "build_release", "build_default_release", "default_card_text",
           "write_default_card", "DEFAULT_CARD_OPTIONS", "DEFAULT_VERSION"]
