r"""How a world's latent parameters are drawn from a seed: the seed's id salt and random streams, hashed
ids, and :func:`sample_world` — product appeals, user / ad vectors, demographic and personal tastes, query
intents, element qualities, styles and production's quality estimates, the synergy strengths along the tree.
The model they enter is stated in :mod:`genco_data.synth.world`.

Ids: every id is ``mix63(namespace·2^48 + index) XOR``-salted by the seed — a bijection of ``[0, 2^63)``,
so ids look random, are non-negative int64 and never collide inside (or across) namespaces.
"""
from __future__ import annotations

import math

import numpy as np

from genco_data.format.components import COMPONENTS, N_COMPONENTS
from genco_data.synth.config import SynthConfig
from genco_data.synth.storage import GENERATOR, WORLD_FORMAT
from genco_data.synth.world import (
    AFFINITY_DIM,
    CATEGORIES,
    COMPONENT_WEIGHTS,
    PARENT,
    ROOT,
    STYLE_DIM,
    World,
)

AGE_BUCKETS = 7
GENDERS = 2
#: Hash namespaces (element ids use ELEMENT_NAMESPACE + component index).
NAMESPACES = {"user": 1, "ad": 2, "query": 3, "segment": 4, "impression": 5}
ELEMENT_NAMESPACE = 16
#: Spawn keys of the seed's random streams: world and catalog, the intercept's calibration, the rows (per part).
_STREAM_WORLD, _STREAM_CALIBRATION, _STREAM_ROWS = 0, 1, 2

_M63 = np.uint64((1 << 63) - 1)


def id_salt(seed: int) -> int:
    """63-bit salt of a seed's ids (so different seeds give different ids)."""
    return int(np.random.SeedSequence([seed, 0x6E0C0]).generate_state(1, np.uint64)[0] & _M63)


def hashed_ids(namespace: int, index: np.ndarray, salt: int) -> np.ndarray:
    """int64 ids, ``mix63((namespace << 48 | index) ^ salt)``: a bijection of [0, 2^63), so distinct inputs
    give distinct non-negative ids. ``index`` must be in [0, 2^48)."""
    x = (np.uint64(namespace) << np.uint64(48)) | np.asarray(index, dtype=np.uint64)
    x = x ^ np.uint64(salt)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(31))
        x = (x * np.uint64(0x7FB5D329728EA185)) & _M63
        x = x ^ (x >> np.uint64(27))
        x = (x * np.uint64(0x81DADEF4BC2DD44D)) & _M63
        x = x ^ (x >> np.uint64(33))
    return x.astype(np.int64)


def sample_world(
    cfg: SynthConfig,
    rng: np.random.Generator,
    *,
    ad_category: np.ndarray,
    user_age: np.ndarray,
    user_gender: np.ndarray,
    n_queries: int,
    n_elements: list[int],
) -> World:
    """Draw the latent parameters (the intercept ``base`` is 0 until calibrated)."""
    salt = id_salt(cfg.seed)
    A, U, Q = len(ad_category), len(user_age), n_queries
    k = cfg.taste_scale
    arrays: dict[str, np.ndarray] = {
        "ad_id": hashed_ids(NAMESPACES["ad"], np.arange(A), salt),
        "ad_category": ad_category.astype(np.int8),
        "ad_appeal": rng.normal(0.0, cfg.appeal_scale, A),
        "ad_vec": rng.standard_normal((A, AFFINITY_DIM)).astype(np.float32),
        "user_id": hashed_ids(NAMESPACES["user"], np.arange(U), salt),
        "user_age": user_age.astype(np.int8),
        "user_gender": user_gender.astype(np.int8),
        "user_vec": rng.standard_normal((U, AFFINITY_DIM)).astype(np.float32),
        "query_id": hashed_ids(NAMESPACES["query"], np.arange(Q), salt),
        "query_intent": (rng.standard_normal((Q, STYLE_DIM)) * k * math.sqrt(0.3)),
        "weights": COMPONENT_WEIGHTS.copy(),
    }
    demo = rng.standard_normal((AGE_BUCKETS, GENDERS, STYLE_DIM)) * k * math.sqrt(0.4)
    personal = rng.standard_normal((U, STYLE_DIM)) * k * math.sqrt(0.3)
    arrays["user_taste"] = demo[user_age, user_gender] + personal
    gamma = cfg.synergy_scale * rng.uniform(0.5, 1.5, N_COMPONENTS)
    gamma[ROOT] = 0.0
    arrays["synergy"] = gamma
    noise = cfg.production_noise
    for j, n in enumerate(n_elements):
        q = rng.normal(0.0, cfg.quality_scale, n)
        arrays[f"elem{j}_id"] = hashed_ids(ELEMENT_NAMESPACE + j, np.arange(n), salt)
        arrays[f"elem{j}_quality"] = q
        arrays[f"elem{j}_style"] = rng.standard_normal((n, STYLE_DIM))
        # production's estimate of the quality: standardized quality + error, sharpened
        z = q / cfg.quality_scale if cfg.quality_scale > 0 else np.zeros(n)
        est = (z + noise * rng.standard_normal(n)) / math.sqrt(1.0 + noise * noise)
        arrays[f"elem{j}_prod"] = cfg.production_sharpness * est
    params = {
        "generator": GENERATOR,
        "world_format": WORLD_FORMAT,
        "seed": cfg.seed,
        "base": 0.0,
        "start_day": cfg.start_day.isoformat(),
        "test_start_day": cfg.test_start_day.isoformat(),
        "train_days": cfg.train_days,
        "test_days": cfg.test_days,
        "user_ad_scale": cfg.user_ad_scale,
        "categories": list(CATEGORIES),
        "components": list(COMPONENTS),
        "tree_parent": {COMPONENTS[j]: (COMPONENTS[p] if p >= 0 else None) for j, p in enumerate(PARENT)},
        "component_weights": {c: dict(zip(COMPONENTS, map(float, COMPONENT_WEIGHTS[i]))) for i, c in enumerate(CATEGORIES)},
        "synergy": dict(zip(COMPONENTS, map(float, gamma))),
        "config": cfg.to_dict(),
    }
    return World(params, arrays)


__all__ = [
    "AGE_BUCKETS",
    "GENDERS",
    "NAMESPACES",
    "ELEMENT_NAMESPACE",
    "hashed_ids",
    "id_salt",
    "sample_world",
]
