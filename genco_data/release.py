"""The release folder: named paths, the manifest, format-version checks, and file discovery.

On disk (format version 1)::

    <release>/
      README.md                      dataset card; YAML front matter: configs, dataset_info
      manifest.json                  Manifest (records.py): versions, provenance, files + sha256, stats
      data/impressions/{train,test}-NNNNN-of-MMMMM.parquet
      data/sample/{train,test}-00000-of-00001.parquet
      world/                         synthetic releases only: ground truth (npz + json, no pickle)
      rejects/                       rows that failed validation, with `reason`; never published

Every other module finds files through this one (never by spelling paths itself).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genco_data.components import CONFIGS, SPLITS
from genco_data.errors import BackwardCompatibilityError, ForwardCompatibilityError, IntegrityError
from genco_data.records import FORMAT_MAJOR, FORMAT_VERSION, Manifest

MANIFEST_NAME = "manifest.json"
CARD_NAME = "README.md"
DATA_DIR = "data"
WORLD_DIR = "world"
REJECTS_DIR = "rejects"
#: Folders and files that travel when a release is published (rejects/ never does).
PUBLISHED_TOP_LEVEL = (CARD_NAME, MANIFEST_NAME, DATA_DIR, WORLD_DIR)


def shard_name(split: str, index: int, count: int) -> str:
    """``train-00003-of-00010.parquet`` — the file naming ``datasets`` recognises for splits."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def data_glob(config: str, split: str) -> str:
    """Relative glob of a config/split's shards (as written into the card's ``configs:``)."""
    return f"{DATA_DIR}/{config}/{split}-*.parquet"


def check_format_version(found: str, where: str) -> None:
    """Refuse a release of another major format version, saying what to do."""
    try:
        major = int(str(found).split(".")[0])
    except ValueError:
        raise IntegrityError(f"{where}: format_version {found!r} is not 'MAJOR.MINOR'") from None
    if major < FORMAT_MAJOR:
        raise BackwardCompatibilityError(
            f"{where}: format_version {found} is older than {FORMAT_VERSION}, which this genco-data reads; "
            f"rebuild it from its raw files with `genco build` (no converter exists for v{major})"
        )
    if major > FORMAT_MAJOR:
        raise ForwardCompatibilityError(
            f"{where}: format_version {found} is newer than {FORMAT_VERSION}; upgrade genco-data "
            f"(`pip install -U genco-data`) to read it"
        )


@dataclass(frozen=True)
class Release:
    """A release folder on disk. ``Release.open(path)`` reads and checks the manifest."""

    root: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path) -> "Release":
        root = Path(path)
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise IntegrityError(f"{root}: not a release folder (no {MANIFEST_NAME})")
        try:
            raw = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IntegrityError(f"{mpath}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise IntegrityError(f"{mpath}: expected a JSON object")
        check_format_version(raw.get("format_version", "?"), str(mpath))
        try:
            manifest = Manifest.model_validate(raw)
        except Exception as exc:  # pydantic.ValidationError -> one line
            first = str(exc).splitlines()
            raise IntegrityError(f"{mpath}: invalid manifest ({' '.join(first[:3])})") from None
        return cls(root=root, manifest=manifest)

    def data_files(self, config: str = CONFIGS[0], split: str = "train") -> list[Path]:
        """The shards of ``config``/``split`` in order, as listed in the manifest."""
        if config not in CONFIGS:
            raise ValueError(f"unknown config {config!r}; expected one of {CONFIGS}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        prefix = f"{DATA_DIR}/{config}/{split}-"
        return [self.root / f.path for f in self.manifest.files if f.path.startswith(prefix)]

    @property
    def world_dir(self) -> Path | None:
        """``world/`` when the release is synthetic and carries its ground truth, else None."""
        p = self.root / WORLD_DIR
        return p if p.is_dir() else None

    @property
    def rejects_dir(self) -> Path:
        return self.root / REJECTS_DIR


__all__ = [
    "MANIFEST_NAME",
    "CARD_NAME",
    "DATA_DIR",
    "WORLD_DIR",
    "REJECTS_DIR",
    "PUBLISHED_TOP_LEVEL",
    "shard_name",
    "data_glob",
    "check_format_version",
    "Release",
]
