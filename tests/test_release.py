"""The release folder: verify (checksums, counts, schema, extra/missing files, hand edits), the card's
front matter read back by ``datasets`` offline, and the Table-1 statistics against a slow reference."""
from __future__ import annotations

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import shutil  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from factories import TSD, make_impressions, read_manifest as _manifest, write_manifest as _write_manifest, write_parquet, write_world  # noqa: E402
from genco_data import BuildConfig, build_release  # noqa: E402
from genco_data.card import card_front_matter  # noqa: E402
from genco_data.pipeline import render_release_card  # noqa: E402
from genco_data.format.components import COMPONENTS, candidates_col  # noqa: E402
from genco_data.errors import ForwardCompatibilityError, IntegrityError  # noqa: E402
from genco_data.release import Release, verify_release  # noqa: E402
from genco_data.build.stats import format_stats, release_stats  # noqa: E402



@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    write_parquet(make_impressions(2000, seed=5), src / "raw" / "part-0.parquet")
    write_world(src / "world", TSD)
    out = tmp_path_factory.mktemp("rel") / "release"
    build_release(BuildConfig(sources=[src], out=out, version="1.2.3", rows_per_shard=600, row_group_rows=300, sample_rows=200), progress=False)
    return out


@pytest.fixture
def release(built, tmp_path) -> Path:
    """A fresh copy to tamper with."""
    out = tmp_path / "release"
    shutil.copytree(built, out)
    return out


# ------------------------------------------------------------------------------------------- verify
def test_verify_a_good_release(built):
    report = verify_release(built)
    m = _manifest(built)
    assert report["files"] == len(m["files"]) and report["rows"] == 2000
    assert report["dataset_version"] == "1.2.3" and report["format_version"] == "1.0"
    assert report["splits"] == m["splits"]


def _first_data_file(p: Path) -> str:
    return next(f["path"] for f in _manifest(p)["files"] if f["path"].startswith("data/impressions/train-"))


def test_verify_detects_a_flipped_byte(release):
    name = _first_data_file(release)
    path = release / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"{name}: sha256 .* differs from manifest.json"):
        verify_release(release)


def test_verify_detects_a_flipped_byte_in_the_world(release):
    p = release / "world" / "world.npz"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="world/world.npz: sha256"):
        verify_release(release)


def test_verify_detects_a_missing_file(release):
    name = _first_data_file(release)
    (release / name).unlink()
    with pytest.raises(IntegrityError, match=rf"missing file {name}"):
        verify_release(release)


@pytest.mark.parametrize("extra", ["data/impressions/train-00099-of-00099.parquet", "data/notes.txt", "world/extra.json"])
def test_verify_detects_an_extra_file(release, extra):
    (release / extra).write_bytes(b"surprise")
    with pytest.raises(IntegrityError, match=rf"extra file {extra} \(not in manifest.json\)"):
        verify_release(release)


def test_verify_ignores_rejects(release):
    (release / "rejects").mkdir(exist_ok=True)
    (release / "rejects" / "rejects-00000.parquet").write_bytes(b"anything")
    verify_release(release)


HAND_EDITS = [
    ("rows of a file", lambda m: m["files"][0].update(rows=m["files"][0]["rows"] + 1), r"rows, manifest.json says"),
    ("bytes of a file", lambda m: m["files"][0].update(bytes=m["files"][0]["bytes"] + 1), r"bytes, manifest.json says"),
    ("sha256", lambda m: m["files"][0].update(sha256="0" * 64), r"sha256 .* differs"),
    ("split count", lambda m: m["splits"]["impressions"].update(train=m["splits"]["impressions"]["train"] - 1), r"splits\[impressions\]\[train\]"),
    ("rows_in", lambda m: m.update(rows_in=m["rows_in"] + 3), r"rows_in 2003 != rows written 2000"),
    ("rows_rejected", lambda m: m.update(rows_rejected=2), r"rows_in 2000 != rows written 2000 \+ rows_rejected 2"),
    ("test_start_day", lambda m: m.update(test_start_day="2024-03-02"), r"train day .* is not before test_start_day"),
    ("file dropped", lambda m: m["files"].pop(0), r"extra file data/"),
    ("file outside", lambda m: m["files"].append({**m["files"][0], "path": "rejects/rejects-00000.parquet"}),
     r"lists rejects/rejects-00000\.parquet, which is outside README\.md, data/, world/ and figures/"),
    ("card listed twice", lambda m: m["files"].append(next(f for f in m["files"] if f["path"] == "README.md")), r"a file is listed twice"),
    ("bad sha syntax", lambda m: m["files"][0].update(sha256="xyz"), r"invalid manifest"),
    ("bad semver", lambda m: m.update(dataset_version="v1"), r"invalid manifest"),
]


@pytest.mark.parametrize("what,edit,message", HAND_EDITS, ids=[h[0] for h in HAND_EDITS])
def test_verify_detects_a_hand_edited_manifest(release, what, edit, message):
    m = _manifest(release)
    m["files"].sort(key=lambda f: not f["path"].startswith("data/impressions/train-"))  # edit a train shard
    edit(m)
    _write_manifest(release, m)
    with pytest.raises(IntegrityError, match=message) as info:
        verify_release(release)
    assert "\n" not in str(info.value)


def test_verify_refuses_other_format_versions(release):
    m = _manifest(release)
    m["format_version"] = "2.0"
    _write_manifest(release, m)
    with pytest.raises(ForwardCompatibilityError, match="upgrade genco-data"):
        verify_release(release)


