"""Hashed vocabularies: the documented hash bit for bit, sizes from a manifest, collisions, save/load, old files."""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from genco_data import load as td
from genco_data.format.components import COMPONENTS
from genco_data.load import hashing as hs

MASK = (1 << 64) - 1


def splitmix64_reference(v: int, name: str, k: int) -> int:
    """The module docstring's formula, in plain Python integers (independent of the numpy code)."""
    salt = int.from_bytes(hashlib.sha256(b"genco-data/hash/v1/" + name.encode()).digest()[:8], "little")
    z = ((v & MASK) ^ salt) & MASK
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    bucket = ((z >> 32) * k) >> 32 if k < (1 << 32) else z % k
    return 2 + bucket


IDS = [0, 1, -1, 7919, 2**62 + 12345, -(2**63), 2**63 - 1, 104729 * 17]


@pytest.mark.parametrize("name, k", [("title", 21), ("user_id", 48_536), ("query_segments", 230_000_000), ("ad_id", 5 * 2**32 + 3)])
def test_hash_is_the_documented_formula(name, k):
    got = hs.hash_buckets(np.array(IDS, np.int64), hs.table_salt(name), k).tolist()
    assert got == [splitmix64_reference(v, name, k) for v in IDS]
    assert all(2 <= g < k + 2 for g in got)


