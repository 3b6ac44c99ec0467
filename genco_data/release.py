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

import datetime as _dt
import os
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genco_data.format.components import CONFIGS, SPLITS
from genco_data.fsutil import read_json_object, sha256_file
from genco_data.errors import BackwardCompatibilityError, ForwardCompatibilityError, IntegrityError
from genco_data.format.records import FORMAT_MAJOR, FORMAT_VERSION, Manifest

MANIFEST_NAME = "manifest.json"
CARD_NAME = "README.md"
DATA_DIR = "data"
WORLD_DIR = "world"
REJECTS_DIR = "rejects"
FIGURES_DIR = "figures"  # the card's PNGs (rendered from the data; not listed in the manifest)
#: Folders and files that travel when a release is published (rejects/ never does).
PUBLISHED_TOP_LEVEL = (CARD_NAME, MANIFEST_NAME, DATA_DIR, WORLD_DIR, FIGURES_DIR)


#: ``data/<config>/<split>-NNNNN-of-MMMMM.parquet``
SHARD_RE = re.compile(r"^" + DATA_DIR + r"/(?P<config>[a-z_]+)/(?P<split>[a-z_]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")



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
    def open(cls, path: str | Path, *, verify: bool = False) -> "Release":
        """Read and check the manifest (JSON, format version, model). ``verify=True`` also checks every
        file against it (:func:`verify_checksums`: listing, sizes, sha256; cached per process)."""
        root = Path(path)
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise IntegrityError(f"{root}: not a release folder (no {MANIFEST_NAME})")
        raw = read_json_object(mpath, IntegrityError)
        check_format_version(raw.get("format_version", "?"), str(mpath))
        try:
            manifest = Manifest.model_validate(raw)
        except Exception as exc:  # pydantic.ValidationError -> one line
            first = str(exc).splitlines()
            raise IntegrityError(f"{mpath}: invalid manifest ({' '.join(first[:3])})") from None
        release = cls(root=root, manifest=manifest)
        if verify:
            _verify_files(release, cached=True)
        return release

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


def load_release(path: str | Path, *, verify: bool = True) -> Release:
    """Open a release folder for reading: the manifest checked and, by default, every file against it
    (``Release.open(path, verify=True)``)."""
    return Release.open(path, verify=verify)


def _parquet(path: Path, rel: str) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged footer
        raise IntegrityError(f"{rel}: not a readable Parquet file ({' '.join(str(exc).split())})") from None


def _day_range(pf: Any) -> tuple[_dt.date, _dt.date] | None:
    """(min, max) of ``day`` from the row-group statistics, None when the file has no rows/statistics."""
    idx = pf.schema_arrow.get_field_index("day")
    lo = hi = None
    for i in range(pf.metadata.num_row_groups):
        st = pf.metadata.row_group(i).column(idx).statistics
        if st is None or not st.has_min_max:
            return None
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
    return None if lo is None else (lo, hi)


# ------------------------------------------------------------------------------------------ checksums
#: Files whose sha256 matched their manifest in this process: absolute path -> (identity, sha256).
#: The identity is (device, inode, size, mtime_ns, ctime_ns): any write to the file (or a replacement)
#: changes it, so a file is hashed again after it changed; ctime cannot be set back by ``os.utime``.
_VERIFIED: dict[str, tuple[tuple[int, ...], str]] = {}
_VERIFIED_LOCK = threading.Lock()


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _check_listing(rel: Release) -> None:
    """The manifest's file list matches the folder: no file listed twice, none outside ``data/`` and
    ``world/``, none missing, none extra (``rejects/``, ``README.md`` and figures are not listed)."""
    root, m = rel.root, rel.manifest
    listed = {f.path: f for f in m.files}
    if len(listed) != len(m.files):
        raise IntegrityError(f"{root / MANIFEST_NAME}: a file is listed twice")
    for top in (DATA_DIR, WORLD_DIR):
        folder = root / top
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if p.is_file() or p.is_symlink():
                    name = p.relative_to(root).as_posix()
                    if name not in listed:
                        raise IntegrityError(f"{root}: extra file {name} (not in {MANIFEST_NAME})")
    for f in m.files:
        if not (f.path.startswith(DATA_DIR + "/") or f.path.startswith(WORLD_DIR + "/")):
            raise IntegrityError(f"{root / MANIFEST_NAME}: lists {f.path}, which is outside {DATA_DIR}/ and {WORLD_DIR}/")
        if not (root / f.path).is_file():
            raise IntegrityError(f"{root}: missing file {f.path} (listed in {MANIFEST_NAME})")


def _check_file(root: Path, f: Any, cached: bool) -> int:
    """Size and sha256 of one listed file; returns its size. ``cached``: skip the hash when this process
    already matched the same, unchanged file against the same digest."""
    p = root / f.path
    st = p.stat()
    if st.st_size != f.bytes:
        raise IntegrityError(f"{f.path}: {st.st_size} bytes, {MANIFEST_NAME} says {f.bytes}")
    key = str(p.resolve())
    ident = _identity(st)
    if cached and _VERIFIED.get(key) == (ident, f.sha256):
        return st.st_size
    digest = sha256_file(p)
    if digest != f.sha256:
        raise IntegrityError(f"{f.path}: sha256 {digest[:12]}… differs from {MANIFEST_NAME} ({f.sha256[:12]}…)")
    if _identity(p.stat()) == ident:  # unchanged while it was hashed
        with _VERIFIED_LOCK:
            _VERIFIED[key] = (ident, digest)
    return st.st_size


