"""Lazy package faces: a package's ``__init__`` names what it offers without importing it.

``import genco_data`` (and ``genco --version``) must not pay for pyarrow, pydantic, datasets or torch; a
name is imported from its module the first time it is asked for (PEP 562 ``__getattr__``), then cached
on the package.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_face(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that resolve ``exports`` (name -> defining module)."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
