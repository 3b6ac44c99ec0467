"""Writer locks: one writer per output at a time, refused at once with one line naming the holder.

``with writer_lock(target, "genco build"):`` takes an exclusive, non-blocking ``flock`` on
``<parent>/.<name>.lock`` (the target itself may not exist yet, or be replaced by a rename while locked). A
second writer of the same target fails immediately with :class:`~genco_data.errors.LockedError`::

    release: another writer holds it (genco build, pid 4242 on host-a since 2026-12-01T21:03:06Z); wait for it to finish

The kernel drops an flock when its process dies, so a killed writer never leaves a stale lock; the small lock file
stays behind on purpose (unlinking it would let a third writer lock a different inode). Locks are advisory: they
order genco's own writers (builds, ``--overwrite``, leaderboard entries, board renders), not arbitrary programs.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genco_data.errors import LockedError


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``<parent>/.<name>.lock``."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
        return f"{info.get('what', '?')}, pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"
    except (OSError, ValueError):
        return "holder unknown"


@contextmanager
def writer_lock(target: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold the exclusive writer lock of ``target`` for the ``with`` block; ``what`` names the writer in the
    message a second writer gets. Raises :class:`LockedError` (one line) when another process holds it."""
    target = Path(target)
    path = lock_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LockedError(f"{target}: cannot create its lock file {path.name}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{target}: another writer holds it ({_holder(fd)}); wait for it to finish") from None
        since = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": since})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode("utf-8"), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock


__all__ = ["writer_lock", "lock_path"]
