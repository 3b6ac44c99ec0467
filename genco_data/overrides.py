"""``NAME=VALUE`` overrides of a dataclass's fields from the command line (``genco synth --set``, ``genco
train|reproduce --genco-set``): each value is parsed as the type of its field's default; an unknown name or a
bad value is refused in one line that names the flag, the item and what was expected.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from genco_data.errors import InvalidInputError


def parse_overrides(cls: type, items: list[str], flag: str, *, exclude: frozenset[str] = frozenset(),
                    optional_ints: tuple[str, ...] = ()) -> dict[str, Any]:
    """``items`` (``NAME=VALUE``; ``-`` in NAME reads as ``_``) -> {field: value} for the dataclass ``cls``.

    Types follow the field's default: bool (``true``/``false``), int, float, str; a name in ``optional_ints`` takes
    an int or ``none``. Fields in ``exclude`` and fields whose default is of another type cannot be set."""
    settable = {f.name: f.default for f in dataclasses.fields(cls)
                if f.name not in exclude and (f.name in optional_ints or isinstance(f.default, (bool, int, float, str)))}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip().replace("-", "_"), text.strip()
        if not sep or name not in settable:
            raise InvalidInputError(f"{flag} {item!r}: expected NAME=VALUE with NAME one of {', '.join(settable)}")
        default = settable[name]
        try:
            if name in optional_ints:
                kind = "an int or none"
                value = None if text.lower() == "none" else int(text)
            elif isinstance(default, bool):
                kind = "true or false"
                if text.lower() not in ("true", "false"):
                    raise ValueError
                value = text.lower() == "true"
            else:
                kind = type(default).__name__
                value = type(default)(text)
        except ValueError:
            raise InvalidInputError(f"{flag} {item!r}: {name} expects {kind}") from None
        out[name] = value
    return out


__all__ = ["parse_overrides"]
