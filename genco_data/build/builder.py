"""The streaming builder: raw Parquet / JSONL / CSV → a release folder (see :mod:`genco_data.release`).

``build_release(BuildConfig(sources=[...], out=..., version="1.0.0"))`` reads every input in batches,
validates them (:mod:`genco_data.build.validate`), and writes::

    <out>/data/impressions/{train,test}-NNNNN-of-MMMMM.parquet   chronological, zstd, CDC, page index
    <out>/data/sample/{train,test}-00000-of-00001.parquet        ~sample_rows rows, seeded
    <out>/rejects/rejects-NNNNN.parquet                          bad rows as read + reason, source_file, source_row
    <out>/world/                                                 copied from a source's world/ (synthetic data)
    <out>/manifest.json, <out>/README.md

The parts, one job each (:mod:`genco_data.build`): :mod:`~genco_data.build.plan` finds the inputs,
:mod:`~genco_data.build.passes` runs the passes on an engine (:mod:`~genco_data.build.engines`: this
machine's cores, or Ray) — :mod:`~genco_data.build.ingest` (read, check, spill),
:mod:`~genco_data.build.unique` (exact id uniqueness), :mod:`~genco_data.build.layout` (chronological
order and the cuts), :mod:`~genco_data.build.encode` (the shards, statistics, sample candidates) —, and
:mod:`~genco_data.build.rejects` writes the rejects; their docstrings state their decisions. This module
runs them, atomically:

Decisions (each one is a contract the tests hold):

* **Atomic.** Everything is written into ``.<out name>.tmp-<pid>`` beside ``out`` and renamed onto ``out``
  only when complete; on any failure the temporary folder is removed. Temporary folders left by killed
  builds (their pid no longer runs) are removed by the next build of the same ``out``. Replacing a
  release (``overwrite``) takes two renames (``out`` -> ``.<out name>.old-<pid>``, then the new one onto
  ``out``); a build killed between them leaves the previous release in ``.old-<pid>``, and the next build
  of the same ``out`` puts it back before anything else.
* **One writer.** The build holds ``out``'s writer lock (``.<out name>.lock`` beside it, left in place on
  purpose: :mod:`genco_data.locks`); a second build of the same ``out`` fails at once naming the holder.
* **Determinism.** The data files, the sample and the manifest are byte-identical for any ``workers`` and
  engine: every job's output depends on its job alone and results are used in job order.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from genco_data import __version__
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.errors import BuildError
from genco_data.format.records import FORMAT_VERSION, FileEntry, InputFile, Manifest, Source
from genco_data.locks import writer_lock
from genco_data.release import DATA_DIR, MANIFEST_NAME, REJECTS_DIR, WORLD_DIR, sha256_file, shard_name
from genco_data.build.disk import check_space, out_of_space, out_of_space_error, space_need
from genco_data.build.engines import open_engine
from genco_data.build.ingest import estimated_rows, plan_tasks
from genco_data.build.passes import run_passes
from genco_data.build.plan import BuildConfig, _one_line, _Plan, _plan
from genco_data.build.rejects import write_rejects
from genco_data.build.writer import _write_sample

SPILL_DIR = ".spill"


# -------------------------------------------------------------------------------------------- the result
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
    ordering: str  # "stream": rows kept their input order (already chronological); "spill": sorted by day
    synthetic: bool
    inputs: int
    ignored: list[str]  # files in the sources that were not read (other suffixes, hidden, releases)
    workers: int
    engine: str

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
            + (f"; {len(self.ignored)} other file(s) not read: {', '.join(self.ignored[:3])}{' ...' if len(self.ignored) > 3 else ''}"
               if self.ignored else "")
        )


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


#: Longest ``--out`` name: its temporary sibling ``.<name>.tmp-<pid>`` must fit the usual 255-byte name limit.
MAX_OUT_NAME_BYTES = 255 - len(".") - len(".tmp-") - 10


def _prepare_out_parent(out: Path) -> None:
    """Create ``out``'s parent folder; a path under a regular file, or a name too long, is one line."""
    if len(out.name.encode("utf-8", "surrogateescape")) > MAX_OUT_NAME_BYTES:
        raise BuildError(f"{out}: the folder name is {len(out.name.encode('utf-8', 'surrogateescape'))} bytes; at most "
                         f"{MAX_OUT_NAME_BYTES} (its temporary sibling .<name>.tmp-<pid> must fit the file system's 255)")
    for parent in [out.parent, *out.parent.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise BuildError(f"{out}: cannot create it: {parent} is not a folder")
            break
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"{out}: cannot create its parent folder ({exc.strerror or _one_line(exc)})") from None


def build_release(cfg: BuildConfig, progress: bool = True, finalize: Callable[[Path], None] | None = None) -> BuildResult:
    """Build the release described by ``cfg`` (see the module docstring); atomic: either ``cfg.out`` is a
    complete release afterwards, or the call raised and ``cfg.out`` is as before.

    ``finalize(folder)`` runs on the finished temporary folder (manifest written) before it is moved into
    place; :func:`genco_data.pipeline.build_release` passes the card renderer. The builder itself never
    imports the card (the house's one-way rule: build, then card, orchestrated from above).

    One writer per ``out``: a second build of the same ``out`` (with or without ``overwrite``) while this one
    runs fails at once with one line naming the holder (:func:`genco_data.locks.writer_lock`)."""
    t0 = time.perf_counter()
    plan = _plan(cfg)
    _prepare_out_parent(cfg.out)
    with writer_lock(cfg.out, "genco build"):
        return _locked_build(cfg, plan, progress, finalize, t0)


