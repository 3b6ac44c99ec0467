"""Where a build's jobs run: ``local`` (this machine's cores: a process pool) or ``ray`` (Ray Data / a Ray
cluster, the ``genco-data[ray]`` extra). Only this package imports ray.

An engine runs the builder's three kinds of independent jobs — ingest tasks, uniqueness partitions, shard
encodings — and hands the results back **in job order** (:meth:`Engine.map`), so that what the builder does
with them, and so every byte it writes, does not depend on the engine or the number of workers. The job
functions themselves (:func:`~genco_data.build.ingest.run_task`, :func:`~genco_data.build.unique.partition_duplicates`,
:func:`~genco_data.build.encode.encode_shard`) hold no engine code.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Protocol

ENGINES = ("local", "ray")


class Engine(Protocol):
    workers: int

    def map(self, fn: Callable[..., Any], jobs: Iterable[Any], *args: Any) -> Iterator[Any]:
        """``fn(job, *args)`` for every job, results in job order; the first failing job's error is raised
        when its turn comes (later jobs are cancelled)."""

    def close(self) -> None:
        ...


def open_engine(name: str, workers: int, rows: int, ray_address: str | None = None) -> Engine:
    """The engine called ``name`` with ``workers`` processes for a build of about ``rows`` rows."""
    if name == "ray":
        from genco_data.build.engines.ray_engine import RayEngine

        return RayEngine(workers, ray_address)
    from genco_data.build.engines.local import LocalEngine

    return LocalEngine(workers, rows)


__all__ = ["ENGINES", "Engine", "open_engine"]
