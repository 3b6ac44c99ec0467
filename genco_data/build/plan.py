"""What to build, from what: :class:`BuildConfig` (every field checked) and the plan of a build.

The plan is the input files found in the sources (by suffix, :data:`FORMATS`; read by
:mod:`genco_data.build.readers`), the ``world/`` to carry over and the first test day; nothing is read yet.

The lowest of the builder's parts: the readers, the order and the writer take a :class:`BuildConfig`, so
the bounds it checks (:data:`ROW_GROUP_MAX_BYTES`, :data:`SHARD_MAX_BYTES`, :data:`MAX_FILE_BYTES`) live here.

* **Inputs.** Folders are walked in sorted order; hidden entries, ``world/`` folders and folders that
  are themselves releases (hold a ``manifest.json``) are skipped, other suffixes are ignored; every file
  skipped is counted (``BuildResult.ignored``, named in the summary). **Symlinks** inside a source are
  followed only while they stay inside it (a symlinked subfolder is read like any folder); one that
  points outside the source, dangles or loops refuses the build with one line — nothing is ever read
  from outside the sources, nor silently skipped. ``world/`` may hold regular files and folders only.
  Input order
  (sources as given, files sorted within a folder, rows in file order) decides which of two rows with the
  same ``impression_id`` is kept (the first). A file above ``max_file_bytes`` is refused here, before
  anything is read.
* **Splits.** ``day < test_start_day`` → train, else test. ``test_start_day`` comes from the config, else
  from ``world/world.json`` (key ``test_start_day``), else the build is refused.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genco_data.errors import BuildError, InvalidInputError
from genco_data.format.records import check_semver
from genco_data.release import MANIFEST_NAME, WORLD_DIR

#: Input suffix -> reader.
FORMATS: dict[str, str] = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: Contract bounds (DESIGN.md): row groups <= 100 MB uncompressed, shards <= 500 MB.
ROW_GROUP_MAX_BYTES = 100_000_000
SHARD_MAX_BYTES = 500_000_000
#: Rows per row group by default (and at most ``ROW_GROUP_MAX_BYTES`` uncompressed): the smallest automatic
#: shard, so that a reader's and an encoder's memory is the same for every size of release.
ROW_GROUP_ROWS = 62_500
#: Automatic shard size: a split gets ``ceil(rows / SHARDS_PER_SPLIT)`` rows per shard, within
#: [MIN_SHARD_ROWS, MAX_SHARD_ROWS] — so a split of >= 1 M rows has >= 16 shards (ranks x loader workers
#: stream in parallel) and a small split few files.
SHARDS_PER_SPLIT = 16
MIN_SHARD_ROWS = 62_500
MAX_SHARD_ROWS = 1_000_000
#: Default largest raw input file (checked before it is opened): 64 GiB, ~100 M rows of Parquet or ~60 M of
#: CSV; the builder streams, so this bounds disk and time, not memory. Split bigger exports into parts.
MAX_FILE_BYTES = 64 << 30
WORLD_JSON = "world.json"


# ------------------------------------------------------------------------------------------- config
@dataclass
class BuildConfig:
    """What to build. The CLI only fills one in; every field is checked here."""

    sources: list[Path]  # raw files or folders (Parquet, JSONL, CSV); a world/ inside is carried over
    out: Path  # release folder to create
    version: str  # dataset version, semver X.Y.Z
    max_reject_rate: float = 0.01  # fail when rejected / rows_in exceeds this
    test_start_day: _dt.date | None = None  # first test day; None: world/world.json's, else refused
    overwrite: bool = False  # replace an existing release at `out`
    rows_per_shard: int | None = None  # rows per Parquet shard (also capped by shard_max_bytes); None: auto_rows_per_shard
    row_group_rows: int = ROW_GROUP_ROWS  # rows per row group (also capped by row_group_max_bytes)
    row_group_max_bytes: int = ROW_GROUP_MAX_BYTES  # uncompressed, estimated from the row contents
    shard_max_bytes: int = SHARD_MAX_BYTES  # uncompressed estimate, an upper bound of the file size
    sample_rows: int = 10_000  # rows of the `sample` config, train + test (>= 2: each split gets one)
    seed: int = 0  # seed of the sample
    batch_rows: int = 65_536  # rows per batch read from Parquet
    block_bytes: int = 16 << 20  # bytes per block read from CSV / JSONL (a JSONL line must fit in one)
    max_file_bytes: int = MAX_FILE_BYTES  # refuse any input file larger than this, before reading it
    ordering: Literal["auto", "spill"] = "auto"  # kept for compatibility: every build now spills and sorts by day
    workers: int | None = None  # processes validating and encoding; None: os.cpu_count()
    engine: Literal["local", "ray"] = "local"  # "ray": Ray Data (pip install 'genco-data[ray]')
    ray_address: str | None = None  # join this Ray cluster (engine "ray"); None: a local Ray
    spill_compression: Literal["none", "lz4", "zstd"] = "none"  # the temporary spill: disk (~350 B/row raw) vs CPU

    def __post_init__(self) -> None:
        if isinstance(self.sources, (str, Path)):
            raise TypeError("sources must be a list of paths, got a single path")
        self.sources = [Path(s) for s in self.sources]
        if not self.sources:
            raise InvalidInputError("no sources given")
        self.out = Path(self.out)
        try:  # the manifest's grammar (ASCII digits, no leading zeros, matched whole), checked before any work
            check_semver(self.version, "version")
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        if isinstance(self.test_start_day, str):
            try:
                self.test_start_day = _dt.date.fromisoformat(self.test_start_day)
            except ValueError:
                raise InvalidInputError(f"test_start_day must be YYYY-MM-DD, got {self.test_start_day!r}") from None
        if self.test_start_day is not None and (
            not isinstance(self.test_start_day, _dt.date) or isinstance(self.test_start_day, _dt.datetime)
        ):
            raise TypeError(f"test_start_day must be a datetime.date, got {type(self.test_start_day).__name__}")
        if not (isinstance(self.max_reject_rate, (int, float)) and 0.0 <= self.max_reject_rate <= 1.0):
            raise InvalidInputError(f"max_reject_rate must be in [0, 1], got {self.max_reject_rate!r}")
        if self.rows_per_shard is not None and (isinstance(self.rows_per_shard, bool) or not isinstance(self.rows_per_shard, int) or self.rows_per_shard < 1):
            raise InvalidInputError(f"rows_per_shard must be a positive integer (or None: automatic), got {self.rows_per_shard!r}")
        if self.workers is None:
            self.workers = os.cpu_count() or 1
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InvalidInputError(f"workers must be a positive integer, got {self.workers!r}")
        if self.engine not in ("local", "ray"):
            raise InvalidInputError(f"engine must be 'local' or 'ray', got {self.engine!r}")
        if self.spill_compression not in ("none", "lz4", "zstd"):
            raise InvalidInputError(f"spill_compression must be 'none', 'lz4' or 'zstd', got {self.spill_compression!r}")
        if self.ray_address is not None and self.engine != "ray":
            raise InvalidInputError("ray_address needs engine 'ray'")
        for name in ("row_group_rows", "row_group_max_bytes", "shard_max_bytes", "batch_rows", "block_bytes", "max_file_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
        if self.row_group_max_bytes > ROW_GROUP_MAX_BYTES:
            raise InvalidInputError(f"row_group_max_bytes must be <= {ROW_GROUP_MAX_BYTES:,} (format contract), got {self.row_group_max_bytes:,}")
        if self.shard_max_bytes > SHARD_MAX_BYTES:
            raise InvalidInputError(f"shard_max_bytes must be <= {SHARD_MAX_BYTES:,} (format contract), got {self.shard_max_bytes:,}")
        if self.batch_rows > 1 << 22:
            raise InvalidInputError(f"batch_rows must be <= {1 << 22:,}, got {self.batch_rows:,}")
        if isinstance(self.sample_rows, bool) or not isinstance(self.sample_rows, int) or self.sample_rows < 2:
            raise InvalidInputError(f"sample_rows must be an integer >= 2 (one row per split at least), got {self.sample_rows!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if self.ordering not in ("auto", "spill"):
            raise InvalidInputError(f"ordering must be 'auto' or 'spill', got {self.ordering!r}")


def auto_rows_per_shard(split_rows: int) -> int:
    """Rows per shard for a split of ``split_rows`` rows when ``rows_per_shard`` is not given."""
    return min(MAX_SHARD_ROWS, max(MIN_SHARD_ROWS, -(-split_rows // SHARDS_PER_SPLIT)))


# ---------------------------------------------------------------------------------------- the plan
@dataclass
class _Input:
    path: Path
    name: str  # as recorded in the manifest and in rejects: relative to the source's parent
    fmt: str


@dataclass
class _Plan:
    inputs: list[_Input]
    world: Path | None
    world_json: dict[str, Any]
    test_start_day: _dt.date
    ignored: list[str] = field(default_factory=list)  # files in the sources that are not read


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _inside(path: Path, root: Path, where: Path) -> Path:
    """``path`` resolved; refuses (one line) a symlink that dangles, loops or leads outside ``root``."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise InvalidInputError(f"{where}: a symlink that points nowhere ({os.readlink(path)!r}); remove it or fix its target") from None
    except (RuntimeError, OSError) as exc:  # a loop (ELOOP), or unreadable
        raise InvalidInputError(f"{where}: cannot follow this symlink ({_one_line(exc)}); symlink loops are refused") from None
    if real != root and root not in real.parents:
        raise InvalidInputError(f"{where}: a symlink to {real}, outside the source {root}; the builder reads nothing outside its sources")
    return real


