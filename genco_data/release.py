"""The release folder: named paths, the manifest, format-version checks, and file discovery.

On disk (format version 1)::

    <release>/
      README.md                      dataset card; YAML front matter: configs, dataset_info
      manifest.json                  Manifest (records.py): versions, provenance, files + sha256, stats
      data/impressions/{train,test}-NNNNN-of-MMMMM.parquet
      data/sample/{train,test}-00000-of-00001.parquet
      world/                         synthetic releases only: ground truth (npz + json, no pickle); kept by the
                                     maintainer: published only with `--include-world`
      figures/                       the card's PNGs
      rejects/                       rows that failed validation, with `reason`; never published

**A release is exactly its manifest.** ``manifest.files`` lists every file that travels — ``README.md``, every
file under ``data/``, ``world/`` and ``figures/`` — with its size and sha256. Besides them a release folder may
hold only ``manifest.json`` itself, ``rejects/`` (never published, not listed) and huggingface_hub's
``.cache/huggingface/`` (the bookkeeping huggingface_hub leaves in a folder it downloads into: a pulled release). Anything else —
an unlisted file anywhere, a symlink anywhere (file or folder, inside or pointing out), a fifo — fails
:func:`verify_checksums` and :func:`verify_release`.

**A withheld world.** A synthetic release's manifest pins its ``world/`` files by sha256 even when the folder
is not there: the maintainer keeps the truth, participants get a release without ``world/`` that still
verifies (every *present* file is checked; ``world/`` must be complete or absent), and the truth handed over
later (``genco leaderboard verify --world PATH``) is checked against those pins.

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
from genco_data.fsutil import os_errors_as, read_json_object, sha256_file
from genco_data.errors import BackwardCompatibilityError, ForwardCompatibilityError, IntegrityError
from genco_data.format.records import FORMAT_MAJOR, FORMAT_VERSION, Manifest, parse_format_version

MANIFEST_NAME = "manifest.json"
CARD_NAME = "README.md"
DATA_DIR = "data"
WORLD_DIR = "world"
REJECTS_DIR = "rejects"
FIGURES_DIR = "figures"  # the card's PNGs (rendered from the data, listed in the manifest like every file that travels)
#: Folders and files that travel when a release is published (rejects/ never does; world/ only when asked).
PUBLISHED_TOP_LEVEL = (CARD_NAME, MANIFEST_NAME, DATA_DIR, WORLD_DIR, FIGURES_DIR)
#: Folders whose files the manifest lists (besides CARD_NAME itself).
LISTED_DIRS = (DATA_DIR, WORLD_DIR, FIGURES_DIR)
#: huggingface_hub's bookkeeping in a folder it downloads a repo into (a pulled release); never travels.
HF_LOCAL_CACHE = ".cache/huggingface"
#: Largest manifest.json read (checked before reading): a release of 100k shards has a manifest of ~30 MB.
MAX_MANIFEST_BYTES = 256 << 20


#: ``data/<config>/<split>-NNNNN-of-MMMMM.parquet``
SHARD_RE = re.compile(r"^" + DATA_DIR + r"/(?P<config>[a-z_]+)/(?P<split>[a-z_]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")



def shard_name(split: str, index: int, count: int) -> str:
    """``train-00003-of-00010.parquet`` — the file naming ``datasets`` recognises for splits."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def data_glob(config: str, split: str) -> str:
    """Relative glob of a config/split's shards (as written into the card's ``configs:``)."""
    return f"{DATA_DIR}/{config}/{split}-*.parquet"


