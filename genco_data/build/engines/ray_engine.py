"""The Ray engine: the first pass on **Ray Data**, the other passes as Ray tasks; the same job functions as the
local engine, so the same rows, rejects, statistics and bytes (``pip install 'genco-data[ray]'``).

First pass. Inputs are grouped into runs of consecutive files with the same reader schema; each run is one
Ray Data dataset — ``read_parquet`` (Parquet), ``read_csv`` (every column as text, the local reader's
options), ``read_text`` (JSONL: one line per row, so that a line lacking a key is told apart from a null,
which ``read_json`` cannot) — with ``include_paths=True``, then
``map_batches(check_and_spill, batch_format="pyarrow")``: per file's rows of the batch,
:func:`~genco_data.build.ingest.check_batch` (the per-batch rules every engine runs) and the spill of a
local ingest task (:class:`~genco_data.build.ingest.TaskSpill`, rows numbered within the run). The UDF
returns one small summary row per run; the driver reads them **in input order** and numbers the runs as
tasks, counting rows per file to know each run's first source row.

Ray's known traps, and why they do not bite here:

* *block order is not kept unless asked*: ``DataContext.execution_options.preserve_order = True``, and
  every summary carries its file;
* *blocks whose schemas differ only in nullability or in empty lists*: a run never mixes reader schemas,
  the UDF's output has one explicit schema (:data:`SUMMARY_SCHEMA`), and rows are cast to the release
  schema by the same function as locally;
* *uuid file names* and *``min_rows_per_file`` semantics* (a hint, not a bound): Ray writes no release
  file. Its spill files have uuid names (internal, removed with the spill); the shards are cut by the
  builder's layout and written by :func:`~genco_data.build.encode.encode_shard` under deterministic names.

Other passes: :meth:`RayEngine.map` runs the job function as Ray tasks, results fetched in job order.
Spill and output folders must be visible to every node (one machine, or a shared file system); see
docs/SCALE.md.
"""
from __future__ import annotations

import datetime as _dt
import signal
import socket
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from genco_data.errors import BuildError, GencoError
from genco_data.format.records import ROW_COLUMNS
from genco_data.build.ingest import IngestContext, IngestResult, IngestTask, Piece, TaskSpill, check_batch
from genco_data.build.unique import PIECE_BITS
from genco_data.build.plan import _Input, _Plan
from genco_data.build.readers import json_lines_table, missing_keys



def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BuildError("--engine ray needs Ray Data: pip install 'genco-data[ray]'") from None
    return ray


