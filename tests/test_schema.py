"""Schema v1: one source of truth (records.py) and the files generated from it."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from genco_data.format import arrow
from genco_data.format.components import COMPONENTS, candidates_col, exposed_col, propensity_col
from genco_data.format.records import ROW_COLUMNS, ImpressionRow, Manifest, PredictionRow

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_schema_files_match_the_code():
    expected = arrow.schema_documents()
    folder = arrow.schema_dir(ROOT)
    on_disk = {p.name for p in folder.iterdir()}
    assert on_disk == set(expected), "schema/v1 has missing or extra files: run `python -m genco_data.format.arrow`"
    for name, text in expected.items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"schema/v1/{name} drifted: run `python -m genco_data.format.arrow`"


def test_column_order_and_component_columns():
    assert ROW_COLUMNS[0] == "impression_id" and ROW_COLUMNS[-1] == "click"
    for c in COMPONENTS:
        i = ROW_COLUMNS.index(candidates_col(c))
        assert ROW_COLUMNS[i + 1 : i + 3] == (exposed_col(c), propensity_col(c))
    schema = arrow.impressions_schema()
    assert schema.names == list(ROW_COLUMNS)
    assert schema.field("click").type == pa.int8()
    assert schema.field("title_exposed").type == pa.int16() and schema.field("title_exposed").nullable
    assert schema.field("title_candidates").type == pa.list_(pa.int64()) and not schema.field("title_candidates").nullable


def test_features_click_is_classlabel_and_rest_matches_arrow():
    from datasets import ClassLabel

    feats = arrow.impressions_features()
    assert isinstance(feats["click"], ClassLabel) and feats["click"].names == ["no_click", "click"]
    fschema = feats.arrow_schema
    for f in arrow.impressions_schema():
        if f.name != "click":
            assert fschema.field(f.name).type == f.type


def _row(**over):
    row = dict(
        impression_id="imp-1", day=dt.date(2025, 7, 1), logging_policy="uniform", user_id=1, user_age=3,
        user_gender=None, ad_id=2, category="phone", query_id=None, query_segments=[7, 8], click=0,
    )
    for c in COMPONENTS:
        row[candidates_col(c)] = [11, 12, 13]
        row[exposed_col(c)] = 1
        row[propensity_col(c)] = 1 / 3
    row.update(over)
    return row


@pytest.mark.parametrize(
    "override, message",
    [
        ({"title_exposed": 3}, "out of range"),
        ({"title_exposed": None}, "null iff"),
        ({"marketing_candidates": [], "marketing_exposed": 0}, "null iff"),
        ({"image_candidates": [5, 5, 6]}, "duplicate"),
        ({"highlight_candidates": [-1, 2, 3]}, "negative"),
        ({"click": 2}, "less than or equal"),
        ({"logging_policy": "bandit"}, "production"),
        ({"title_propensity": 0.0}, "greater than"),
        ({"user_id": -4}, "greater than or equal"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_row_model_rejects_broken_rows(override, message):
    with pytest.raises(ValidationError, match=message):
        ImpressionRow(**_row(**override))


_pool = st.lists(st.integers(0, 2**62), max_size=20, unique=True)


@st.composite
def rows(draw):
    row = _row(
        impression_id=draw(st.text(min_size=1, max_size=12)),
        day=draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1))),
        logging_policy=draw(st.sampled_from(["production", "uniform"])),
        user_age=draw(st.none() | st.integers(-128, 127)),
        query_id=draw(st.none() | st.integers(0, 2**63 - 1)),
        query_segments=draw(st.lists(st.integers(0, 2**63 - 1), max_size=5)),
        click=draw(st.integers(0, 1)),
    )
    for c in COMPONENTS:
        pool = draw(_pool)
        row[candidates_col(c)] = pool
        row[exposed_col(c)] = draw(st.integers(0, len(pool) - 1)) if pool else None
        # float32-representable so the round trip is exact
        row[propensity_col(c)] = float(pa.scalar(draw(st.floats(1e-6, 1.0)), pa.float32()).as_py()) if pool else None
    return row


@settings(max_examples=60, deadline=None)
@given(rows())
def test_pydantic_row_roundtrips_through_arrow(row):
    model = ImpressionRow(**row)
    table = pa.Table.from_pylist([model.model_dump()], schema=arrow.impressions_schema())
    back = ImpressionRow(**table.to_pylist()[0])
    assert back == model


def test_prediction_and_manifest_models_are_strict():
    PredictionRow(impression_id="a", **{f"{c}_choice": 0 for c in COMPONENTS})
    with pytest.raises(ValidationError):
        PredictionRow(impression_id="a", title_choice=-1)
    with pytest.raises(ValidationError, match="semver"):
        Manifest(
            dataset_version="1.0", created_by="x", source={"kind": "raw"}, test_start_day=dt.date(2025, 1, 1),
            splits={}, rows_in=0, rows_rejected=0, files=[],
        )


def test_json_schema_is_valid_json_and_lists_every_column():
    doc = json.loads((arrow.schema_dir(ROOT) / "impression.schema.json").read_text())
    assert set(doc["properties"]) == set(ROW_COLUMNS)
    assert doc["properties"]["title_exposed"]["arrow"] == "int16"