def _locked_build(cfg: BuildConfig, plan: _Plan, progress: bool, finalize: Callable[[Path], None] | None, t0: float) -> BuildResult:
    _restore_previous(cfg.out)
    _check_out(cfg)
    _remove_stale(cfg.out)
    need = space_need(plan, cfg)
    check_space(need, cfg.out)
    tmp = _tmp_dir(cfg.out)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise BuildError(f"{cfg.out}: cannot create its temporary folder {tmp.name} ({exc.strerror or _one_line(exc)})") from None
    try:
        result = _build_into(tmp, plan, cfg, progress, t0, finalize)
        try:
            _move_into_place(tmp, cfg.out)
        except OSError as exc:
            raise BuildError(f"could not move the finished release onto {cfg.out}: {_one_line(exc)}") from None
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if out_of_space(exc):
            raise out_of_space_error(need, cfg.out) from None
        raise
    result.seconds = time.perf_counter() - t0
    return result


class _NoBar:
    """What the passes see without a progress bar (tqdm is not even imported: ~0.1 CPU-s a build)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(rows: int, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=rows or None, unit="rows", unit_scale=True, desc="build", disable=not progress, leave=False)


def _copy_world(world: Path, dest: Path) -> None:
    """Regular files of ``world/`` only (the plan refused symlinks in it); nothing is followed."""
    for dirpath, _, filenames in os.walk(world):
        rel = Path(dirpath).relative_to(world)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            src = Path(dirpath) / name
            if src.is_symlink() or not src.is_file():  # pragma: no cover - refused by the plan already
                raise BuildError(f"{src}: not a regular file in world/")
            shutil.copy2(src, dest / rel / name, follow_symlinks=False)


def _build_into(tmp: Path, plan: _Plan, cfg: BuildConfig, progress: bool, t0: float,
                finalize: Callable[[Path], None] | None) -> BuildResult:
    if plan.world is not None:
        _copy_world(plan.world, tmp / WORLD_DIR)
    rows_estimate = estimated_rows(plan)
    tasks = plan_tasks(plan)
    engine = open_engine(cfg.engine, cfg.workers, rows_estimate, cfg.ray_address)
    bar = _progress_bar(rows_estimate if all(i.fmt == "parquet" for i in plan.inputs) else 0, progress)
    try:
        done = run_passes(tmp, tmp / SPILL_DIR, plan, tasks, cfg, engine, bar, rows_estimate)
    finally:
        bar.close()
        engine.close()
    rejects = done.rejects
    if rejects.total:
        write_rejects(tmp / REJECTS_DIR, plan.inputs, rejects, cfg)
    split_rows = {s: sum(n for _, n in done.shards[s]) for s in SPLITS}
    if sum(split_rows.values()) + rejects.total != done.rows_in:  # pragma: no cover - the invariant, checked on every build
        raise BuildError(f"internal error: rows_in {done.rows_in} != written {sum(split_rows.values())} + rejected {rejects.total}")
    sample_rows = _write_sample(tmp, done.samplers, split_rows, cfg.sample_rows)  # reads the spilled candidates
    shutil.rmtree(tmp / SPILL_DIR, ignore_errors=True)
    files = _file_entries(tmp, done.shards, sample_rows, done.digests)
    manifest = Manifest(
        dataset_version=cfg.version,
        format_version=FORMAT_VERSION,
        created_by=f"genco-data {__version__}",
        source=_source(plan, done.digests),
        test_start_day=plan.test_start_day,
        splits={CONFIGS[0]: split_rows, CONFIGS[1]: {s: sample_rows[s] for s in SPLITS}},
        rows_in=done.rows_in,
        rows_rejected=rejects.total,
        files=files,
        stats=done.stats,
    )
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    if finalize is not None:
        finalize(tmp)  # e.g. the card: written inside the temporary folder, so the release appears whole
    return BuildResult(
        out=cfg.out,
        dataset_version=cfg.version,
        test_start_day=plan.test_start_day,
        rows_in=done.rows_in,
        rows_rejected=rejects.total,
        splits=manifest.splits,
        reject_reasons=dict(sorted(rejects.reasons().items(), key=lambda kv: (-kv[1], kv[0]))),
        files=len(files),
        bytes=sum(f.bytes for f in files),
        seconds=time.perf_counter() - t0,
        ordering="spill" if done.reordered else "stream",
        synthetic=plan.world is not None,
        inputs=len(plan.inputs),
        ignored=list(plan.ignored),
        workers=cfg.workers,
        engine=cfg.engine,
    )


def _file_entries(tmp: Path, shards: dict[str, list[tuple[Path, int]]], sample_rows: dict[str, int],
                  digests: dict[str, str]) -> list[FileEntry]:
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
            digest = digests.get(str(p)) or sha256_file(p)
            entries.append(FileEntry(path=rel, rows=rows_of.get(rel), bytes=p.stat().st_size, sha256=digest))
    return entries


def _source(plan: _Plan, digests: dict[str, str]) -> Source:
    inputs = [InputFile(path=i.name, bytes=i.path.stat().st_size, sha256=digests.get(str(i.path)) or sha256_file(i.path))
              for i in plan.inputs]
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


__all__ = ["BuildResult", "build_release"]
