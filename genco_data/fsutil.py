"""Small file helpers shared by every writer: checksums and atomic writes.

Atomic = write a fresh temporary file beside the target, fsync it, ``os.replace`` it onto the target: a
reader (or a crash) sees the old file or the new one, never a part; concurrent writers never share a
temporary file; the temporary file is removed on any failure.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

from genco_data.errors import GencoError

_F = TypeVar("_F", bound=Callable[..., Any])

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


#: JSON documents genco reads (manifests, submissions, entries, world.json) nest a few levels; anything deeper
#: than this is refused (Python's parser would raise RecursionError a little further, pydantic and the card
#: recurse too).
MAX_JSON_DEPTH = 64


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    pass


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1, ``[[1]]`` is 2); iterative."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d + 1)
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return deepest


def parse_json(data: bytes, error: type[Exception], label: Any, max_depth: int = MAX_JSON_DEPTH,
               invalid: str = "not valid JSON") -> Any:
    """Parse a UTF-8 JSON document strictly: invalid UTF-8, invalid JSON (``f"{label}: {invalid} (why)"``), a
    key given twice in one object (Python's parser would keep the last one silently) or nesting deeper than
    ``max_depth`` raise ``error`` with one line starting with ``label``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{label}: {invalid} (UnicodeDecodeError: {exc})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise error(f"{label}: key {exc.args[0]!r} is given twice in one JSON object") from None
    except json.JSONDecodeError as exc:
        raise error(f"{label}: {invalid} (JSONDecodeError: {exc})") from None
    except RecursionError:
        raise error(f"{label}: JSON nested deeper than {max_depth} levels") from None
    if json_depth(value) > max_depth:
        raise error(f"{label}: JSON nested deeper than {max_depth} levels")
    return value


def read_json_object(path: str | os.PathLike, error: type[Exception], name: str | None = None,
                     max_bytes: int | None = None) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else raises ``error`` with a one-line message that starts
    with ``name`` (default: the path; e.g. ``repo@revision manifest.json`` for a file downloaded to a temp folder).
    ``max_bytes``: refuse a bigger file before reading it. Parsing is :func:`parse_json`'s (strict)."""
    label = path if name is None else name
    try:
        size = os.stat(path).st_size
        if max_bytes is not None and size > max_bytes:
            raise error(f"{label}: {size:,} bytes is over the {max_bytes:,}-byte limit")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    value = parse_json(data, error, label)
    if not isinstance(value, dict):
        raise error(f"{label}: expected a JSON object")
    return value


def os_errors_as(error: type[Exception]) -> Callable[[_F], _F]:
    """Decorate a public entry point so that an ``OSError`` no check of its own anticipated (a name too long for
    the filesystem, a folder where a file is expected, no permission) surfaces as ``error`` with one line naming
    the path — the backstop of "no traceback for a user mistake". ``FileNotFoundError`` is left alone (the CLI
    reports it), and so is every :class:`GencoError`."""

    def decorate(fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (GencoError, FileNotFoundError):
                raise
            except OSError as exc:
                if exc.filename is None:
                    raise error(" ".join(str(exc).split()) or type(exc).__name__) from None
                raise error(f"{exc.filename}: {exc.strerror or exc}") from None

        return wrapper  # type: ignore[return-value]

    return decorate


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Deterministic JSON (sorted keys, 2-space indent, no NaN) written atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


__all__ = ["sha256_file", "os_errors_as", "read_json_object", "parse_json", "json_depth", "MAX_JSON_DEPTH", "atomic_write", "write_text_atomic", "write_json_atomic"]
