"""The release's dataset card (``<release>/README.md``): YAML front matter + a short body.

The front matter is what ``datasets.load_dataset(<release>)`` reads: ``configs`` (one entry per config
in :data:`~genco_data.components.CONFIGS`, data files per split, ``impressions`` the default) and
``dataset_info`` (per config: the Features of :func:`~genco_data.arrow.impressions_features`, splits with
``num_examples`` from the manifest). It is built with ``datasets``' own ``MetadataConfigs`` and
``DatasetInfosDict`` into a ``huggingface_hub.DatasetCardData``, so the YAML is exactly what those
libraries parse back. ``num_bytes`` / ``download_size`` / ``dataset_size`` are the Parquet files' sizes
on disk (the Hub's own figures are Arrow sizes; nothing verifies them).
"""
from __future__ import annotations

import os
from pathlib import Path

from genco_data.components import CONFIGS, SPLITS
from genco_data.records import Manifest
from genco_data.release import CARD_NAME, DATA_DIR, Release, data_glob

PRETTY_NAME = "GenCO creative-optimization impressions"


def _split_bytes(manifest: Manifest, config: str, split: str) -> int:
    prefix = f"{DATA_DIR}/{config}/{split}-"
    return sum(f.bytes for f in manifest.files if f.path.startswith(prefix))


def card_front_matter(manifest: Manifest) -> str:
    """The YAML front matter of the card (without the ``---`` fences) for a release with ``manifest``."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    from genco_data.arrow import impressions_features

    data = DatasetCardData(pretty_name=PRETTY_NAME, tags=["recommendation", "creative-optimization", "bandit"])
    configs = {}
    infos = {}
    features = impressions_features()
    for config in CONFIGS:
        entry: dict = {"data_files": [{"split": s, "path": data_glob(config, s)} for s in SPLITS]}
        if config == CONFIGS[0]:
            entry["default"] = True
        configs[config] = entry
        splits = SplitDict()
        for s in SPLITS:
            splits.add(
                SplitInfo(name=s, num_bytes=_split_bytes(manifest, config, s), num_examples=manifest.splits[config][s])
            )
        size = sum(_split_bytes(manifest, config, s) for s in SPLITS)
        infos[config] = DatasetInfo(
            config_name=config, features=features, splits=splits, download_size=size, dataset_size=size
        )
    MetadataConfigs(configs).to_dataset_card_data(data)
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data.to_yaml() + "\n"


def _body(manifest: Manifest) -> str:
    imp = manifest.splits[CONFIGS[0]]
    sample = manifest.splits[CONFIGS[1]]
    kind = "synthetic (simulator with planted ground truth in `world/`)" if manifest.source.kind == "synthetic" else "raw logs"
    return (
        f"# {PRETTY_NAME}\n\n"
        f"Dataset version **{manifest.dataset_version}** (format {manifest.format_version}), source: {kind}.\n\n"
        "Six-component e-commerce creative optimization (GenCO, arXiv 2508.09730): per impression, the candidate\n"
        "pool of each component, the element shown, its logging propensity and the click. Train days are logged\n"
        "by a production policy, test days (from "
        f"{manifest.test_start_day.isoformat()}) by a uniform-random policy.\n\n"
        "| config | train | test |\n|---|---:|---:|\n"
        f"| `impressions` (default) | {imp['train']:,} | {imp['test']:,} |\n"
        f"| `sample` | {sample['train']:,} | {sample['test']:,} |\n\n"
        "```python\nfrom datasets import load_dataset\n"
        'ds = load_dataset("<this folder or hub id>")            # impressions\n'
        'sample = load_dataset("<this folder or hub id>", "sample")\n```\n'
    )


def render_card(release_path: str | Path) -> Path:
    """Write ``<release>/README.md`` from the release's manifest; returns its path."""
    rel = Release.open(release_path)
    text = "---\n" + card_front_matter(rel.manifest) + "---\n\n" + _body(rel.manifest)
    path = rel.root / CARD_NAME
    tmp = path.with_name(f".{CARD_NAME}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["card_front_matter", "render_card"]