def check_format_version(found: object, where: str) -> None:
    """Refuse a release of another major format version, saying what to do; ``found`` must be a string in the
    strict ``MAJOR.MINOR`` grammar (``"1.x"``, ``"1.0\\n"``, ``"01.0"`` or the JSON number ``1.0`` are refused)."""
    parsed = parse_format_version(found)
    if parsed is None:
        raise IntegrityError(f"{where}: format_version {found!r} is not 'MAJOR.MINOR' (ASCII digits, no leading zeros)")
    major = parsed[0]
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
    @os_errors_as(IntegrityError)
    def open(cls, path: str | Path, *, verify: bool = False) -> "Release":
        """Read and check the manifest (JSON, format version, model). ``verify=True`` also checks every
        file against it (:func:`verify_checksums`: listing, sizes, sha256; cached per process)."""
        root = Path(path)
        mpath = root / MANIFEST_NAME
        if not root.is_dir() or not mpath.is_file():
            raise IntegrityError(f"{root}: not a release folder (no {MANIFEST_NAME})")
        raw = read_json_object(mpath, IntegrityError, max_bytes=MAX_MANIFEST_BYTES)
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
        """``world/`` when the release carries its ground truth here, else None (a raw release, or a synthetic
        one whose world is withheld)."""
        p = self.root / WORLD_DIR
        return p if p.is_dir() and not p.is_symlink() else None

    @property
    def world_files(self) -> list[Any]:
        """The manifest's entries under ``world/`` (the pins of the truth, whether or not it is here)."""
        return [f for f in self.manifest.files if f.path.startswith(WORLD_DIR + "/")]

    @property
    def world_withheld(self) -> bool:
        """The manifest pins a world that is not in this folder (the maintainer keeps it)."""
        return bool(self.world_files) and not os.path.lexists(self.root / WORLD_DIR)

    @property
    def present_files(self) -> list[Any]:
        """The listed files this folder must hold: all of them, but the world's when it is withheld."""
        if self.world_withheld:
            return [f for f in self.manifest.files if not f.path.startswith(WORLD_DIR + "/")]
        return list(self.manifest.files)

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


def _is_listable(path: str) -> bool:
    return path == CARD_NAME or any(path.startswith(d + "/") for d in LISTED_DIRS)


