"""Build, then card: the orchestration above the stages.

The builder writes the data, rejects and manifest and never imports the card renderer; the card reads a
finished release. This module joins the two so that a release appears whole (card inside the temporary
folder, before the atomic move), keeps the manifest true after every card render, and makes the embedded
default release and its top-level card.

    build_release(cfg)               = build.builder.build_release(cfg, finalize=<card, then list it>)
    render_release_card(release)     = what `genco card RELEASE` does: lock, re-render, list
    build_default_release(workdir)   = synth.simulate(SynthConfig()) -> build_release(version 1.0.0)
    write_default_card(root)         = DATASET_CARD.md + cards/figures/*.png from the default release

**The card is listed.** A release is exactly its manifest (:mod:`genco_data.release`), so after the card is
rendered its ``README.md`` and every file of ``figures/`` are added to ``manifest.files`` with their sha256.
The card's text is computed from the *data* manifest (the entries under ``data/`` and ``world/``, as the
builder wrote them): it never depends on the card's own entry, the figures' entries or the manifest's
checksum, so a re-render of the same release with the same options gives the same bytes and the same
manifest. A re-render replaces ``figures/`` wholesale: the previously listed figures are removed first and
whatever the renderer writes is listed; a file under ``figures/`` that the manifest does not list (dropped
there by hand) refuses the re-render with one line, and so does a symlink — except in a release built before
the card was listed (its manifest lists no ``README.md``), whose ``figures/`` is the old render's and is
replaced whole.

A re-render is not atomic (the card, the figures and the manifest are separate files), but it holds the
release's writer lock (the build's: ``genco build`` and ``genco card`` of one release never run at once) and
each step leaves a release that ``genco card`` itself repairs: rerun it after an interruption.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genco_data.build.builder import BuildResult
from genco_data.build.builder import build_release as _build_data
from genco_data.build.plan import BuildConfig
from genco_data.card.card import DEFAULT_CARD_FILE, DEFAULT_FIGURES_DIR, card_text, render_card
from genco_data.card.figures import figure_data, render_figures
from genco_data.card.options import CardOptions
from genco_data.errors import IntegrityError, InvalidInputError
from genco_data.format.records import FileEntry, Manifest, check_repo_id, is_repo_id, is_semver
from genco_data.fsutil import os_errors_as, sha256_file, write_text_atomic
from genco_data.locks import writer_lock
from genco_data.release import CARD_NAME, DATA_DIR, FIGURES_DIR, MANIFEST_NAME, WORLD_DIR, Release

#: Options of the top-level DATASET_CARD.md: the release card, figures linked under cards/figures.
DEFAULT_CARD_OPTIONS = CardOptions(figures_href=DEFAULT_FIGURES_DIR)
DEFAULT_VERSION = "1.0.0"
_DATA_TOPS = (DATA_DIR + "/", WORLD_DIR + "/")


@dataclass(frozen=True)
class CardResult:
    """What a card render wrote: the card, its figures (paths) and the manifest that now lists them."""

    card: Path
    figures: tuple[Path, ...]
    manifest: Path

    def to_dict(self) -> dict[str, Any]:
        return {"written": str(self.card), "figures": [str(p) for p in self.figures], "manifest": str(self.manifest)}


def data_manifest(manifest: Manifest) -> Manifest:
    """``manifest`` with only the entries under ``data/`` and ``world/``: what the card's text is computed from."""
    return manifest.model_copy(update={"files": [f for f in manifest.files if f.path.startswith(_DATA_TOPS)]})


