"""Pydantic records: the single source of truth of every on-disk format.

The Arrow schema, the Hugging Face ``Features`` and the JSON Schema are *derived* from these models
(see :mod:`genco_data.format.arrow`); ``schema/v1/`` holds the generated files. Each field carries its Arrow
type in ``json_schema_extra["arrow"]`` (one of :data:`ARROW_TYPES`), because Python's ``int`` does not say
whether it is stored as int8 or int64.

This module imports only :mod:`genco_data.format.components` (the ground floor).
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, create_model, field_validator, model_validator

from genco_data.format.components import (
    CLICK_NAMES,
    COMPONENTS,
    LOGGING_POLICIES,
    candidates_col,
    choice_col,
    exposed_col,
    propensity_col,
    scores_col,
)

#: Format version of the on-disk layout and row schema. Bump the major on any breaking change and
#: describe it in ``schema/CHANGELOG.md``.
FORMAT_VERSION = "1.0"
FORMAT_MAJOR = int(FORMAT_VERSION.split(".")[0])

#: Arrow type names a field may declare.
ARROW_TYPES = ("string", "date32", "int8", "int16", "int64", "float32", "list<int64>", "list<float32>")


def _col(arrow: str, description: str, **kw: Any) -> Any:
    return Field(json_schema_extra={"arrow": arrow}, description=description, **kw)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StrictJSON(_Strict):
    """A record read from JSON whose fields are all JSON-native: no lax coercion (``"no"`` is not ``False``,
    ``true`` is not ``1``, ``"5"`` is not ``5``) — a value of the wrong JSON type is refused, not reinterpreted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---------------------------------------------------------------------------------------------
# The row of config ``impressions`` (and ``sample``).
# ---------------------------------------------------------------------------------------------
_BASE_ROW_FIELDS: dict[str, Any] = {
    "impression_id": (str, _col("string", "unique within the release", min_length=1)),
    "day": (_dt.date, _col("date32", "log date; every train day precedes every test day")),
    "logging_policy": (Literal[LOGGING_POLICIES], _col("string", "`production` or `uniform`")),  # type: ignore[valid-type]
    "user_id": (int, _col("int64", "hashed user id", ge=0)),
    "user_age": (Optional[int], _col("int8", "age bucket", ge=-128, le=127)),
    "user_gender": (Optional[int], _col("int8", "gender code", ge=-128, le=127)),
    "ad_id": (int, _col("int64", "hashed ad id", ge=0)),
    "category": (Optional[str], _col("string", "product category (e.g. phone, clothing)")),
    "query_id": (Optional[int], _col("int64", "hashed query id", ge=0)),
    "query_segments": (list[int], _col("list<int64>", "hashed query text segments, may be empty")),
}
_COMPONENT_ROW_FIELDS: dict[str, Any] = {}
for _c in COMPONENTS:
    _COMPONENT_ROW_FIELDS[candidates_col(_c)] = (
        list[int],
        _col("list<int64>", f"{_c}: the candidate pool (hashed element ids), in platform order; empty when the ad lacks {_c}"),
    )
    _COMPONENT_ROW_FIELDS[exposed_col(_c)] = (
        Optional[int],
        _col("int16", f"{_c}: index into `{candidates_col(_c)}` of the shown element; null iff the pool is empty", ge=0, le=32767),
    )
    _COMPONENT_ROW_FIELDS[propensity_col(_c)] = (
        Optional[float],
        _col("float32", f"{_c}: probability that the logging policy showed that element; 1/n under `uniform`", gt=0.0, le=1.0),
    )
_CLICK_FIELD = {"click": (int, _col("int8", "ClassLabel: 0 = no_click, 1 = click", ge=0, le=1))}


