"""The simulator's ground truth on disk: the ``world/`` folder, written and read without pickle.

On disk (``<release>/world/``, no pickle)::

    world.npz    arrays (np.load(..., allow_pickle=False)); zip entries carry a fixed timestamp
    world.json   parameters, test_start_day, generator version, statistics, sha256 of world.npz — written
                 last, so a folder without it is an interrupted simulation

:meth:`genco_data.synth.world.World.save` and ``World.load`` call :func:`write_world` and :func:`read_world`.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from genco_data import __version__
from genco_data.errors import IntegrityError, InvalidInputError
from genco_data.fsutil import read_json_object, sha256_file

GENERATOR = f"genco_data.synth {__version__}"
#: Bump when the meaning of world.json / world.npz changes.
WORLD_FORMAT = 1
WORLD_JSON = "world.json"
WORLD_NPZ = "world.npz"


def write_world(path: str | Path, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``world.npz`` (``arrays``) then ``world.json`` (``params``; last, atomically) into the folder ``path``."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / WORLD_JSON).unlink(missing_ok=True)
    npz = root / WORLD_NPZ
    tmp = root / (WORLD_NPZ + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    os.replace(tmp, npz)
    params = dict(params)
    params["arrays"] = {"file": WORLD_NPZ, "sha256": sha256_file(npz), "names": sorted(arrays)}
    text = json.dumps(params, indent=2, sort_keys=True) + "\n"
    tmp_json = root / (WORLD_JSON + ".tmp")
    tmp_json.write_text(text, encoding="utf-8")
    os.replace(tmp_json, root / WORLD_JSON)
    return root


def read_world(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read ``path`` = a world folder (``world.json`` + ``world.npz``) or a release holding ``world/``: (params, arrays)."""
    root = Path(path)
    if root.is_file() and root.name == WORLD_JSON:
        root = root.parent
    if not (root / WORLD_JSON).is_file() and (root / "world" / WORLD_JSON).is_file():
        root = root / "world"
    jpath = root / WORLD_JSON
    if not jpath.is_file():
        raise InvalidInputError(f"{root}: no {WORLD_JSON} (not a simulator world, or an interrupted simulation)")
    params = read_json_object(jpath, IntegrityError)
    if params.get("world_format") != WORLD_FORMAT:
        found = params.get("world_format")
        raise InvalidInputError(f"{jpath}: world_format {found!r}, this genco-data reads {WORLD_FORMAT}")
    npz = root / WORLD_NPZ
    if not npz.is_file():
        raise IntegrityError(f"{root}: {WORLD_NPZ} is missing")
    meta = params.pop("arrays", {})
    if meta.get("sha256") != sha256_file(npz):
        raise IntegrityError(f"{npz}: sha256 does not match {WORLD_JSON}")
    with np.load(npz, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    missing = sorted(set(meta.get("names", [])) - set(arrays))
    if missing:
        raise IntegrityError(f"{npz}: arrays missing: {missing}")
    return params, arrays


__all__ = ["GENERATOR", "WORLD_FORMAT", "WORLD_JSON", "WORLD_NPZ", "write_world", "read_world"]
