"""The constants of the dataset, defined once; everything else imports them.

This module imports nothing of the project (it is the ground floor of the import rules).
"""
from __future__ import annotations

#: The six creative components, in the order used everywhere (columns, tensors, tables).
COMPONENTS: tuple[str, ...] = (
    "title",
    "image",
    "marketing",
    "highlight",
    "attribute",
    "structure_attribute",
)
N_COMPONENTS = len(COMPONENTS)

#: Candidates per component after padding/truncation (paper, Implementation Details).
PAD_TO = 15

#: The pad/truncate rule of the PyTorch adapter (quoted by the dataset card; genco_data.load.padding's docstring states
#: the same rule and a test keeps the two equal).
TRUNCATION_RULE = (
    "A pool of `n <= 15` candidates fills slots `0..n-1` in pool order and the rest is padding. "
    "A pool of `n > 15` keeps 15 candidates and never drops the shown element: if the shown index `e` is "
    "below 15 the slots hold the original candidates `0..14`; otherwise they hold `0..13` followed by `e` "
    "(slot 14). Either way the kept candidates stay in original pool order, `exposed` is the slot of the "
    "shown element, `original_index` records the original index of every slot, and `n_candidates` keeps "
    "the full `n`."
)

#: Table 4 candidate-count brackets: (lo, hi) means buckets ``n < lo``, ``lo <= n <= hi``, ``n > hi``.
BUCKET_EDGES: dict[str, tuple[int, int]] = {
    "title": (3, 5),
    "image": (3, 5),
    "marketing": (3, 5),
    "highlight": (4, 8),
    "attribute": (4, 8),
    "structure_attribute": (4, 8),
}


def bucket_labels(component: str) -> tuple[str, str, str]:
    """Human labels of the three Table-4 buckets of ``component``, e.g. ``('<3', '3-5', '>5')``."""
    lo, hi = BUCKET_EDGES[component]
    return (f"<{lo}", f"{lo}-{hi}", f">{hi}")


#: Logging policies a row may carry; the test split is ``uniform`` only.
LOGGING_POLICIES: tuple[str, ...] = ("production", "uniform")
PRODUCTION, UNIFORM = LOGGING_POLICIES

#: ClassLabel names of ``click`` (index = stored value).
CLICK_NAMES: tuple[str, str] = ("no_click", "click")

#: Configs of a release; the first is the default one.
CONFIGS: tuple[str, ...] = ("impressions", "sample")
SPLITS: tuple[str, ...] = ("train", "test")

#: Paper, Table 1 (train set): average candidates per ad that has the component, and coverage.
PAPER_AVG_CANDIDATES: dict[str, float] = {
    "title": 6.3,
    "image": 3.4,
    "marketing": 2.2,
    "highlight": 7.0,
    "attribute": 2.3,
    "structure_attribute": 8.1,
}
PAPER_COVERAGE: dict[str, float] = {
    "title": 1.00,
    "image": 1.00,
    "marketing": 0.39,
    "highlight": 0.956,
    "attribute": 0.583,
    "structure_attribute": 0.678,
}
PAPER_TRAIN_CTR = 0.0684

#: Paper, Implementation Details: reward for a click / a non-click in the policy gradient.
REWARD_CLICK = 1.0
REWARD_NO_CLICK = -0.1


# Column names, derived from COMPONENTS so no per-component name is spelled by hand elsewhere.
def candidates_col(component: str) -> str:
    return f"{component}_candidates"


def exposed_col(component: str) -> str:
    return f"{component}_exposed"


def propensity_col(component: str) -> str:
    return f"{component}_propensity"


def choice_col(component: str) -> str:
    return f"{component}_choice"


def scores_col(component: str) -> str:
    return f"{component}_scores"


CANDIDATE_COLUMNS = tuple(candidates_col(c) for c in COMPONENTS)
EXPOSED_COLUMNS = tuple(exposed_col(c) for c in COMPONENTS)
PROPENSITY_COLUMNS = tuple(propensity_col(c) for c in COMPONENTS)
CHOICE_COLUMNS = tuple(choice_col(c) for c in COMPONENTS)
SCORES_COLUMNS = tuple(scores_col(c) for c in COMPONENTS)