class _RowBase(_Strict):
    """Cross-field invariants of a row (the same rules :mod:`genco_data.build.validate` applies vectorized)."""

    @model_validator(mode="after")
    def _check_components(self) -> "_RowBase":
        for c in COMPONENTS:
            pool = getattr(self, candidates_col(c))
            exposed = getattr(self, exposed_col(c))
            prop = getattr(self, propensity_col(c))
            if any(x < 0 for x in pool):
                raise ValueError(f"{candidates_col(c)}: negative id")
            if len(set(pool)) != len(pool):
                raise ValueError(f"{candidates_col(c)}: duplicate id in pool")
            if (exposed is None) != (len(pool) == 0):
                raise ValueError(f"{exposed_col(c)}: must be null iff the pool is empty")
            if exposed is not None and exposed >= len(pool):
                raise ValueError(f"{exposed_col(c)}: {exposed} out of range for a pool of {len(pool)}")
            if (prop is None) != (len(pool) == 0):
                raise ValueError(f"{propensity_col(c)}: must be null iff the pool is empty")
        if any(x < 0 for x in self.query_segments):  # type: ignore[attr-defined]
            raise ValueError("query_segments: negative id")
        return self


ImpressionRow: type[_RowBase] = create_model(  # type: ignore[call-overload]
    "ImpressionRow",
    __base__=_RowBase,
    __doc__="One impression: request context, per-component candidate pools, what was shown, and the click.",
    **_BASE_ROW_FIELDS,
    **_COMPONENT_ROW_FIELDS,
    **_CLICK_FIELD,
)

#: Row column names in schema order.
ROW_COLUMNS: tuple[str, ...] = tuple(ImpressionRow.model_fields)

# ---------------------------------------------------------------------------------------------
# Predictions: what a policy hands to the evaluator (one file per seed).
# ---------------------------------------------------------------------------------------------
_PRED_FIELDS: dict[str, Any] = {"impression_id": (str, _col("string", "a test impression id", min_length=1))}
for _c in COMPONENTS:
    _PRED_FIELDS[choice_col(_c)] = (
        Optional[int],
        _col("int16", f"{_c}: chosen index into the original `{candidates_col(_c)}`; null iff the pool is empty", ge=0, le=32767),
    )
_PRED_SCORE_FIELDS: dict[str, Any] = {
    scores_col(_c): (
        Optional[list[float]],
        _col("list<float32>", f"{_c}: optional per-candidate scores, same length as the pool", default=None),
    )
    for _c in COMPONENTS
}
PredictionRow: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "PredictionRow",
    __base__=_Strict,
    __doc__="One policy decision per test impression. Choices index the *original* candidate pools.",
    **_PRED_FIELDS,
    **_PRED_SCORE_FIELDS,
)
PREDICTION_REQUIRED_COLUMNS: tuple[str, ...] = tuple(_PRED_FIELDS)
PREDICTION_OPTIONAL_COLUMNS: tuple[str, ...] = tuple(_PRED_SCORE_FIELDS)

