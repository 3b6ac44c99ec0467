"""The streaming builder: raw Parquet / JSONL / CSV → a release folder (see :mod:`genco_data.release`).

``build_release(BuildConfig(sources=[...], out=..., version="1.0.0"))`` reads every input in batches,
validates them (:mod:`genco_data.build.validate`), and writes::

    <out>/data/impressions/{train,test}-NNNNN-of-MMMMM.parquet   chronological, zstd, CDC, page index
    <out>/data/sample/{train,test}-00000-of-00001.parquet        ~sample_rows rows, seeded
    <out>/rejects/rejects-NNNNN.parquet                          bad rows as read + reason, source_file, source_row
    <out>/world/                                                 copied from a source's world/ (synthetic data)
    <out>/manifest.json, <out>/README.md

The parts, one job each (:mod:`genco_data.build`): :mod:`~genco_data.build.plan` finds the inputs,
:mod:`~genco_data.build.readers` reads them, :mod:`~genco_data.build.coerce` and
:mod:`~genco_data.build.validate` check every batch, :mod:`~genco_data.build.order` keeps each split
chronological, :mod:`~genco_data.build.writer` writes shards, rejects and sample, and
:mod:`~genco_data.build.stats` counts; their docstrings state their decisions. This module runs them:

Decisions (each one is a contract the tests hold):

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from genco_data import __version__
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.errors import BuildError
from genco_data.format.records import FORMAT_VERSION, FileEntry, InputFile, Manifest, Source
from genco_data.release import DATA_DIR, MANIFEST_NAME, REJECTS_DIR, WORLD_DIR, sha256_file, shard_name
from genco_data.build.stats import StatsAccumulator
from genco_data.build.coerce import coerce
from genco_data.build.unique import IdSet
from genco_data.build.validate import row_reasons, to_release_schema
from genco_data.build.plan import BuildConfig, _one_line, _Plan, _plan
from genco_data.build.readers import _read
from genco_data.build.order import _EPOCH, _already_chronological, _days_int, _Spill
from genco_data.build.writer import _Background, _BottomK, _Rejects, _ShardWriter, _write_sample

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


__all__ = ["BuildResult", "build_release"]