def _walk(root: Path) -> list[tuple[str, str]]:
    """(relative posix path, kind) of every entry of the release folder but ``rejects/``'s and huggingface_hub's
    cache's contents, sorted; kind is ``file``, ``symlink`` or ``other`` (folders are entered, never followed
    through a symlink)."""
    found: list[tuple[str, str]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise IntegrityError(f"{root}: cannot list {folder} ({exc.strerror or exc})") from None
        for e in entries:
            rel = Path(e.path).relative_to(root).as_posix()
            if e.is_symlink():
                found.append((rel, "symlink"))
            elif rel in (REJECTS_DIR, HF_LOCAL_CACHE):
                continue  # never published, never listed
            elif e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                found.append((rel, "file"))
            else:
                found.append((rel, "other"))
    return sorted(found)


def _check_listing(rel: Release) -> None:
    """The release is exactly its manifest: no file listed twice or outside ``README.md``/``data/``/``world/``/
    ``figures/``; no unlisted file and no symlink anywhere (``rejects/`` and huggingface_hub's cache aside);
    every listed file present (``world/`` may be withheld as a whole)."""
    root, m = rel.root, rel.manifest
    listed = {f.path: f for f in m.files}
    if len(listed) != len(m.files):
        raise IntegrityError(f"{root / MANIFEST_NAME}: a file is listed twice")
    for f in m.files:
        if not _is_listable(f.path):
            raise IntegrityError(
                f"{root / MANIFEST_NAME}: lists {f.path}, which is outside {CARD_NAME}, {DATA_DIR}/, {WORLD_DIR}/ and {FIGURES_DIR}/"
            )
    for name, kind in _walk(root):
        if kind == "symlink":
            raise IntegrityError(f"{root}: {name} is a symlink (a release holds regular files only: nothing outside it travels with it)")
        if kind == "other":
            raise IntegrityError(f"{root}: {name} is not a regular file")
        if name != MANIFEST_NAME and name not in listed:
            hint = ""
            if name == CARD_NAME or name.startswith(FIGURES_DIR + "/"):
                hint = f"; if the release was built before the manifest listed the card, re-render it: genco card {root}"
            raise IntegrityError(f"{root}: extra file {name} (not in {MANIFEST_NAME}){hint}")
    for f in rel.present_files:
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
    return sum(_check_file(rel.root, f, cached) for f in rel.present_files)


@os_errors_as(IntegrityError)
def check_world(release: Release, folder: str | Path) -> Path:
    """A world handed over apart from the release (the maintainer's copy of a withheld ``world/``) is exactly
    the one the manifest pins: the same file names, each a regular file of the pinned size and sha256.
    Returns ``folder``; raises :class:`IntegrityError` naming the first difference."""
    folder = Path(folder)
    pins = {f.path[len(WORLD_DIR) + 1:]: f for f in release.world_files}
    if not pins:
        raise IntegrityError(f"{release.root}: its manifest pins no {WORLD_DIR}/ (not a synthetic release); --world does not apply")
    if folder.is_symlink() or not folder.is_dir():
        raise IntegrityError(f"{folder}: not a world folder (expected the {len(pins)} files of {WORLD_DIR}/ pinned by {release.root / MANIFEST_NAME})")
    here = {}
    for p in sorted(folder.rglob("*")):
        name = p.relative_to(folder).as_posix()
        if p.is_symlink():
            raise IntegrityError(f"{folder}: {name} is a symlink; a world is regular files")
        if p.is_file():
            here[name] = p
    extra, missing = sorted(set(here) - set(pins)), sorted(set(pins) - set(here))
    if extra or missing:
        what = f"has {extra[0]}, which" if extra else f"lacks {missing[0]}, which"
        raise IntegrityError(f"{folder}: not the world of {release.root} (it {what} {'is not pinned' if extra else 'is pinned'} by {MANIFEST_NAME})")
    for name, p in here.items():
        pin = pins[name]
        if p.stat().st_size != pin.bytes or sha256_file(p) != pin.sha256:
            raise IntegrityError(f"{folder}: {name} differs from the {WORLD_DIR}/{name} pinned by {release.root / MANIFEST_NAME} (another world?)")
    return folder


@os_errors_as(IntegrityError)
def verify_checksums(path: str | Path | Release) -> Release:
    """The integrity check every loader runs on open (``Evaluator``, the torch adapters): the manifest
    parses with a readable ``format_version``; the folder holds exactly the listed files (see the module
    docstring: no unlisted file, no symlink; ``world/`` complete or withheld); each has its listed size and sha256. Raises :class:`IntegrityError` naming the first
    file at fault; returns the opened :class:`Release`.

    Cheap to repeat: a file that matched once is not hashed again in this process while its identity
    (device, inode, size, mtime, ctime) is unchanged, so a second open costs one ``stat`` per file.
    ``verify_release`` (``genco verify``) always re-hashes and checks much more (schema, row counts,
    splits, days)."""
    rel = path if isinstance(path, Release) else Release.open(path)
    _verify_files(rel, cached=True)
    return rel


@os_errors_as(IntegrityError)
def verify_release(path: str | Path, progress: bool = False) -> dict[str, Any]:
    """Re-check a release folder against its manifest; raise :class:`IntegrityError` naming the first
    file at fault, else return a report ``{release, dataset_version, format_version, files, rows, bytes,
    splits, world}`` (``rows`` = rows of config ``impressions``, train + test; ``world`` = ``present``,
    ``withheld`` or ``none``). ``progress``: a tqdm bar over the bytes hashed.

    Checks, in order: the manifest parses and its ``format_version`` is readable; the folder is exactly the
    manifest (no unlisted file or symlink anywhere, ``rejects/`` aside; ``world/`` complete or withheld); every
    present listed file has the listed byte size and sha256; every ``data/`` file is a Parquet shard named
    ``<split>-NNNNN-of-MMMMM.parquet`` with the listed row count and exactly the impressions schema, the
    shards of each config/split are complete (0..M-1 of M); the rows per config/split equal
    ``manifest.splits``; ``rows_in = rows written + rows_rejected``; train days precede
    ``test_start_day`` and test days do not (from the Parquet statistics); ``README.md`` exists.
    """
    from genco_data.format.arrow import impressions_schema

    from tqdm.auto import tqdm

    rel = Release.open(path)
    root, m = rel.root, rel.manifest
    _check_listing(rel)
    present = rel.present_files
    bar = tqdm(total=sum(f.bytes for f in present), unit="B", unit_scale=True, desc="verify", disable=not progress, leave=False)

    schema = impressions_schema()
    rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    shards: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    total_bytes = 0
    for f in present:
        p = root / f.path
        total_bytes += _check_file(root, f, cached=False)
        bar.update(f.bytes)
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
    bar.close()
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
        "world": "withheld" if rel.world_withheld else "present" if rel.world_files else "none",
    }


__all__ = [
    "load_release",
    "SHARD_RE",
    "sha256_file",
    "verify_checksums",
    "verify_release",
    "check_world",
    "MANIFEST_NAME",
    "CARD_NAME",
    "DATA_DIR",
    "WORLD_DIR",
    "REJECTS_DIR",
    "FIGURES_DIR",
    "PUBLISHED_TOP_LEVEL",
    "LISTED_DIRS",
    "HF_LOCAL_CACHE",
    "MAX_MANIFEST_BYTES",
    "shard_name",
    "data_glob",
    "check_format_version",
    "Release",
]