#: Seconds a cluster's address has to accept a connection: ``ray.init`` itself retries a dead address for minutes.
CONNECT_TIMEOUT_S = 10.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse at once an explicit ``host:port`` (or ``ray://host:port``) where nothing accepts a connection.

    ``auto``, ``local`` and an address without a port are left to Ray, which finds or starts the cluster itself."""
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    host = host.strip("[]")  # an IPv6 literal, [::1]:6379
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except socket.gaierror:
        raise BuildError(f"--ray-address {address}: unknown host {host!r}") from None
    except OSError as exc:
        why = "no answer within {:g} s".format(timeout) if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        raise BuildError(f"--ray-address {address}: nothing accepts connections at {host}:{port} ({why}); "
                         "is the cluster up (`ray status`)?") from None


class RayEngine:
    def __init__(self, workers: int, address: str | None) -> None:
        ray = _ray()
        self.ray = ray
        self.workers = workers
        self._started = False
        if not ray.is_initialized():
            if address:
                check_reachable(address)
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": workers}
            # ray.init replaces the process's SIGTERM handler with a bare sys.exit, for good: the caller's (genco's
            # clean stop, or the default) is put back.
            on_sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
            try:
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
            except Exception as exc:  # a wrong address, a cluster that does not answer
                raise BuildError(f"cannot start or join Ray ({' '.join(str(exc).split())[:300]})") from None
            finally:
                if on_sigterm is not None:
                    signal.signal(signal.SIGTERM, on_sigterm)
            self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # block order = input order
        ctx.enable_progress_bars = False

    # -------------------------------------------------------------------------------- passes 2 and 3
    def map(self, fn: Callable[..., Any], jobs: Iterable[Any], *args: Any) -> Iterator[Any]:
        remote = self.ray.remote(fn)
        todo = iter(jobs)
        pending: deque = deque()
        for job in todo:
            pending.append(remote.remote(job, *args))
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            result = self._get(pending.popleft())
            for job in todo:
                pending.append(remote.remote(job, *args))
                break
            yield result

    def _get(self, ref):
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, GencoError):
                raise cause from None
            if isinstance(cause, BaseException):
                raise cause
            raise

    # ------------------------------------------------------------------------------------ pass 1
    def ingest(self, plan: _Plan, ctx: IngestContext) -> Iterator[tuple[IngestTask, IngestResult]]:
        """The first pass on Ray Data (see the module docstring); ``(task, result)`` in input order."""
        index = {str(Path(inp.path).resolve()): k for k, inp in enumerate(plan.inputs)}
        next_row = {k: 0 for k in range(len(plan.inputs))}
        counter = 0
        datasets = [_dataset(self.ray, run, ctx) for run in _runs(plan.inputs)]
        ds = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]  # one execution, in order
        try:
            for summary in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                for row in summary.to_pylist():  # one row per (batch, file) run: a handful per batch
                    k = index[str(Path(row["path"]).resolve())]
                    inp = plan.inputs[k]
                    task = IngestTask(counter, k, str(inp.path), inp.name, inp.fmt, None, next_row[k])
                    next_row[k] += row["rows"]
                    counter += 1
                    yield task, _result(task, row, ctx.spill)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, GencoError):
                raise cause from None
            raise

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False


# ------------------------------------------------------------------------------------------ helpers
def _reader_kind(inp: _Input) -> Any:
    if inp.fmt == "parquet":
        try:
            return ("parquet", pq.ParquetFile(inp.path).schema_arrow)
        except (pa.ArrowException, OSError) as exc:
            raise BuildError(f"{inp.name}: cannot read as parquet ({' '.join(str(exc).split())})") from None
    return (inp.fmt, None)


def _runs(inputs: list[_Input]) -> list[list[_Input]]:
    """Consecutive inputs read by one dataset: same format and (Parquet) the same Arrow schema."""
    runs: list[list[_Input]] = []
    last = None
    for inp in inputs:
        if inp.path.stat().st_size == 0:
            raise BuildError(f"{inp.name}: empty file (0 bytes)")
        kind = _reader_kind(inp)
        if runs and kind[0] == last[0] and (kind[1] is None or kind[1].equals(last[1])):
            runs[-1].append(inp)
        else:
            runs.append([inp])
        last = kind
    return runs


def _dataset(ray, run: list[_Input], ctx: IngestContext):
    paths = [str(Path(i.path).resolve()) for i in run]
    fmt = run[0].fmt
    if fmt == "parquet":
        ds = ray.data.read_parquet(paths, include_paths=True, file_extensions=None)
    elif fmt == "csv":
        convert = pa_csv.ConvertOptions(column_types={c: pa.string() for c in ROW_COLUMNS}, strings_can_be_null=True, null_values=[""])
        ds = ray.data.read_csv(paths, include_paths=True, convert_options=convert, file_extensions=None)
    else:
        ds = ray.data.read_text(paths, include_paths=True, drop_empty_lines=True, file_extensions=None)
    names = {str(Path(i.path).resolve()): i.name for i in run}
    return ds.map_batches(check_and_spill, batch_format="pyarrow", batch_size=ctx.cfg.batch_rows,
                          fn_kwargs={"fmt": fmt, "names": names, "ctx": ctx})


def _runs_of(paths: pa.Array) -> list[tuple[str, int, int]]:
    """``[(path, start, stop)]``: the maximal runs of equal paths, in order (vectorized change points)."""
    if len(paths) == 0:
        return []
    enc = pa.compute.dictionary_encode(paths)
    codes = enc.indices.to_numpy(zero_copy_only=False)
    cuts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1, [len(codes)]])
    names = enc.dictionary.to_pylist()
    return [(names[codes[a]], int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]


SUMMARY_SCHEMA = pa.schema([
    ("path", pa.string()), ("rows", pa.int64()), ("stem", pa.string()),
    ("reject_local", pa.list_(pa.int64())), ("reject_codes", pa.list_(pa.int16())),
    ("pieces", pa.list_(pa.struct([("split", pa.int8()), ("day", pa.int32()), ("batch", pa.int32()),
                                   ("rows", pa.int64()), ("sizes_at", pa.int64())]))),
    ("partitions", pa.list_(pa.struct([("part", pa.int32()), ("batch", pa.int32())]))),
])


def check_and_spill(batch: pa.Table, fmt: str, names: dict[str, str], ctx: IngestContext) -> pa.Table:
    """Ray Data UDF: per file's rows of ``batch``, the per-batch rules
    (:func:`~genco_data.build.ingest.check_batch`) and the spill of a local ingest task
    (:class:`~genco_data.build.ingest.TaskSpill`); returns one summary row per file run (the driver numbers
    the runs as tasks, in input order)."""
    tsd = (ctx.test_start_day - _dt.date(1970, 1, 1)).days
    paths = batch.column("path").combine_chunks()
    data = batch.drop_columns(["path"])
    rows = []
    for path, a, b in _runs_of(paths):
        part = data.slice(a, b - a)
        where = names.get(str(Path(path).resolve()), path)
        missing = None
        if fmt == "jsonl":
            lines = part.column("text").combine_chunks().cast(pa.large_binary())
            blank = np.asarray(pa.compute.match_substring_regex(lines, r"^[ \t\r]*$"))
            lines = lines.filter(pa.array(~blank)) if blank.any() else lines
            part = json_lines_table(lines)
            missing = missing_keys(lines)
        codes, good = check_batch(part, where, ctx.test_start_day, missing)
        stem = uuid.uuid4().hex  # spill names are internal; the release's names are the builder's
        spill = TaskSpill(Path(ctx.spill), 0, ctx.n_partitions, stem=stem, compression=ctx.cfg.spill_compression)
        try:
            spill.write(good, np.flatnonzero(codes == 0).astype(np.int64), tsd)
        finally:
            spill.close()
        bad = np.flatnonzero(codes)
        rows.append({
            "path": path, "rows": len(codes), "stem": stem,
            "reject_local": bad.tolist(), "reject_codes": codes[bad].tolist(),
            "pieces": [{"split": p.split, "day": p.day, "batch": p.batch, "rows": p.rows, "sizes_at": p.sizes_at} for p in spill.pieces],
            "partitions": [{"part": q, "batch": i} for q, idx in spill.partitions.items() for i in idx],
        })
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


def _result(task: IngestTask, row: dict[str, Any], folder: str) -> IngestResult:
    """A Ray summary row as the :class:`IngestResult` of ``task`` (its number now known)."""
    stem = row["stem"]
    rows_file = str(Path(folder) / f"rows-{stem}.arrow")
    pieces = [Piece((task.index << PIECE_BITS) | k, p["split"], p["day"], rows_file, p["batch"], p["rows"], p["sizes_at"])
              for k, p in enumerate(row["pieces"])]
    partitions: dict[int, list[int]] = {}
    for q in row["partitions"]:
        partitions.setdefault(q["part"], []).append(q["batch"])
    local = np.asarray(row["reject_local"], dtype=np.int64)
    return IngestResult(task=task.index, rows_in=row["rows"], reject_rows=task.row0 + local,
                        reject_codes=np.asarray(row["reject_codes"], dtype=np.int16), pieces=pieces,
                        ids_file=str(Path(folder) / f"ids-{stem}.arrow"), partitions=partitions,
                        sizes_file=str(Path(folder) / f"sizes-{stem}.i32"))


__all__ = ["RayEngine", "check_and_spill", "SUMMARY_SCHEMA"]
