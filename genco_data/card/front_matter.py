"""The card's YAML front matter: what ``datasets.load_dataset(<release or hub id>)`` reads.

``configs`` (one entry per config in :data:`~genco_data.format.components.CONFIGS`, data files per split,
``impressions`` the default) and ``dataset_info`` (per config: the Features of
:func:`~genco_data.format.arrow.impressions_features`, splits with ``num_examples`` from the manifest), built
with ``datasets``' own ``MetadataConfigs`` and ``DatasetInfosDict`` into a ``huggingface_hub.DatasetCardData``
so the YAML is exactly what those libraries parse back; plus ``license``, ``pretty_name``, ``size_categories``,
``task_categories`` / ``task_ids`` and ``tags``.

**Tasks** (the Hub's list, ``huggingface.js`` ``packages/tasks/src/pipelines.ts``): ``reinforcement-learning``
(a logged contextual-bandit dataset for off-policy learning and evaluation) and ``tabular-classification``
with its ``tabular-multi-class-classification`` subtask (click prediction from tabular ids: the two-class
case; the Hub lists no binary subtask). **Paper**: the Hub has no YAML key for it — it reads the arXiv link in
the card body (https://arxiv.org/abs/2508.09730) and adds the ``arxiv:2508.09730`` tag and the paper page link
itself (https://huggingface.co/docs/hub/paper-pages); an ``arxiv:`` entry written into ``tags`` by hand is
what the Hub's guidelines ask to remove, so none is written here. ``num_bytes`` / ``download_size`` / ``dataset_size`` are the Parquet files' sizes on disk.

**License** (``CardOptions.license``): synthetic releases default to ``cc-by-4.0`` (the simulator's output
is ours to license; attribution = the citation in the card); releases built from raw exports default to
``unknown`` — the data owner's terms apply, pass ``--license``.
"""
from __future__ import annotations

from genco_data.card.options import CardOptions
from genco_data.format.components import CONFIGS, SPLITS
from genco_data.format.records import Manifest
from genco_data.release import DATA_DIR, data_glob

PRETTY_NAME = "GenCO creative-optimization impressions"
TAGS = ["recommendation", "creative-optimization", "bandit", "off-policy-evaluation"]
TASK_CATEGORIES = ["reinforcement-learning", "tabular-classification"]
TASK_IDS = ["tabular-multi-class-classification"]
LICENSE_SYNTHETIC = "cc-by-4.0"
LICENSE_RAW = "unknown"


def _split_bytes(manifest: Manifest, config: str, split: str) -> int:
    prefix = f"{DATA_DIR}/{config}/{split}-"
    return sum(f.bytes for f in manifest.files if f.path.startswith(prefix))


def _size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket of ``rows``."""
    edges = [(10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"),
             (10**7, "1M<n<10M"), (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B")]
    for edge, name in edges:
        if rows < edge:
            return name
    return "n>10B"


def _license(manifest: Manifest, options: CardOptions) -> str:
    if options.license is not None:
        return options.license
    return LICENSE_SYNTHETIC if manifest.source.kind == "synthetic" else LICENSE_RAW


def card_front_matter(manifest: Manifest, options: CardOptions | None = None) -> str:
    """The YAML front matter of the card (without the ``---`` fences) for a release with ``manifest``."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    from genco_data.format.arrow import impressions_features

    options = options or CardOptions()
    rows = sum(manifest.splits[CONFIGS[0]].values())
    data = DatasetCardData(
        license=_license(manifest, options),
        pretty_name=PRETTY_NAME,
        size_categories=[_size_category(rows)],
        task_categories=list(TASK_CATEGORIES),
        task_ids=list(TASK_IDS),
        tags=list(TAGS) + (["synthetic"] if manifest.source.kind == "synthetic" else []),
    )
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


__all__ = ["card_front_matter", "PRETTY_NAME", "TAGS", "TASK_CATEGORIES", "TASK_IDS", "LICENSE_SYNTHETIC", "LICENSE_RAW"]