def _expand(sources: list[Path]) -> tuple[list[_Input], list[Path], list[str]]:
    inputs: list[_Input] = []
    worlds: list[Path] = []
    ignored: list[str] = []
    for src in sources:
        if not src.exists():
            if src.is_symlink():
                raise InvalidInputError(f"{src}: a symlink that points nowhere")
            raise InvalidInputError(f"{src}: no such file or folder")
        if src.is_file():
            fmt = FORMATS.get(src.suffix.lower())
            if fmt is None:
                raise InvalidInputError(f"{src}: unknown input type {src.suffix!r}; expected one of {sorted(FORMATS)}")
            inputs.append(_Input(src, src.name, fmt))
            continue
        root = src.resolve()
        base = root.parent
        if (src / WORLD_JSON).is_file():  # the source *is* a world folder
            _check_world(src)
            worlds.append(src)
            continue
        stack = [(src, root)]
        seen_dirs = {root}
        while stack:
            d, real_d = stack.pop()
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as exc:
                raise InvalidInputError(f"{d}: cannot list this folder ({_one_line(exc)})") from None
            subdirs = []
            for e in entries:
                p = Path(e.path)
                if e.name.startswith("."):
                    ignored.append(p.relative_to(src).as_posix() if p != src else e.name)
                    continue
                real = _inside(p, root, p) if e.is_symlink() else real_d / e.name
                if real.is_dir():
                    if real in seen_dirs:
                        raise InvalidInputError(f"{p}: this folder is reached twice (a symlink to {real}); symlink loops are refused")
                    if e.name == WORLD_DIR and (p / WORLD_JSON).is_file():
                        _check_world(p)
                        worlds.append(p)
                        continue
                    if (p / MANIFEST_NAME).is_file():
                        ignored.append(f"{p.relative_to(src).as_posix()}/ (a release)")
                        continue  # an existing release: never read it back in
                    seen_dirs.add(real)
                    subdirs.append((p, real))
                    continue
                fmt = FORMATS.get(Path(e.name).suffix.lower())
                if fmt is None or not real.is_file():
                    ignored.append(p.relative_to(src).as_posix())
                    continue
                inputs.append(_Input(p, real.relative_to(base).as_posix(), fmt))
            stack.extend(reversed(subdirs))  # depth first, sorted: the order os.walk gave
    seen: dict[Path, _Input] = {}
    for inp in inputs:
        key = inp.path.resolve()
        if key in seen:
            raise BuildError(f"{inp.path}: given twice (also as {seen[key].path})")
        seen[key] = inp
    return inputs, worlds, ignored


