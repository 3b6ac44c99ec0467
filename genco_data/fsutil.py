"""Small file helpers shared by every writer: checksums and atomic writes.

Atomic = write a fresh temporary file beside the target, fsync it, ``os.replace`` it onto the target: a
reader (or a crash) sees the old file or the new one, never a part; concurrent writers never share a
temporary file; the temporary file is removed on any failure.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

_CHUNK = 1 << 20
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def sha256_file(path: str | os.PathLike) -> str:
    """Lowercase hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` (it creates the file's content), fsync, then rename onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode open() would
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json_object(path: str | os.PathLike, error: type[Exception], name: str | None = None) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else raises ``error`` with a one-line message that starts
    with ``name`` (default: the path; e.g. ``repo@revision manifest.json`` for a file downloaded to a temp folder)."""
    label = path if name is None else name
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{label}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise error(f"{label}: expected a JSON object")
    return value


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Deterministic JSON (sorted keys, 2-space indent, no NaN) written atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


__all__ = ["sha256_file", "read_json_object", "atomic_write", "write_text_atomic", "write_json_atomic"]