def _write_manifest(root: Path, manifest: Manifest) -> None:
    """The builder's serialisation (2-space indent, fields in model order), written atomically."""
    write_text_atomic(root / MANIFEST_NAME, json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")


def _check_card_files(root: Path, manifest: Manifest) -> list[Path]:
    """Refuse what a re-render must not adopt: a symlinked card or figures folder, or a file or symlink under
    ``figures/`` that the manifest does not list. Returns the listed figures present (to be replaced)."""
    listed = {f.path for f in manifest.files}
    for p in (root / CARD_NAME, root / FIGURES_DIR):
        if p.is_symlink():
            raise IntegrityError(f"{root}: {p.relative_to(root).as_posix()} is a symlink; remove it, then rerun genco card")
    folder = root / FIGURES_DIR
    old: list[Path] = []
    legacy = CARD_NAME not in listed  # built before the card was listed: figures/ is the old render's, replaced whole
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            name = p.relative_to(root).as_posix()
            if p.is_symlink() or (p.is_file() and name not in listed and not legacy):
                raise IntegrityError(
                    f"{root}: {name} is not a figure of the card (not in {MANIFEST_NAME}); remove it "
                    f"(genco card writes {FIGURES_DIR}/ itself), then rerun"
                )
            if p.is_file():
                old.append(p)
    return old


def _render_and_list(root: Path, options: CardOptions | None, progress: bool = False) -> CardResult:
    """Render the card of the release at ``root`` and list it (see the module docstring); no lock."""
    rel = Release.open(root)
    old_figures = _check_card_files(root, rel.manifest)
    base = data_manifest(rel.manifest)
    if base.files != rel.manifest.files:
        _write_manifest(root, base)  # the card reads the data manifest, never its own entries
    for p in old_figures:
        p.unlink()
    card = render_card(root, options, progress=progress)
    entries = [_entry(root, card)]
    folder = root / FIGURES_DIR
    figures: list[Path] = []
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_symlink() or (not p.is_dir() and not p.is_file()):
                raise IntegrityError(f"{root}: the card renderer left {p.relative_to(root).as_posix()}, which is not a regular file")
            if p.is_file():
                figures.append(p)
                entries.append(_entry(root, p))
    _write_manifest(root, base.model_copy(update={"files": [*base.files, *entries]}))
    return CardResult(card=card, figures=tuple(figures), manifest=root / MANIFEST_NAME)


def _entry(root: Path, path: Path) -> FileEntry:
    return FileEntry(path=path.relative_to(root).as_posix(), rows=None, bytes=path.stat().st_size, sha256=sha256_file(path))


def _check_options(options: CardOptions | None) -> None:
    if options is not None and options.repo_id is not None and not is_repo_id(options.repo_id):
        try:
            check_repo_id(options.repo_id)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None


@os_errors_as(IntegrityError)
def render_release_card(release_path: str | Path, options: CardOptions | None = None, progress: bool = False) -> CardResult:
    """``genco card RELEASE``: (re)render ``README.md`` and ``figures/`` of an existing release and list them in
    its manifest, holding the release's writer lock (a concurrent build or card render of the same release
    fails at once with one line)."""
    _check_options(options)
    root = Path(release_path)
    if not root.is_dir():
        raise IntegrityError(f"{root}: not a release folder (no such folder)")
    with writer_lock(root, "genco card"):
        return _render_and_list(root, options, progress)


def build_release(cfg: BuildConfig, progress: bool = True, card: CardOptions | None = None) -> BuildResult:
    """Build the release described by ``cfg`` with its dataset card (``README.md`` + ``figures/``, listed in the
    manifest), atomically: either ``cfg.out`` is a complete, loadable release afterwards, or the call raised and
    it is as before."""
    if not is_semver(cfg.version):  # before any work (the manifest would refuse it only at the end)
        raise InvalidInputError(f"version must be semver X.Y.Z (ASCII digits, no leading zeros), e.g. 1.0.0, got {cfg.version!r}")
    _check_options(card)
    result = _build_data(cfg, progress=progress, finalize=lambda folder: _render_and_list(Path(folder), card))
    files = Release.open(cfg.out).manifest.files
    result.files, result.bytes = len(files), sum(f.bytes for f in files)
    return result


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
    return card_text(data_manifest(rel.manifest), DEFAULT_CARD_OPTIONS, figure_data(rel))


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
        write_text_atomic(card_path, card_text(data_manifest(rel.manifest), DEFAULT_CARD_OPTIONS, data))
    return [card_path, *figures]


__all__ = ["BuildConfig", "BuildResult", "CardResult", "build_release", "render_release_card", "data_manifest",
           "build_default_release", "default_card_text", "write_default_card", "DEFAULT_CARD_OPTIONS", "DEFAULT_VERSION"]