def _check_world(world: Path) -> None:
    """``world/`` may hold regular files and folders only: it is copied into the release and published, so
    a symlink there (to a system file, or a loop) refuses the build."""
    for dirpath, dirnames, filenames in os.walk(world):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise InvalidInputError(f"{p}: a symlink in world/; world/ may hold regular files only (it travels with the release)")
            if name in filenames and not p.is_file():
                raise InvalidInputError(f"{p}: not a regular file; world/ may hold regular files only")


def _plan(cfg: BuildConfig) -> _Plan:
    inputs, worlds, ignored = _expand(cfg.sources)
    if len(worlds) > 1:
        raise BuildError(f"more than one world/ in the sources: {', '.join(str(w) for w in worlds)}")
    if not inputs:
        raise BuildError(f"no input files (*.parquet, *.jsonl, *.csv) in {', '.join(str(s) for s in cfg.sources)}")
    world = worlds[0] if worlds else None
    world_json: dict[str, Any] = {}
    if world is not None:
        try:
            world_json = json.loads((world / WORLD_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"{world / WORLD_JSON}: not valid JSON ({_one_line(exc)})") from None
        if not isinstance(world_json, dict):
            raise InvalidInputError(f"{world / WORLD_JSON}: expected a JSON object")
    tsd = cfg.test_start_day
    if tsd is None and world is not None:
        raw = world_json.get("test_start_day")
        try:
            tsd = _dt.date.fromisoformat(str(raw))
        except ValueError:
            raise InvalidInputError(f"{world / WORLD_JSON}: test_start_day {raw!r} is not a date YYYY-MM-DD") from None
    if tsd is None:
        raise BuildError("test_start_day required: pass --test-start-day YYYY-MM-DD (no world/world.json in the sources)")
    out = cfg.out.resolve()
    for inp in inputs:
        if out == inp.path.resolve() or out in inp.path.resolve().parents:
            raise BuildError(f"{inp.path}: input lies inside the output folder {cfg.out}")
        size = inp.path.stat().st_size
        if size > cfg.max_file_bytes:
            raise InvalidInputError(
                f"{inp.name}: {size:,} bytes is over the {cfg.max_file_bytes:,}-byte limit for one input file "
                "(BuildConfig.max_file_bytes); split it into parts or raise the limit"
            )
    return _Plan(inputs, world, world_json, tsd, ignored)


__all__ = ["FORMATS", "ROW_GROUP_MAX_BYTES", "SHARD_MAX_BYTES", "MAX_FILE_BYTES", "ROW_GROUP_ROWS", "BuildConfig", "auto_rows_per_shard"]