# ---------------------------------------------------------------------------------------------
# Manifest of a release folder.
# ---------------------------------------------------------------------------------------------
# Strict ASCII grammars, matched whole (``fullmatch``: no trailing newline; ``[0-9]``, not ``\d``, which also
# matches non-ASCII digits such as "١"; no leading zeros, as semver.org's grammar says).
_NUMBER = r"(?:0|[1-9][0-9]{0,8})"
_SEMVER = re.compile(rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}", re.ASCII)
_FORMAT_VERSION = re.compile(rf"({_NUMBER})\.({_NUMBER})", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
#: One part of a Hub repo id: huggingface_hub's rules (letters, digits, '.', '_', '-'; no '--' or '..';
#: neither starts nor ends with '.' or '-'), at most 96 characters for the whole id.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}", re.ASCII)
REPO_ID_MAX = 96
#: Where a submission may point (code_url, paper_url): an absolute http(s) URL, or a path inside this repository.
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~:/?#@!$&'*+,;=%()\[\]-]*)?", re.ASCII)
_REPO_PATH = re.compile(r"(?:\.\./|\./)*[A-Za-z0-9_][A-Za-z0-9._~/-]*", re.ASCII)
#: Characters a one-line display field may not hold: control characters (newlines included), Unicode line and
#: paragraph separators, and the bidirectional overrides/isolates that reorder what a reader sees.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _check_sha256(v: str) -> str:
    if not _SHA256.fullmatch(v):
        raise ValueError(f"not a lowercase hex sha256: {v!r}")
    return v


def is_semver(v: object) -> bool:
    """``X.Y.Z`` in ASCII digits without leading zeros (``1.0.0``; not ``01.0.0``, ``1.0.0\\n``, ``١.0.0``)."""
    return isinstance(v, str) and _SEMVER.fullmatch(v) is not None


def check_semver(v: str, what: str = "dataset_version") -> str:
    """``v`` when :func:`is_semver`, else ``ValueError`` naming ``what`` and the value."""
    if not is_semver(v):
        raise ValueError(f"{what} must be semver X.Y.Z (ASCII digits, no leading zeros), got {v!r}")
    return v


def _check_semver(v: str) -> str:
    return check_semver(v)


def parse_format_version(v: object) -> tuple[int, int] | None:
    """``(major, minor)`` of a ``MAJOR.MINOR`` format version in the strict grammar, else None (``"1.x"``,
    ``"1.0\\n"``, ``"01.0"``, ``1.0`` as a JSON number)."""
    m = _FORMAT_VERSION.fullmatch(v) if isinstance(v, str) else None
    return None if m is None else (int(m.group(1)), int(m.group(2)))


def _check_format_version(v: str) -> str:
    if parse_format_version(v) is None:
        raise ValueError(f"format_version must be MAJOR.MINOR (ASCII digits, no leading zeros), got {v!r}")
    return v


def is_repo_id(v: object) -> bool:
    """A Hugging Face Hub id ``ORG/NAME`` (ASCII; see :data:`_REPO_PART`; at most 96 characters)."""
    return (isinstance(v, str) and len(v) <= REPO_ID_MAX and _REPO_ID.fullmatch(v) is not None
            and ".." not in v and "--" not in v)


def check_repo_id(v: str) -> str:
    if not is_repo_id(v):
        raise ValueError(f"repo must be ORG/NAME (ASCII letters, digits, '.', '_', '-'; no '--' or '..'; "
                         f"at most {REPO_ID_MAX} characters), got {v!r}")
    return v


def is_safe_link(v: object) -> bool:
    """An absolute ``http``/``https`` URL, or a relative path inside the repository (no scheme, no ``//``)."""
    if not isinstance(v, str) or not v or len(v) > 2000:
        return False
    if _HTTP_URL.fullmatch(v):
        return True
    return _REPO_PATH.fullmatch(v) is not None and ":" not in v and "//" not in v


def _check_link(v: Optional[str]) -> Optional[str]:
    if v is not None and not is_safe_link(v):
        raise ValueError(f"must be an http(s) URL or a relative path inside the repository, got {v!r}")
    return v


def _check_relative_path(v: str, inside: str) -> str:
    """A posix path relative to ``inside``: no leading '/', no '\\', no empty, '.' or '..' segment, no control
    character (a NUL would make the OS calls raise), at most 4096 characters."""
    parts = v.split("/")
    if (not v or len(v) > 4096 or v.startswith("/") or "\\" in v or _NOT_ONE_LINE.search(v)
            or any(part in ("", ".", "..") for part in parts)):
        raise ValueError(f"path must be relative and inside {inside}: {v!r}")
    return v


def _check_one_line(v: str) -> str:
    bad = _NOT_ONE_LINE.search(v)
    if bad is not None:
        raise ValueError(f"must be one line of text without control or bidi characters (found {bad.group()!r} at {bad.start()})")
    return v


#: A lowercase hex sha256 digest.
Sha256 = Annotated[str, AfterValidator(_check_sha256)]
#: A dataset version, semver ``X.Y.Z``.
SemVer = Annotated[str, AfterValidator(_check_semver)]
#: A format version ``MAJOR.MINOR``.
FormatVersion = Annotated[str, AfterValidator(_check_format_version)]
#: Text shown on one line of the board (no newline, control or bidi character).
OneLine = Annotated[str, AfterValidator(_check_one_line)]
#: Where a submission links to: http(s) URL or a path inside the repository.
Link = Annotated[str, AfterValidator(_check_link)]


class FileEntry(_StrictJSON):
    """One file of a release, relative to the release root (posix separators)."""

    path: str
    rows: Optional[int] = Field(default=None, ge=0, description="rows for Parquet files, null otherwise")
    bytes: int = Field(ge=0)
    sha256: Sha256


    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return _check_relative_path(v, "the release")


class InputFile(_StrictJSON):
    path: str
    bytes: int = Field(ge=0)
    sha256: Sha256


class Source(_StrictJSON):
    """Provenance: where the rows came from."""

    kind: Literal["synthetic", "raw"]
    generator: Optional[str] = Field(default=None, description="e.g. genco_data.synth 0.1.0")
    seed: Optional[int] = None
    parameters: dict[str, Any] = Field(default_factory=dict, description="world / logging parameters")
    inputs: list[InputFile] = Field(default_factory=list)


class Manifest(_Strict):
    """``<release>/manifest.json``."""

    dataset_version: SemVer
    format_version: FormatVersion = FORMAT_VERSION
    created_by: str = Field(description="genco-data version that built the release")
    source: Source
    test_start_day: _dt.date
    splits: dict[str, dict[str, StrictInt]] = Field(description="config -> split -> rows")
    rows_in: int = Field(ge=0, strict=True)
    rows_rejected: int = Field(ge=0, strict=True)
    files: list[FileEntry]
    stats: dict[str, Any] = Field(default_factory=dict, description="Table-1 statistics of the train split")




# ---------------------------------------------------------------------------------------------
# Leaderboard submissions and verified entries.
# ---------------------------------------------------------------------------------------------
class SeedPredictions(_StrictJSON):
    """One predictions file of a submission: the seed that produced it and its sha256."""

    seed: int = Field(ge=-(2**63), le=2**63 - 1)
    path: str = Field(min_length=1, description="path of the predictions Parquet, relative to the submission JSON")
    sha256: Sha256


    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        return _check_relative_path(v, "the submission folder")


class Submission(_StrictJSON):
    """A leaderboard submission (``submission.json``), as a pull request adds it. See LEADERBOARD_RULES.md."""

    method: OneLine = Field(min_length=1, max_length=80)
    authors: list[OneLine] = Field(min_length=1)
    contact: OneLine = Field(min_length=3)
    code_url: Link = Field(min_length=1, description="http(s) URL of the code, or a path inside this repository")
    command: str = Field(min_length=1, description="the exact command that produced the predictions")
    paper_url: Optional[Link] = None
    dataset: OneLine = Field(min_length=1, description="Hub repo id or path of the release")
    dataset_version: SemVer
    manifest_sha256: Sha256
    genco_data_version: OneLine
    predictions: list[SeedPredictions] = Field(min_length=1)
    n_parameters: int = Field(ge=0, le=2**63 - 1)
    hardware: OneLine = Field(min_length=1)
    external_data: bool
    used_test_labels: bool = Field(description="test labels used for anything but evaluation; must be false")
    deterministic: bool = Field(
        default=False,
        description="the method ignores the seed, so identical predictions across seeds are expected (else refused)",
    )
    notes: str = ""
    reported: dict[str, float] = Field(
        default_factory=dict,
        description="optional self-reported metric means over seeds (keys as in the verified entry's `mean`)",
    )




class MetricSummary(_StrictJSON):
    mean: float
    std: float
    per_seed: list[float]


class LeaderboardEntry(_StrictJSON):
    """A verified entry under ``cards/leaderboard/``: the submission plus metrics recomputed from its files."""

    submission: Submission
    verified_by: str = Field(description="genco-data version that recomputed the metrics")
    seeds: list[int]
    metrics: dict[str, MetricSummary] = Field(description="metric name -> mean, std and per-seed values")
    per_seed: list[dict[str, Any]] = Field(description="full evaluator output per seed (CIs included)")
    synthetic: bool
    regenerate: Optional[str] = Field(default=None, description="how to regenerate predictions not kept in the repo")

    @property
    def method(self) -> str:
        return self.submission.method

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_MAJOR",
    "is_semver",
    "check_semver",
    "parse_format_version",
    "is_repo_id",
    "check_repo_id",
    "is_safe_link",
    "REPO_ID_MAX",
    "ARROW_TYPES",
    "CLICK_NAMES",
    "ImpressionRow",
    "ROW_COLUMNS",
    "PredictionRow",
    "PREDICTION_REQUIRED_COLUMNS",
    "PREDICTION_OPTIONAL_COLUMNS",
    "FileEntry",
    "InputFile",
    "Source",
    "Manifest",
    "SeedPredictions",
    "Submission",
    "MetricSummary",
    "LeaderboardEntry",
]