def _verify_files(rel: Release, cached: bool) -> int:
    _check_listing(rel)
    return sum(_check_file(rel.root, f, cached) for f in rel.manifest.files)


def verify_checksums(path: str | Path | Release) -> Release:
    """The integrity check every loader runs on open (``Evaluator``, the torch adapters): the manifest
    parses with a readable ``format_version``; the files under ``data/`` and ``world/`` are exactly the
    listed ones; each has its listed size and sha256. Raises :class:`IntegrityError` naming the first
    file at fault; returns the opened :class:`Release`.

    Cheap to repeat: a file that matched once is not hashed again in this process while its identity
    (device, inode, size, mtime, ctime) is unchanged, so a second open costs one ``stat`` per file.
    ``verify_release`` (``genco verify``) always re-hashes and checks much more (schema, row counts,
    splits, days)."""
    rel = path if isinstance(path, Release) else Release.open(path)
    _verify_files(rel, cached=True)
    return rel


def verify_release(path: str | Path) -> dict[str, Any]:
    """Re-check a release folder against its manifest; raise :class:`IntegrityError` naming the first
    file at fault, else return a report ``{release, dataset_version, format_version, files, rows, bytes,
    splits}`` (``rows`` = rows of config ``impressions``, train + test).

    Checks, in order: the manifest parses and its ``format_version`` is readable; no file under ``data/``
    or ``world/`` is missing from the manifest (``rejects/`` is ignored: it is never published); every
    listed file exists with the listed byte size and sha256; every ``data/`` file is a Parquet shard named
    ``<split>-NNNNN-of-MMMMM.parquet`` with the listed row count and exactly the impressions schema, the
    shards of each config/split are complete (0..M-1 of M); the rows per config/split equal
    ``manifest.splits``; ``rows_in = rows written + rows_rejected``; train days precede
    ``test_start_day`` and test days do not (from the Parquet statistics); ``README.md`` exists.
    """
    from genco_data.format.arrow import impressions_schema

    rel = Release.open(path)
    root, m = rel.root, rel.manifest
    _check_listing(rel)

    schema = impressions_schema()
    rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    shards: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    total_bytes = 0
    for f in m.files:
        p = root / f.path
        total_bytes += _check_file(root, f, cached=False)
        if not f.path.startswith(DATA_DIR + "/"):
            continue
        match = SHARD_RE.match(f.path)
        if not match or match["config"] not in CONFIGS or match["split"] not in SPLITS:
            raise IntegrityError(f"{f.path}: not a shard name data/<config>/<split>-NNNNN-of-MMMMM.parquet of a known config/split")
        pf = _parquet(p, f.path)
        if pf.metadata.num_rows != f.rows:
            raise IntegrityError(f"{f.path}: {pf.metadata.num_rows} rows, {MANIFEST_NAME} says {f.rows}")
        if not pf.schema_arrow.equals(schema):
            raise IntegrityError(f"{f.path}: Parquet schema differs from the impressions schema v{FORMAT_MAJOR}")
        config, split = match["config"], match["split"]
        rows[config][split] += pf.metadata.num_rows
        shards[(config, split)].append((int(match["index"]), int(match["count"])))
        days = _day_range(pf)
        if days is not None:
            lo, hi = days
            if split == "train" and hi >= m.test_start_day:
                raise IntegrityError(f"{f.path}: train day {hi} is not before test_start_day {m.test_start_day}")
            if split == "test" and lo < m.test_start_day:
                raise IntegrityError(f"{f.path}: test day {lo} is before test_start_day {m.test_start_day}")
    for (config, split), got in shards.items():
        count = got[0][1]
        if sorted(got) != [(i, count) for i in range(count)]:
            raise IntegrityError(f"{DATA_DIR}/{config}: the {split} shards are not a complete 00000..{count - 1:05d} of {count:05d} set")
    for config in CONFIGS:
        for split in SPLITS:
            want = m.splits.get(config, {}).get(split)
            got_rows = rows.get(config, {}).get(split, 0)
            if want is None or want != got_rows or (config, split) not in shards:
                raise IntegrityError(
                    f"{MANIFEST_NAME}: splits[{config}][{split}] = {want}, but its shards hold {got_rows} rows"
                    + ("" if (config, split) in shards else " (no shard files)")
                )
    written = sum(m.splits[CONFIGS[0]].values())
    if m.rows_in != written + m.rows_rejected:
        raise IntegrityError(
            f"{MANIFEST_NAME}: rows_in {m.rows_in} != rows written {written} + rows_rejected {m.rows_rejected}"
        )
    if not (root / CARD_NAME).is_file():
        raise IntegrityError(f"{root}: missing {CARD_NAME} (render it with `genco card {root}`)")
    return {
        "release": str(root),
        "dataset_version": m.dataset_version,
        "format_version": m.format_version,
        "files": len(m.files),
        "rows": written,
        "bytes": total_bytes,
        "splits": {c: dict(s) for c, s in m.splits.items()},
    }


__all__ = [
    "load_release",
    "SHARD_RE",
    "sha256_file",
    "verify_checksums",
    "verify_release",
    "MANIFEST_NAME",
    "CARD_NAME",
    "DATA_DIR",
    "WORLD_DIR",
    "REJECTS_DIR",
    "FIGURES_DIR",
    "PUBLISHED_TOP_LEVEL",
    "shard_name",
    "data_glob",
    "check_format_version",
    "Release",
]