def test_hash_is_the_same_in_another_process_and_across_chunks():
    ids = np.random.default_rng(0).integers(-(2**63), 2**63 - 1, 3 * hs._CHUNK + 17, dtype=np.int64)
    here = hs.hash_buckets(ids, hs.table_salt("image"), 1000)
    whole = np.concatenate([hs.hash_buckets(ids[a : a + 1000], hs.table_salt("image"), 1000) for a in range(0, len(ids), 1000)])
    assert np.array_equal(here, whole)  # chunking never changes a bucket
    code = ("import numpy as np, sys; from genco_data.load import hashing as hs; "
            "ids = np.array([int(x) for x in sys.argv[1:]], np.int64); "
            "print(hs.hash_buckets(ids, hs.table_salt('image'), 1000).tolist())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, *map(str, ids[:50])], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == here[:50].tolist()


def test_collision_arithmetic_and_measurement():
    paper = hs.expected_collisions(230_000_000, 230_000_000)  # K = n, the paper's sizing
    assert paper["shared_id_share"] == pytest.approx(1 - math.exp(-1), abs=1e-8)
    assert paper["buckets_used"] / 230_000_000 == pytest.approx(1 - math.exp(-1), abs=1e-8)
    assert hs.expected_collisions(1, 10)["shared_id_share"] == 0.0
    assert hs.expected_collisions(2, 2)["shared_id_share"] == pytest.approx(0.5)
    ids = np.random.default_rng(1).integers(0, 2**62, 50_000)
    measured = hs.measured_collisions(ids, hs.table_salt("title"), 50_000)
    want = hs.expected_collisions(measured["ids"], 50_000)
    assert measured["shared_id_share"] == pytest.approx(want["shared_id_share"], abs=0.01)  # the hash behaves uniformly
    assert measured["buckets_used"] == pytest.approx(want["buckets_used"], rel=0.01)


# a manifest's `stats` today, and shapes a sketch-based builder may write
TODAY = {"distinct_users": 48_536, "distinct_ads": 1000, "components": {c: {"distinct_ids": 20 + i} for i, c in enumerate(COMPONENTS)}}
SKETCHED = {**TODAY, "distinct_ids": {"query_id": {"estimate": 1234.4, "lower": 1200, "upper": 1270, "exact": False},
                                      "query_segments": 77}}


def test_sizes_come_from_the_manifest_or_the_documented_default():
    sizes, sources = hs.manifest_hash_sizes(TODAY)
    assert sizes["title"] == 20 and sizes["structure_attribute"] == 25 and sizes["user_id"] == 48_536 and sizes["ad_id"] == 1000
    assert sizes["query_id"] == sizes["query_segments"] == hs.DEFAULT_HASH_SIZE
    assert sources["title"] == "manifest" and sources["query_id"] == "default"
    sizes, sources = hs.manifest_hash_sizes(SKETCHED, factor=2.0)
    assert sizes["query_id"] == math.ceil(2 * 1235) and sizes["query_segments"] == 154 and sources["query_id"] == "manifest"
    assert hs.manifest_hash_sizes({})[0] == {n: hs.DEFAULT_HASH_SIZE for n in hs.SIZED_NAMES}
    assert hs.manifest_hash_sizes({"components": {"title": {"distinct_ids": "lots"}}})[1]["title"] == "default"
    with pytest.raises(ValueError, match="positive"):
        hs.manifest_hash_sizes(TODAY, factor=0)


def test_hashed_vocabularies_need_no_data_and_pad_within_their_tables(tmp_path):
    from test_torch_data import check_against_reference, make_table

    v = td.Vocabularies.for_release(TODAY)
    assert v.mode == "hashed" and v.size("title") == 22 and v.size("user_age") == hs.DIRECT_CODES + 2
    assert v.describe()["tables"]["query_id"] == {"kind": "hashed", "rows": hs.DEFAULT_HASH_SIZE + 2, "size_from": "default"}
    assert v.describe()["tables"]["user_gender"]["kind"] == "direct" and v.describe()["hash"] == hs.HASH_NAME
    table = make_table(200, seed=5)
    batch = td.pad_table(table, v)
    check_against_reference(table, batch, v)
    assert int(batch.candidates[:, 0].max()) < v.size("title") and int(batch.user_id.min()) >= 2
    assert v.lookup("user_age", np.array([0, 5, 127, 128, -3])).tolist() == [2, 7, 129, 1, 1]
    cats = v.lookup_category(pa.array(["phone", None, "food", "phone"]))
    assert cats[1] == td.PAD_INDEX and cats[0] == cats[3] != cats[2] and cats.min() >= 0 and cats.max() < v.size("category")
    again = td.Vocabularies.load(v.save(tmp_path / "v.npz"))
    assert again == v and again.describe() == v.describe()
    assert np.array_equal(again.lookup("ad_id", np.arange(100)), v.lookup("ad_id", np.arange(100)))
    assert td.Vocabularies.for_release(TODAY, factor=2.0) != v


def test_version_1_files_load_with_their_fingerprint_and_hash(tmp_path):
    """A run trained before hashing (exact vocabularies, or the old unsalted hashing trick) still loads."""
    from test_torch_data import make_table

    table = make_table(60, seed=2)
    for buckets in (None, 97):
        v = td.Vocabularies.build(table, hash_buckets=buckets)
        old = {"format": "genco-vocabularies", "version": 1, "hash_buckets": {k: int(x) for k, x in sorted(v.hash_buckets.items())},
               "categories": v.categories, "sizes": v.sizes()}
        h = hashlib.sha256(json.dumps(old, sort_keys=True).encode())
        for name in sorted(v.keys):
            h.update(name.encode())
            h.update(v.keys[name].tobytes())
        path = tmp_path / f"v1-{buckets}.npz"
        with open(path, "wb") as fh:
            np.savez(fh, __meta__=np.frombuffer(json.dumps(old).encode(), np.uint8), **{f"keys.{n}": k for n, k in v.keys.items()})
        loaded = td.Vocabularies.load(path)
        assert loaded.fingerprint() == h.hexdigest()  # what the old run's config.json recorded
        if buckets:
            x = np.arange(20, dtype=np.int64).view(np.uint64)  # the version-1 hash: murmur3 fmix64, mod K
            x = (x ^ (x >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
            x = (x ^ (x >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
            x ^= x >> np.uint64(33)
            assert loaded.lookup("ad_id", np.arange(20)).tolist() == ((x % np.uint64(97)).astype(np.int64) + 2).tolist()
    exact = td.Vocabularies.build(table)
    assert exact.fingerprint() == td.Vocabularies.load(tmp_path / "v1-None.npz").fingerprint()