def test_verify_detects_a_foreign_schema(release):
    name = _first_data_file(release)
    t = pq.read_table(release / name)
    t = t.set_column(t.schema.get_field_index("click"), "click", t.column("click").cast(pa.int64()))
    pq.write_table(t, release / name)
    m = _manifest(release)
    import hashlib

    for f in m["files"]:
        if f["path"] == name:
            f["bytes"] = (release / name).stat().st_size
            f["sha256"] = hashlib.sha256((release / name).read_bytes()).hexdigest()
    _write_manifest(release, m)
    with pytest.raises(IntegrityError, match=rf"{name}: Parquet schema differs"):
        verify_release(release)


def test_verify_requires_the_card(release):
    (release / "README.md").unlink()
    with pytest.raises(IntegrityError, match="missing file README.md"):
        verify_release(release)
    render_release_card(release)
    verify_release(release)


# -------------------------------------------------------------------------------- card + load_dataset
def test_front_matter_round_trips_through_datasets(built):
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    from genco_data.format.arrow import impressions_features

    import yaml

    m = Release.open(built).manifest
    data = DatasetCardData(**yaml.safe_load(card_front_matter(m)))
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert list(configs) == ["impressions", "sample"] and configs.get_default_config_name() == "impressions"
    assert configs["impressions"]["data_files"] == [
        {"split": "train", "path": "data/impressions/train-*.parquet"},
        {"split": "test", "path": "data/impressions/test-*.parquet"},
    ]
    infos = DatasetInfosDict.from_dataset_card_data(data)
    for config in ("impressions", "sample"):
        assert infos[config].features == impressions_features()
        assert {s: infos[config].splits[s].num_examples for s in ("train", "test")} == m.splits[config]
    text = (built / "README.md").read_text()
    assert text.startswith("---\n") and "\n---\n" in text and "1.2.3" in text


def test_load_dataset_offline(built, tmp_path, monkeypatch):
    import datasets
    from huggingface_hub import constants

    from genco_data.format.arrow import impressions_features

    # offline even when another test module imported datasets before the environment was set
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    m = Release.open(built).manifest
    ds = datasets.load_dataset(str(built), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "test"}
    for split in ("train", "test"):
        assert ds[split].features == impressions_features()
        assert ds[split].num_rows == m.splits["impressions"][split]
    assert ds["train"].features["click"].names == ["no_click", "click"]
    first = pq.read_table(Release.open(built).data_files("impressions", "train")[0]).slice(0, 1).to_pylist()[0]
    assert ds["train"][0] == first
    sample = datasets.load_dataset(str(built), "sample", cache_dir=str(tmp_path / "cache"))
    assert {s: sample[s].num_rows for s in ("train", "test")} == m.splits["sample"]
    assert sample["test"].features == impressions_features()


# ------------------------------------------------------------------------------------------------ stats
def _slow_stats(rows: list[dict]) -> dict:
    """The Table-1 definitions of genco_data.build.stats, one Python row at a time. Coverage and average
    candidates are per *ad*, as in the paper (issue #15): the share of ads with a non-empty pool in some row,
    and the mean over those ads of their mean pool length; the per-row figures are ``rows_*``."""
    ads = {r["ad_id"] for r in rows}
    out = {"rows": len(rows), "ctr": sum(r["click"] for r in rows) / len(rows), "days": len({r["day"] for r in rows})}
    for c in COMPONENTS:
        pools = [r[candidates_col(c)] for r in rows]
        covered = [p for p in pools if p]
        daily_ids, daily_exposures = defaultdict(set), defaultdict(int)
        per_ad = defaultdict(list)
        for r, p in zip(rows, pools):
            if p:
                daily_ids[r["day"]].update(p)
                daily_exposures[r["day"]] += 1
                per_ad[r["ad_id"]].append(len(p))
        distinct = len({x for p in pools for x in p})
        out[c] = {
            "distinct_ids": distinct,
            "ids_per_ad": distinct / len(ads),
            "coverage": len(per_ad) / len(ads),
            "avg_candidates": sum(sum(v) / len(v) for v in per_ad.values()) / len(per_ad),
            "rows_coverage": len(covered) / len(rows),
            "rows_avg_candidates": sum(map(len, covered)) / len(covered),
            "exposures_per_candidate_per_day": sum(daily_exposures.values()) / sum(map(len, daily_ids.values())),
        }
    return out


@pytest.mark.parametrize("split", ["train", "test"])
def test_release_stats_match_a_slow_reference(built, split):
    got = release_stats(built, split=split)
    files = Release.open(built).data_files("impressions", split)
    rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()
    want = _slow_stats(rows)
    assert got["split"] == split and got["rows"] == want["rows"] and got["days"] == want["days"]
    assert got["ctr"] == pytest.approx(want["ctr"])
    for c in COMPONENTS:
        for key, value in want[c].items():
            assert got["components"][c][key] == pytest.approx(value), (c, key)
    text = format_stats(got)
    assert f"{split} split of {built}" in text and all(c in text for c in COMPONENTS)
    if split == "train":
        assert Release.open(built).manifest.stats == {k: v for k, v in got.items() if k not in ("release", "dataset_version", "split")}


def test_stats_batches_do_not_matter(built):
    from genco_data.build.stats import STATS_COLUMNS, StatsAccumulator

    t = pa.concat_tables([pq.read_table(f, columns=list(STATS_COLUMNS)) for f in Release.open(built).data_files("impressions", "train")])
    whole, pieces = StatsAccumulator(), StatsAccumulator()
    whole.update(t)
    for b in t.to_batches(max_chunksize=77):
        pieces.update(b)
    assert whole.result() == pieces.result()
