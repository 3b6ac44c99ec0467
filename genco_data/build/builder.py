"""The streaming builder: raw Parquet / JSONL / CSV → a release folder (see :mod:`genco_data.release`).

``build_release(BuildConfig(sources=[...], out=..., version="1.0.0"))`` reads every input in batches,
validates them (:mod:`genco_data.build.validate`), and writes::

    <out>/data/impressions/{train,test}-NNNNN-of-MMMMM.parquet   chronological, zstd, CDC, page index
    <out>/data/sample/{train,test}-00000-of-00001.parquet        ~sample_rows rows, seeded
    <out>/rejects/rejects-NNNNN.parquet                          bad rows as read + reason, source_file, source_row
    <out>/world/                                                 copied from a source's world/ (synthetic data)
    <out>/manifest.json, <out>/README.md

Decisions (each one is a contract the tests hold):

* **Inputs.** Files ``*.parquet``/``*.pq`` (read with ``iter_batches``), ``*.jsonl``/``*.ndjson`` (one JSON
  object per line, the schema's column names as keys), ``*.csv`` (header = column names; an empty cell is
  null; **list columns are JSON-array text**, e.g. ``"[12,7,40]"``, ``[]`` for an empty pool; ``day`` as
  ``YYYY-MM-DD``). Folders are walked in sorted order; hidden entries, ``world/`` folders and folders that
  are themselves releases (hold a ``manifest.json``) are skipped, other suffixes are ignored. Input order
  (sources as given, files sorted within a folder, rows in file order) decides which of two rows with the
  same ``impression_id`` is kept (the first).
* **File-level errors** (unreadable / empty file, a file above ``max_file_bytes`` — checked before
  anything is read —, missing or unknown columns, unconvertible types, text that is not UTF-8, a CSV
  cell spanning lines) stop the build with one line naming the file; **row-level** errors send the row to
  ``rejects/``, as the reader produced it: Parquet rows keep the file's own columns and types, CSV rows
  every cell as the text in the file, JSONL rows the values parsed with the schema's JSON types (ints as
  int64, floats as float64, ``day`` as text). ``source_row`` is the 0-based row of the file (CSV: data
  row, so file line ``source_row + 2``).
* **Splits.** ``day < test_start_day`` → train, else test. ``test_start_day`` comes from the config, else
  from ``world/world.json`` (key ``test_start_day``), else the build is refused.
* **Chronological order, bounded memory.** Rows of each split are written in stable ``day`` order (ties keep
  input order). When every input is Parquet and a pre-scan of the ``day`` column finds each split's days
  already non-decreasing in input order (the simulator's output), rows stream straight to the shards.
  Otherwise each validated batch is stably sorted by day and its per-day pieces are spilled to an
  LZ4-compressed Arrow IPC file (``.spill/``, inside the temporary folder); at the end the pieces are
  replayed in ``(day, arrival)`` order. Memory holds one batch, one pending row group, at most two row
  groups queued for the writer thread and the sample, plus 8 bytes per accepted row (impression-id
  hashes) and one word per distinct (component id, day) pair, user and ad (statistics).
* **Shards.** Row groups hold ``row_group_rows`` rows and at most ``row_group_max_bytes`` (uncompressed,
  estimated per row); shards hold ``rows_per_shard`` rows and at most ``shard_max_bytes``. Cuts depend only
  on the row sequence, so the bytes of ``data/`` do not depend on input batch sizes or file splits.
* **Sample.** Bottom-k by ``splitmix64(hash(impression_id) XOR splitmix64(seed))``: deterministic, streaming,
  independent of batch boundaries; ``sample_rows`` split between train and test in proportion to their
  sizes (at least one row each when both are non-empty), kept in split order.
* **Atomic.** Everything is written into ``.<out name>.tmp-<pid>`` beside ``out`` and renamed onto ``out``
  only when complete; on any failure the temporary folder is removed. Temporary folders left by killed
  builds (their pid no longer runs) are removed by the next build of the same ``out``. Replacing a
  release (``overwrite``) takes two renames (``out`` -> ``.<out name>.old-<pid>``, then the new one onto
  ``out``); a build killed between them leaves the previous release in ``.old-<pid>``, and the next build
  of the same ``out`` puts it back before anything else.
* **Invariant.** ``rows_in = rows written + rows rejected``; the build fails when
  ``rows_rejected / rows_in > max_reject_rate``, there are no input rows, or a split would be empty.
* **Manifest.** ``files`` lists every file under ``data/`` and ``world/`` (path, rows for Parquet, bytes,
  sha256) — not ``README.md`` (re-rendered by ``genco card``), ``manifest.json`` itself, nor ``rejects/``
  (never published). ``stats`` are the train split's Table-1 figures (:mod:`genco_data.build.stats`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from genco_data import __version__
from genco_data.format.arrow import impressions_schema
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.errors import BuildError, GencoError, InvalidInputError
from genco_data.format.records import FORMAT_VERSION, ROW_COLUMNS, FileEntry, InputFile, Manifest, Source
from genco_data.release import DATA_DIR, MANIFEST_NAME, REJECTS_DIR, WORLD_DIR, sha256_file, shard_name
from genco_data.build.stats import StatsAccumulator
from genco_data.build.validate import (
    KINDS,
    REASONS,
    IdSet,
    check_schema,
    coerce,
    coerce_column,
    hash_strings,
    reason_strings,
    row_reasons,
    splitmix64,
    to_release_schema,
)

#: Input suffix -> reader.
FORMATS: dict[str, str] = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
#: Contract bounds (DESIGN.md): row groups <= 100 MB uncompressed, shards <= 500 MB.
ROW_GROUP_MAX_BYTES = 100_000_000
SHARD_MAX_BYTES = 500_000_000
#: Default largest raw input file (checked before it is opened): 64 GiB, ~100 M rows of Parquet or ~60 M of
#: CSV; the builder streams, so this bounds disk and time, not memory. Split bigger exports into parts.
MAX_FILE_BYTES = 64 << 30
WORLD_JSON = "world.json"
SPILL_DIR = ".spill"
_SEMVER_HELP = "semver X.Y.Z, e.g. 1.0.0"
_EPOCH = _dt.date(1970, 1, 1)
_SCHEMA = impressions_schema()
_DAY = _SCHEMA.get_field_index("day")


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
    rows_per_shard: int = 1_000_000  # rows per Parquet shard (also capped by shard_max_bytes)
    row_group_rows: int = 100_000  # rows per row group (also capped by row_group_max_bytes)
    row_group_max_bytes: int = ROW_GROUP_MAX_BYTES  # uncompressed, estimated from the row contents
    shard_max_bytes: int = SHARD_MAX_BYTES  # uncompressed estimate, an upper bound of the file size
    sample_rows: int = 10_000  # rows of the `sample` config, train + test (>= 2: each split gets one)
    seed: int = 0  # seed of the sample
    batch_rows: int = 65_536  # rows per batch read from Parquet
    block_bytes: int = 16 << 20  # bytes per block read from CSV / JSONL (a JSONL line must fit in one)
    max_file_bytes: int = MAX_FILE_BYTES  # refuse any input file larger than this, before reading it
    ordering: Literal["auto", "spill"] = "auto"  # "spill": always sort through the spill file

    def __post_init__(self) -> None:
        import re

        if isinstance(self.sources, (str, Path)):
            raise TypeError("sources must be a list of paths, got a single path")
        self.sources = [Path(s) for s in self.sources]
        if not self.sources:
            raise InvalidInputError("no sources given")
        self.out = Path(self.out)
        if not isinstance(self.version, str) or not re.match(r"^\d+\.\d+\.\d+$", self.version):
            raise InvalidInputError(f"version must be {_SEMVER_HELP}, got {self.version!r}")
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
        for name in ("rows_per_shard", "row_group_rows", "row_group_max_bytes", "shard_max_bytes", "batch_rows", "block_bytes", "max_file_bytes"):
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


@dataclass
class BuildResult:
    """What a build wrote (``to_dict()`` for ``--json``; ``summary()`` for humans)."""

    out: Path
    dataset_version: str
    test_start_day: _dt.date
    rows_in: int
    rows_rejected: int
    splits: dict[str, dict[str, int]]
    reject_reasons: dict[str, int]
    files: int
    bytes: int
    seconds: float
    ordering: str  # "stream" or "spill"
    synthetic: bool
    inputs: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["test_start_day"] = self.test_start_day.isoformat()
        d["rows_per_second"] = self.rows_in / self.seconds if self.seconds > 0 else None
        return d

    def summary(self) -> str:
        imp = self.splits[CONFIGS[0]]
        rate = 100 * self.rows_rejected / self.rows_in if self.rows_in else 0.0
        return (
            f"built {self.out} v{self.dataset_version}: {imp['train']:,} train + {imp['test']:,} test rows "
            f"from {self.rows_in:,} in {self.inputs} file(s), {self.rows_rejected:,} rejected ({rate:.3f} %), "
            f"{self.files} files, {self.seconds:.1f} s"
        )


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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _expand(sources: list[Path]) -> tuple[list[_Input], list[Path]]:
    inputs: list[_Input] = []
    worlds: list[Path] = []
    for src in sources:
        if not src.exists():
            raise InvalidInputError(f"{src}: no such file or folder")
        if src.is_file():
            fmt = FORMATS.get(src.suffix.lower())
            if fmt is None:
                raise InvalidInputError(f"{src}: unknown input type {src.suffix!r}; expected one of {sorted(FORMATS)}")
            inputs.append(_Input(src, src.name, fmt))
            continue
        base = src.resolve().parent
        if (src / WORLD_JSON).is_file():  # the source *is* a world folder
            worlds.append(src)
            continue
        for dirpath, dirnames, filenames in os.walk(src):
            d = Path(dirpath)
            keep = []
            for name in sorted(dirnames):
                sub = d / name
                if name.startswith("."):
                    continue
                if name == WORLD_DIR and (sub / WORLD_JSON).is_file():
                    worlds.append(sub)
                    continue
                if (sub / MANIFEST_NAME).is_file():
                    continue  # an existing release: never read it back in
                keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                fmt = FORMATS.get(Path(name).suffix.lower())
                if fmt is None or name.startswith("."):
                    continue
                p = d / name
                inputs.append(_Input(p, p.resolve().relative_to(base).as_posix(), fmt))
    seen: dict[Path, _Input] = {}
    for inp in inputs:
        key = inp.path.resolve()
        if key in seen:
            raise BuildError(f"{inp.path}: given twice (also as {seen[key].path})")
        seen[key] = inp
    return inputs, worlds


def _plan(cfg: BuildConfig) -> _Plan:
    inputs, worlds = _expand(cfg.sources)
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
    return _Plan(inputs, world, world_json, tsd)


# -------------------------------------------------------------------------------------------- readers
_JSON_TYPES = {"string": pa.string(), "date": pa.string(), "int": pa.int64(), "float": pa.float64(), "list": pa.list_(pa.int64())}
_JSON_SCHEMA = pa.schema([(c, _JSON_TYPES[KINDS[c]]) for c in ROW_COLUMNS])


def _read(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    """Batches of ``inp`` as read (the rows' original form, kept for rejects). File-level problems raise."""
    try:
        if inp.path.stat().st_size == 0:
            raise InvalidInputError(f"{inp.name}: empty file (0 bytes)")
        if inp.fmt == "parquet":
            yield from _read_parquet(inp, cfg)
        elif inp.fmt == "jsonl":
            yield from _read_jsonl(inp, cfg)
        else:
            yield from _read_csv(inp, cfg)
    except GencoError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInputError(f"{inp.name}: cannot read as {inp.fmt} ({_one_line(exc)})") from None


def _read_parquet(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    # buffered column reads: memory stays bounded even when a file has one huge row group
    pf = pq.ParquetFile(inp.path, buffer_size=8 << 20)
    check_schema(pf.schema_arrow, inp.name)
    yield from pf.iter_batches(batch_size=cfg.batch_rows)


def _first_json_line(inp: _Input, limit: int) -> dict | None:
    """The first non-blank line as a JSON object (for its keys); reads at most ``limit`` bytes per line, so a
    file without line breaks is refused instead of read whole."""
    with open(inp.path, "rb") as fh:
        k = 0
        while True:
            line = fh.readline(limit + 1)
            if not line:
                return None
            k += 1
            if len(line) > limit and not line.endswith(b"\n"):
                raise InvalidInputError(f"{inp.name}: line {k} is longer than {limit:,} bytes (block_bytes); one JSON object per line")
            if line.strip():
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(f"{inp.name}: line {k} is not valid UTF-8 ({exc.reason} at byte {exc.start}); the file must be UTF-8 encoded") from None
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise InvalidInputError(f"{inp.name}: line {k} is not a JSON object")
                return obj


def _read_jsonl(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    first = _first_json_line(inp, cfg.block_bytes)
    if first is None:
        return
    # names only (types are checked by the explicit schema below)
    check_schema(pa.schema([(k, pa.null()) for k in first]), inp.name)
    reader = pa_json.open_json(
        inp.path,
        read_options=pa_json.ReadOptions(block_size=cfg.block_bytes, use_threads=False),
        parse_options=pa_json.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="error"),
    )
    yield from reader


def _read_csv(inp: _Input, cfg: BuildConfig) -> Iterator[pa.RecordBatch]:
    reader = pa_csv.open_csv(
        inp.path,
        read_options=pa_csv.ReadOptions(block_size=cfg.block_bytes, use_threads=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={c: pa.string() for c in ROW_COLUMNS}, strings_can_be_null=True, null_values=[""]
        ),
    )
    check_schema(pa.schema([(n, pa.string()) for n in reader.schema.names]), inp.name)
    row0 = 0
    for batch in reader:
        # The CSV contract has no line breaks inside cells; one there means an unbalanced quote merged
        # lines into one record, which would silently hide a row. Refuse the file instead.
        for name, col in zip(batch.schema.names, batch.columns):
            newline = pc.fill_null(pc.match_substring_regex(col, "[\\r\\n]"), False)
            if pc.any(newline).as_py():
                k = row0 + int(np.flatnonzero(np.asarray(newline))[0])
                raise InvalidInputError(
                    f"{inp.name}: data row {k}, column {name!r}: a cell spans lines (unbalanced quote?); "
                    "CSV cells may not contain line breaks"
                )
        row0 += batch.num_rows
        yield batch


def _days_int(day: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return day.cast(pa.int32()).to_numpy(zero_copy_only=False)


def _already_chronological(plan: _Plan, cfg: BuildConfig) -> bool:
    """True when every input is Parquet and each split's (non-null) days never decrease in input order."""
    if any(inp.fmt != "parquet" for inp in plan.inputs):
        return False
    tsd = (plan.test_start_day - _EPOCH).days
    last = {True: -(2**31), False: -(2**31)}  # is_test -> last day seen
    for inp in plan.inputs:
        try:
            if inp.path.stat().st_size == 0:
                raise InvalidInputError(f"{inp.name}: empty file (0 bytes)")
            pf = pq.ParquetFile(inp.path)
            check_schema(pf.schema_arrow, inp.name)
            for batch in pf.iter_batches(batch_size=1 << 20, columns=["day"]):
                col, _ = coerce_column(batch.column(0), "day", inp.name)  # unparseable text -> null
                valid = col.is_valid()
                days = _days_int(col.filter(valid)) if col.null_count else _days_int(col)
                for is_test in (False, True):
                    d = days[(days >= tsd) == is_test]
                    if len(d):
                        if d[0] < last[is_test] or (len(d) > 1 and np.any(d[1:] < d[:-1])):
                            return False
                        last[is_test] = int(d[-1])
        except GencoError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InvalidInputError(f"{inp.name}: cannot read as parquet ({_one_line(exc)})") from None
    return True


# ----------------------------------------------------------------------------------------- the sinks
_LIST_COLS = tuple(f.name for f in _SCHEMA if pa.types.is_list(f.type))
_STR_COLS = tuple(f.name for f in _SCHEMA if pa.types.is_string(f.type))
# fixed-width bytes of a row in Arrow (values + offsets + validity, rounded up)
_FIXED_ROW_BYTES = sum((f.type.bit_width + 7) // 8 if pa.types.is_primitive(f.type) else 4 for f in _SCHEMA) + 4


def row_bytes(table: pa.Table) -> np.ndarray:
    """int64 ``[rows]``: each row's uncompressed Arrow size (fixed widths + 8 B per list element + string bytes)."""
    out = np.full(table.num_rows, _FIXED_ROW_BYTES, dtype=np.int64)
    for c in _LIST_COLS:
        out += 8 * pc.fill_null(pc.list_value_length(table.column(c)), 0).to_numpy().astype(np.int64)
    for c in _STR_COLS:
        out += pc.fill_null(pc.binary_length(table.column(c)), 0).to_numpy().astype(np.int64)
    return out


class _BottomK:
    """The ``k`` rows with the smallest keys ``splitmix64(hash(impression_id) ^ s)``, with their positions."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self.salt = splitmix64(np.array([seed], dtype=np.int64).astype(np.uint64))[0]
        self.table: pa.Table | None = None
        self.keys = np.zeros(0, dtype=np.uint64)
        self.pos = np.zeros(0, dtype=np.int64)
        self.seen = 0

    def update(self, table: pa.Table) -> None:
        n = table.num_rows
        start, self.seen = self.seen, self.seen + n
        if self.k == 0 or n == 0:
            return
        keys = splitmix64(hash_strings(table.column("impression_id")) ^ self.salt)
        pos = np.arange(start, start + n, dtype=np.int64)
        if len(self.keys) >= self.k:
            sel = np.flatnonzero(keys < self.keys.max())
            if not len(sel):
                return
            table, keys, pos = table.take(pa.array(sel)), keys[sel], pos[sel]
        both = pa.concat_tables([self.table, table]) if self.table is not None else table
        keys = np.concatenate([self.keys, keys])
        pos = np.concatenate([self.pos, pos])
        if len(keys) > self.k:
            keep = np.lexsort((pos, keys))[: self.k]
            both, keys, pos = both.take(pa.array(keep)), keys[keep], pos[keep]
        self.table, self.keys, self.pos = both.combine_chunks(), keys, pos

    def result(self, k: int) -> pa.Table:
        """The ``k`` smallest (``k <= self.k``), in the order they arrived."""
        if self.table is None or k == 0:
            return _SCHEMA.empty_table()
        keep = np.lexsort((self.pos, self.keys))[:k]
        keep = keep[np.argsort(self.pos[keep])]
        return self.table.take(pa.array(keep))


class _Background:
    """One writer thread (Parquet encoding releases the GIL, so it overlaps validation on another core);
    at most ``max_in_flight`` jobs queued, which bounds the memory held by pending row groups. Jobs run in
    submission order; a job's exception is raised in the caller at the next submit or at ``drain``."""

    def __init__(self, max_in_flight: int = 2) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genco-build-write")
        self.futures: deque[Future] = deque()
        self.max_in_flight = max_in_flight

    def submit(self, fn, *args) -> None:
        self.futures.append(self.pool.submit(fn, *args))
        while len(self.futures) > self.max_in_flight:
            self.futures.popleft().result()

    def drain(self) -> None:
        while self.futures:
            self.futures.popleft().result()

    def shutdown(self) -> None:
        """Wait for the thread to stop (errors of abandoned jobs are dropped: the build is failing)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.futures.clear()


class _ShardWriter:
    """Writes one split's rows (already in final order) into row groups and shards cut on the row sequence
    alone; shards are named ``<split>-NNNNN.part`` and renamed to ``-of-MMMMM`` by :meth:`close`. The
    Parquet encoding runs on ``background``."""

    def __init__(self, folder: Path, split: str, cfg: BuildConfig, observers: list, background: _Background) -> None:
        self.folder, self.split, self.cfg = folder, split, cfg
        self.observers = observers
        self.background = background
        self.rg_rows = min(cfg.row_group_rows, cfg.rows_per_shard)
        self.pending: list[pa.Table] = []
        self.pending_bytes: list[np.ndarray] = []
        self.pending_rows = 0
        self.writer: pq.ParquetWriter | None = None
        self.parts: list[Path] = []
        self.shard_rows = 0
        self.shard_bytes = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        for obs in self.observers:
            obs.update(table)
        self.rows += table.num_rows
        self.pending.append(table)
        self.pending_bytes.append(row_bytes(table))
        self.pending_rows += table.num_rows
        self._drain(final=False)

    def _drain(self, final: bool) -> None:
        """Write every row group whose cut is decided. A group ends at the first of: ``row_group_rows``
        rows, the shard's remaining rows, ``row_group_max_bytes`` or the shard's remaining bytes (a single
        row larger than those is written alone). Cuts depend on the row sequence only."""
        while self.pending_rows:
            sizes = np.concatenate(self.pending_bytes) if len(self.pending_bytes) > 1 else self.pending_bytes[0]
            cum = np.cumsum(sizes)
            rows_left = self.cfg.rows_per_shard - self.shard_rows
            bytes_left = self.cfg.shard_max_bytes - self.shard_bytes
            k = min(self.rg_rows, rows_left, self.pending_rows)
            k = min(k, int(np.searchsorted(cum, min(self.cfg.row_group_max_bytes, bytes_left), side="right")))
            if k == 0:
                if self.shard_rows:
                    self._close_shard()  # the next row does not fit in this shard's bytes
                    continue
                k = 1  # one row above the byte caps: alone in its row group and shard
            decided = k < self.pending_rows or k == self.rg_rows or k == rows_left
            if not (decided or final):
                return  # the row group may still grow
            self._write_group(k, int(cum[k - 1]))
            if self.shard_rows >= self.cfg.rows_per_shard:
                self._close_shard()

    def _write_group(self, k: int, nbytes: int) -> None:
        table = pa.concat_tables(self.pending)
        group, rest = table.slice(0, k), table.slice(k)
        sizes = np.concatenate(self.pending_bytes)
        self.pending = [rest] if rest.num_rows else []
        self.pending_bytes = [sizes[k:]] if rest.num_rows else []
        self.pending_rows = rest.num_rows
        writer = self.writer if self.writer is not None else self._open_shard()
        self.background.submit(writer.write_table, group.combine_chunks(), k)
        self.shard_rows += k
        self.shard_bytes += nbytes

    def _open_shard(self) -> pq.ParquetWriter:
        path = self.folder / f"{self.split}-{len(self.parts):05d}.part"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = open_parquet_writer(path)
        self.parts.append(path)
        return self.writer

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.background.submit(self.writer.close)
        self.writer = None
        self.shard_rows = 0
        self.shard_bytes = 0

    def close(self) -> list[tuple[Path, int]]:
        """Flush, close, rename; returns ``[(path, rows)]``. A split without rows gets one empty shard."""
        self._drain(final=True)
        if not self.parts:
            self._open_shard()
        self._close_shard()
        self.background.drain()
        out = []
        for i, part in enumerate(self.parts):
            final = part.with_name(shard_name(self.split, i, len(self.parts)))
            os.replace(part, final)
            out.append((final, pq.ParquetFile(final).metadata.num_rows))
        return out


#: Dictionary encoding for every column but the unique ``impression_id`` (element ids repeat across rows:
#: ~20 % smaller shards on simulator data for ~2 % more encoding time); min/max statistics (and so the
#: page index's column index) for the scalar columns, not the id lists.
_DICTIONARY_COLUMNS = [f.name for f in _SCHEMA if f.name != "impression_id"]
_STATISTICS_COLUMNS = [f.name for f in _SCHEMA if not pa.types.is_list(f.type)]


def open_parquet_writer(path: Path) -> pq.ParquetWriter:
    """A ParquetWriter with the release's settings: zstd, content-defined chunking, page index, sorted by day."""
    return pq.ParquetWriter(
        path,
        _SCHEMA,
        compression="zstd",
        use_content_defined_chunking=True,
        write_page_index=True,
        use_dictionary=_DICTIONARY_COLUMNS,
        write_statistics=_STATISTICS_COLUMNS,
        sorting_columns=[pq.SortingColumn(_DAY)],
    )


class _Spill:
    """Per split: validated rows as day-sorted pieces in an LZ4 Arrow IPC file; replayed in (day, arrival)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pa.ipc.RecordBatchFileWriter | None = None
        self.days: list[int] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.rows += table.num_rows
        days = _days_int(table.column("day"))
        if np.any(days[1:] < days[:-1]):
            order = np.argsort(days, kind="stable")
            table, days = table.take(pa.array(order)), days[order]
        table = table.combine_chunks()
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pa.ipc.new_file(str(self.path), _SCHEMA, options=pa.ipc.IpcWriteOptions(compression="lz4"))
        cuts = np.concatenate([[0], np.flatnonzero(days[1:] != days[:-1]) + 1, [len(days)]])
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            (piece,) = table.slice(a, b - a).to_batches()  # one chunk: the table was combined
            self.writer.write_batch(piece)
            self.days.append(int(days[a]))

    def replay(self) -> Iterator[pa.Table]:
        if self.writer is None:
            return
        self.writer.close()
        order = sorted(range(len(self.days)), key=lambda i: (self.days[i], i))  # one entry per piece
        with pa.OSFile(str(self.path)) as source:  # plain reads: a piece's memory is freed once written
            reader = pa.ipc.open_file(source)
            for i in order:
                yield pa.Table.from_batches([reader.get_batch(i)])
        self.path.unlink()


class _Rejects:
    """``rejects/rejects-NNNNN.parquet``: one file per input file with rejects; its columns as read, plus
    ``reason``, ``source_file`` and ``source_row`` (0-based row of the input file; CSV: data rows)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writer: pq.ParquetWriter | None = None
        self.source: str | None = None
        self.files = 0
        self.rows = 0
        self.reasons: Counter[str] = Counter()

    def write(self, source: str, batch: pa.RecordBatch, codes: np.ndarray, row0: int) -> None:
        bad = np.flatnonzero(codes)
        if not len(bad):
            return
        t = pa.Table.from_batches([batch]).take(pa.array(bad))
        t = t.append_column("reason", reason_strings(codes[bad]))
        t = t.append_column("source_file", pa.array([source] * len(bad), pa.string()))
        t = t.append_column("source_row", pa.array(row0 + bad, pa.int64()))
        if self.writer is None or source != self.source or not self.writer.schema.equals(t.schema):
            self.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.folder / f"rejects-{self.files:05d}.parquet", t.schema, compression="zstd")
            self.files += 1
            self.source = source
        self.writer.write_table(t)
        self.rows += len(bad)
        for code, k in zip(*np.unique(codes[bad], return_counts=True)):
            self.reasons[REASONS[int(code) - 1]] += int(k)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ------------------------------------------------------------------------------------------ the build
def _tmp_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.tmp-{os.getpid()}"


def _left_by_dead_builds(out: Path, kind: str) -> list[Path]:
    """``.<name>.<kind>-<pid>`` folders beside ``out`` whose build process no longer runs (or is this one)."""
    found = []
    for p in sorted(out.parent.glob(f".{out.name}.{kind}-*")):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # alive, another user's
        found.append(p)
    return found


def _restore_previous(out: Path) -> None:
    """A rebuild killed between its two renames (``out`` -> ``.<name>.old-<pid>``, temporary -> ``out``) left
    no ``out``: put the previous release back, as if the rebuild had never started."""
    if out.exists() or out.is_symlink():
        return
    for old in _left_by_dead_builds(out, "old"):
        if (old / MANIFEST_NAME).is_file():
            os.rename(old, out)
            return


def _remove_stale(out: Path) -> None:
    """Remove the ``.<name>.tmp-<pid>`` / ``.<name>.old-<pid>`` folders of builds of ``out`` whose process
    no longer runs."""
    for p in _left_by_dead_builds(out, "tmp") + _left_by_dead_builds(out, "old"):
        shutil.rmtree(p, ignore_errors=True)


def _check_out(cfg: BuildConfig) -> None:
    out = cfg.out
    if out.exists() or out.is_symlink():
        if not cfg.overwrite:
            raise BuildError(f"{out} exists; pass --overwrite to replace it")
        if not out.is_dir() or not ((out / MANIFEST_NAME).is_file() or not any(out.iterdir())):
            raise BuildError(f"refusing to overwrite {out}: it is not a release folder (no {MANIFEST_NAME})")


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(old, out)  # the previous release stays in place
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def build_release(cfg: BuildConfig, progress: bool = True, finalize: Callable[[Path], None] | None = None) -> BuildResult:
    """Build the release described by ``cfg`` (see the module docstring); atomic: either ``cfg.out`` is a
    complete release afterwards, or the call raised and ``cfg.out`` is as before.

    ``finalize(folder)`` runs on the finished temporary folder (manifest written) before it is moved into
    place; :func:`genco_data.pipeline.build_release` passes the card renderer. The builder itself never
    imports the card (the house's one-way rule: build, then card, orchestrated from above)."""
    t0 = time.perf_counter()
    plan = _plan(cfg)
    _restore_previous(cfg.out)
    _check_out(cfg)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(cfg.out)
    tmp = _tmp_dir(cfg.out)
    tmp.mkdir()
    try:
        result = _build_into(tmp, plan, cfg, progress, t0, finalize)
        try:
            _move_into_place(tmp, cfg.out)
        except OSError as exc:
            raise BuildError(f"could not move the finished release onto {cfg.out}: {_one_line(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.seconds = time.perf_counter() - t0
    return result


def _progress_bar(plan: _Plan, progress: bool):
    from tqdm.auto import tqdm

    total = None
    if progress and all(i.fmt == "parquet" for i in plan.inputs):
        try:
            total = sum(pq.ParquetFile(i.path).metadata.num_rows for i in plan.inputs)
        except Exception:  # a broken file is reported by the reader with a proper message
            total = None
    return tqdm(total=total, unit="rows", unit_scale=True, desc="build", disable=not progress, leave=False)


def _build_into(tmp: Path, plan: _Plan, cfg: BuildConfig, progress: bool, t0: float,
                finalize: Callable[[Path], None] | None) -> BuildResult:
    if plan.world is not None:
        shutil.copytree(plan.world, tmp / WORLD_DIR, symlinks=False)
    stream = cfg.ordering == "auto" and _already_chronological(plan, cfg)
    stats = StatsAccumulator()
    samplers = {s: _BottomK(cfg.sample_rows, cfg.seed) for s in SPLITS}
    background = _Background()
    try:
        writers = {
            s: _ShardWriter(tmp / DATA_DIR / CONFIGS[0], s, cfg, [samplers[s]] + ([stats] if s == "train" else []), background)
            for s in SPLITS
        }
        spills = {s: _Spill(tmp / SPILL_DIR / f"{s}.arrow") for s in SPLITS}
        rejects = _Rejects(tmp / REJECTS_DIR)
        sinks = writers if stream else spills
        rows_in = _ingest(plan, cfg, sinks, rejects, progress)
        _check_counts(rows_in, rejects, {s: sinks[s].rows for s in SPLITS}, plan, cfg)
        if not stream:
            for s in SPLITS:
                for piece in spills[s].replay():
                    writers[s].write(piece)
            shutil.rmtree(tmp / SPILL_DIR, ignore_errors=True)
        shards = {s: writers[s].close() for s in SPLITS}
    finally:
        background.shutdown()
    split_rows = {s: writers[s].rows for s in SPLITS}
    if sum(split_rows.values()) + rejects.rows != rows_in:  # pragma: no cover - the invariant, checked on every build
        raise BuildError(f"internal error: rows_in {rows_in} != written {sum(split_rows.values())} + rejected {rejects.rows}")
    sample_rows = _write_sample(tmp, samplers, split_rows, cfg.sample_rows)
    files = _file_entries(tmp, shards, sample_rows)
    manifest = Manifest(
        dataset_version=cfg.version,
        format_version=FORMAT_VERSION,
        created_by=f"genco-data {__version__}",
        source=_source(plan),
        test_start_day=plan.test_start_day,
        splits={CONFIGS[0]: split_rows, CONFIGS[1]: {s: sample_rows[s] for s in SPLITS}},
        rows_in=rows_in,
        rows_rejected=rejects.rows,
        files=files,
        stats=stats.result(),
    )
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    if finalize is not None:
        finalize(tmp)  # e.g. the card: written inside the temporary folder, so the release appears whole
    return BuildResult(
        out=cfg.out,
        dataset_version=cfg.version,
        test_start_day=plan.test_start_day,
        rows_in=rows_in,
        rows_rejected=rejects.rows,
        splits=manifest.splits,
        reject_reasons=dict(sorted(rejects.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        files=len(files),
        bytes=sum(f.bytes for f in files),
        seconds=time.perf_counter() - t0,
        ordering="stream" if stream else "spill",
        synthetic=plan.world is not None,
        inputs=len(plan.inputs),
    )


def _ingest(plan: _Plan, cfg: BuildConfig, sinks: dict[str, Any], rejects: _Rejects, progress: bool) -> int:
    """Read, validate and route every input row (good rows to ``sinks[split]``, bad rows to ``rejects``);
    returns the number of rows read."""
    tsd = (plan.test_start_day - _EPOCH).days
    seen = IdSet()  # impression-id hashes accepted so far
    rows_in = 0
    bar = _progress_bar(plan, progress)
    try:
        for inp in plan.inputs:
            row0 = 0
            for batch in _read(inp, cfg):
                n = batch.num_rows
                if n == 0:
                    continue
                coerced = coerce(batch, inp.name)
                codes = row_reasons(coerced, test_start_day=plan.test_start_day, seen=seen)
                bad = codes != 0
                wide = coerced.table
                if bad.any():
                    rejects.write(inp.name, batch, codes, row0)
                    wide = wide.filter(pa.array(~bad))
                good = to_release_schema(wide)
                is_test = _days_int(good.column("day")) >= tsd
                if not is_test.any():
                    sinks["train"].write(good)
                elif is_test.all():
                    sinks["test"].write(good)
                else:
                    sinks["train"].write(good.filter(pa.array(~is_test)))
                    sinks["test"].write(good.filter(pa.array(is_test)))
                rows_in += n
                row0 += n
                bar.update(n)
    finally:
        bar.close()
        rejects.close()
    return rows_in


def _check_counts(rows_in: int, rejects: _Rejects, split_rows: dict[str, int], plan: _Plan, cfg: BuildConfig) -> None:
    """Refuse: no input rows; a reject rate above the maximum; an empty split (a release has both)."""
    if rows_in == 0:
        raise BuildError(f"no input rows in {', '.join(str(s) for s in cfg.sources)}")
    rate = rejects.rows / rows_in
    if rate > cfg.max_reject_rate:
        top = ", ".join(f"{k} {v:,}" for k, v in rejects.reasons.most_common(3))
        raise BuildError(
            f"{rejects.rows:,} of {rows_in:,} rows rejected ({100 * rate:.2f} % > --max-reject-rate "
            f"{100 * cfg.max_reject_rate:g} %); most common: {top}"
        )
    for split, where in (("train", "before"), ("test", "on or after")):
        if split_rows[split] == 0:
            raise BuildError(
                f"no {split} rows: no valid row is {where} test_start_day {plan.test_start_day.isoformat()} "
                "(a release needs both splits; check --test-start-day)"
            )


def _write_sample(tmp: Path, samplers: dict[str, _BottomK], split_rows: dict[str, int], k: int) -> dict[str, int]:
    total = sum(split_rows.values())
    want = {}
    if total:
        want["train"] = min(split_rows["train"], round(k * split_rows["train"] / total))
        want["test"] = min(split_rows["test"], k - want["train"])
        for a, b in (("train", "test"), ("test", "train")):
            if want[a] == 0 and split_rows[a] and k >= 2 and want[b] > 1:
                want[a], want[b] = 1, want[b] - 1
    else:
        want = {s: 0 for s in SPLITS}
    folder = tmp / DATA_DIR / CONFIGS[1]
    folder.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        table = samplers[s].result(want[s])
        w = open_parquet_writer(folder / shard_name(s, 0, 1))
        if table.num_rows:
            w.write_table(table.combine_chunks(), row_group_size=max(table.num_rows, 1))
        w.close()
    return want


def _file_entries(tmp: Path, shards: dict[str, list[tuple[Path, int]]], sample_rows: dict[str, int]) -> list[FileEntry]:
    rows_of: dict[str, int] = {}
    for s in SPLITS:
        for p, n in shards[s]:
            rows_of[p.relative_to(tmp).as_posix()] = n
        rows_of[f"{DATA_DIR}/{CONFIGS[1]}/{shard_name(s, 0, 1)}"] = sample_rows[s]
    entries = []
    for top in (DATA_DIR, WORLD_DIR):
        folder = tmp / top
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(tmp).as_posix()
            entries.append(FileEntry(path=rel, rows=rows_of.get(rel), bytes=p.stat().st_size, sha256=sha256_file(p)))
    return entries


def _source(plan: _Plan) -> Source:
    inputs = [InputFile(path=i.name, bytes=i.path.stat().st_size, sha256=sha256_file(i.path)) for i in plan.inputs]
    if plan.world is None:
        return Source(kind="raw", inputs=inputs)
    w = plan.world_json
    params = w.get("parameters", w.get("config"))  # the simulator writes its SynthConfig under "config"
    if not isinstance(params, dict):
        params = {k: v for k, v in w.items() if k != "test_start_day"}
    seed = w.get("seed", params.get("seed"))
    generator = w.get("generator") or (f"genco_data.synth {w['generator_version']}" if "generator_version" in w else None)
    return Source(
        kind="synthetic",
        generator=str(generator) if generator is not None else None,
        seed=int(seed) if isinstance(seed, int) else None,
        parameters=params,
        inputs=inputs,
    )


__all__ = ["FORMATS", "ROW_GROUP_MAX_BYTES", "SHARD_MAX_BYTES", "MAX_FILE_BYTES", "BuildConfig", "BuildResult", "build_release", "row_bytes"]
