"""genco_data.build.validate (+ coerce, unique): every rule by name, the rule order, file-level refusals, type coercion, hashing."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from factories import TSD, make_impressions, set_cells
from genco_data.format.arrow import impressions_schema
from genco_data.errors import SchemaError
from genco_data.format.records import ROW_COLUMNS, ImpressionRow
from genco_data.build.coerce import coerce
from genco_data.build.unique import IdSet, hash_strings
from genco_data.build.validate import REASONS, row_reasons, validate



@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_impressions(400, seed=3)


def _row(table: pa.Table, policy: str) -> int:
    """Index of the first row logged by ``policy`` whose pools are all non-empty except marketing's."""
    pols = table.column("logging_policy").to_pylist()
    mk = table.column("marketing_candidates").to_pylist()
    ti = table.column("title_candidates").to_pylist()
    for i, p in enumerate(pols):
        if p == policy and not mk[i] and len(ti[i]) >= 2:
            return i
    raise AssertionError("factory has no such row")


def test_valid_rows_pass_unchanged(table):
    good, rejected = validate(table, test_start_day=TSD)
    assert rejected.num_rows == 0
    assert good.schema.equals(impressions_schema())
    assert good.equals(table)


# (column, value, expected reason); row = a production row with an empty marketing pool
ROW_CASES = [
    ("impression_id", None, "null:impression_id"),
    ("impression_id", "", "empty:impression_id"),
    ("day", None, "null:day"),
    ("logging_policy", None, "null:logging_policy"),
    ("logging_policy", "random", "unknown_policy:logging_policy"),
    ("user_id", -1, "negative_id:user_id"),
    ("user_id", None, "null:user_id"),
    ("ad_id", -7, "negative_id:ad_id"),
    ("query_id", -3, "negative_id:query_id"),
    ("query_segments", [4, -2], "negative_id:query_segments"),
    ("query_segments", None, "null:query_segments"),
    ("query_segments", [4, None], "null_element:query_segments"),
    ("user_age", 300, "out_of_range:user_age"),
    ("user_gender", -129, "out_of_range:user_gender"),
    ("click", 2, "not_binary:click"),
    ("click", -1, "not_binary:click"),
    ("click", None, "null:click"),
    ("title_candidates", None, "null:title_candidates"),
    ("title_candidates", [5, -1, 6], "negative_id:title"),
    ("title_candidates", [5, 9, 5], "duplicate_candidate:title"),
    ("title_exposed", None, "exposed_null:title"),
    ("title_exposed", -1, "exposed_out_of_range:title"),
    ("title_exposed", 40_000, "exposed_out_of_range:title"),
    ("marketing_exposed", 0, "exposed_on_empty_pool:marketing"),
    ("marketing_propensity", 0.5, "propensity_on_empty_pool:marketing"),
    ("title_propensity", None, "propensity_null:title"),
    ("title_propensity", 0.0, "propensity_out_of_range:title"),
    ("title_propensity", 1.5, "propensity_out_of_range:title"),
    ("title_propensity", -0.2, "propensity_out_of_range:title"),
    ("title_propensity", float("nan"), "propensity_out_of_range:title"),
    ("title_propensity", float("inf"), "propensity_out_of_range:title"),
    ("title_propensity", 1e-60, "propensity_out_of_range:title"),  # 0 once rounded to float32
]


@pytest.mark.parametrize("column,value,reason", ROW_CASES, ids=[f"{c}={v!r}" for c, v, _ in ROW_CASES])
def test_each_rule_rejects_with_its_name(table, column, value, reason):
    i = _row(table, "production")
    bad = set_cells(table, column, {i: value})
    good, rejected = validate(bad, test_start_day=TSD)
    assert rejected.column("reason").to_pylist() == [reason]
    assert good.num_rows == table.num_rows - 1
    assert reason in REASONS


def test_exposed_out_of_range_at_pool_length(table):
    i = _row(table, "production")
    n = len(table.column("title_candidates")[i].as_py())
    _, rejected = validate(set_cells(table, "title_exposed", {i: n}), test_start_day=TSD)
    assert rejected.column("reason").to_pylist() == ["exposed_out_of_range:title"]
    good, _ = validate(set_cells(table, "title_exposed", {i: n - 1}), test_start_day=TSD)
    assert good.num_rows == table.num_rows


def test_test_period_row_must_be_uniform(table):
    i = _row(table, "uniform")
    bad = set_cells(table, "logging_policy", {i: "production"})
    _, rejected = validate(bad, test_start_day=TSD)
    assert rejected.column("reason").to_pylist() == ["not_uniform_in_test:logging_policy"]
    # without a test start day the rule cannot apply
    good, rejected = validate(bad)
    assert rejected.num_rows == 0
    # a uniform row on a train day is fine (with uniform propensities 1/n: issue #16's rule below)
    j = _row(table, "production")
    train_uniform = _as_uniform(set_cells(table, "logging_policy", {j: "uniform"}), j)
    good, rejected = validate(train_uniform, test_start_day=TSD)
    assert rejected.num_rows == 0


def _as_uniform(table: pa.Table, i: int) -> pa.Table:
    """Row ``i`` with every present component's propensity set to 1/len(pool)."""
    from genco_data.format.components import COMPONENTS, candidates_col, propensity_col

    for c in COMPONENTS:
        n = len(table.column(candidates_col(c))[i].as_py())
        if n:
            table = set_cells(table, propensity_col(c), {i: 1.0 / n})
    return table


def test_a_uniform_row_whose_propensity_is_not_one_over_n_is_rejected(table):
    i = _row(table, "uniform")
    n = len(table.column("title_candidates")[i].as_py())
    for p in (0.5 / n, min(1.0, 1.5 / n), 1.0 / n + 1e-3):
        _, rejected = validate(set_cells(table, "title_propensity", {i: p}), test_start_day=TSD)
        assert rejected.column("reason").to_pylist() == ["propensity_not_uniform:title"], p
    # 1/n as text with 7 significant digits (a CSV writer's float) is 1/n
    good, rejected = validate(set_cells(table, "title_propensity", {i: float(f"{1 / n:.7g}")}), test_start_day=TSD)
    assert rejected.num_rows == 0
    # a production row may have any propensity in (0, 1]
    j = _row(table, "production")
    good, rejected = validate(set_cells(table, "title_propensity", {j: 0.123}), test_start_day=TSD)
    assert rejected.num_rows == 0


@pytest.mark.parametrize("day,kind", [
    (dt.date(1, 1, 1), "date32"), (dt.date(9999, 12, 31), "date32"), (dt.date(1989, 12, 31), "date32"),
    (10**15, "timestamp_s"), (-(10**15), "timestamp_s"), (2**62, "timestamp_ms"), (10**14, "date64_ms"),
])
def test_days_far_outside_a_plausible_range_are_rejected_not_wrapped(table, day, kind):
    i = _row(table, "production")
    days = table.column("day")
    if kind == "date32":
        col = pa.array(days.to_pylist()[:i] + [day] + days.to_pylist()[i + 1:], pa.date32())
    else:
        unit = {"timestamp_s": 86_400, "timestamp_ms": 86_400_000, "date64_ms": 86_400_000}[kind]
        raw = (np.asarray(days.cast(pa.int32())).astype(np.int64) * unit)
        raw[i] = day
        typ = pa.date64() if kind == "date64_ms" else pa.timestamp(kind.split("_")[1])
        col = pa.array(raw, pa.int64()).cast(typ)
    bad = table.set_column(table.schema.get_field_index("day"), "day", col)
    good, rejected = validate(bad, test_start_day=TSD)
    assert rejected.column("reason").to_pylist() == ["out_of_range:day"]
    assert good.num_rows == table.num_rows - 1
    assert set(good.column("day").to_pylist()) <= set(days.to_pylist())  # nothing wrapped into the range


def test_first_failing_rule_wins(table):
    i = _row(table, "production")
    bad = set_cells(table, "title_exposed", {i: 99})
    bad = set_cells(bad, "click", {i: 5})
    bad = set_cells(bad, "structure_attribute_exposed", {i: -4})
    _, rejected = validate(bad, test_start_day=TSD)
    assert rejected.column("reason").to_pylist() == ["not_binary:click"]  # click (rule 8) before components (9)
    bad = set_cells(table, "title_exposed", {i: 99})
    bad = set_cells(bad, "image_candidates", {i: [1, 1]})
    _, rejected = validate(bad, test_start_day=TSD)
    assert rejected.column("reason").to_pylist() == ["exposed_out_of_range:title"]  # title before image


def test_rule_catalogue_order():
    assert len(set(REASONS)) == len(REASONS)
    assert REASONS[0] == f"malformed:{ROW_COLUMNS[0]}"
    assert REASONS[-1] == "duplicate_id:impression_id"
    assert REASONS.index("not_binary:click") < REASONS.index("negative_id:title") < REASONS.index("negative_id:image")


def test_duplicate_ids_first_occurrence_wins_and_rejected_rows_take_no_id(table):
    ids = table.column("impression_id").to_pylist()
    # row 5 repeats row 2's id -> row 5 rejected; row 3 is broken and takes row 9's id, which row 9
    # keeps (a rejected row takes no id)
    bad = set_cells(table, "impression_id", {5: ids[2], 3: ids[9]})
    bad = set_cells(bad, "click", {3: 9})
    good, rejected = validate(bad, test_start_day=TSD)
    assert rejected.num_rows == 2
    assert rejected.column("reason").to_pylist() == ["not_binary:click", "duplicate_id:impression_id"]
    assert rejected.column("impression_id").to_pylist() == [ids[9], ids[2]]
    kept = good.column("impression_id").to_pylist()
    assert ids[2] in kept and ids[9] in kept and ids[5] not in kept


def test_duplicate_ids_across_batches_with_a_shared_set(table):
    seen = IdSet()
    g1, r1 = validate(table.slice(0, 200), seen=seen)
    again = set_cells(table.slice(200, 200), "impression_id", {0: table.column("impression_id")[7].as_py()})
    g2, r2 = validate(again, seen=seen)
    assert (g1.num_rows, r1.num_rows, g2.num_rows) == (200, 0, 199)
    assert r2.column("reason").to_pylist() == ["duplicate_id:impression_id"]
    assert len(seen) == 399


def test_duplicate_candidates_are_exact_on_large_ids():
    base = 123_456_789
    t = make_impressions(4, seed=1)
    t = set_cells(t, "title_candidates", {0: [base, base + (1 << 40), 5], 1: [base, 7, base], 2: [2**62, 3, 2**62 + (1 << 41)]})
    t = set_cells(t, "title_exposed", {0: 0, 1: 0, 2: 0})
    t = set_cells(t, "title_propensity", {0: 0.5, 1: 0.5, 2: 0.5})
    t = set_cells(t, "logging_policy", {i: "production" for i in range(4)})
    _, rejected = validate(t)
    assert rejected.column("reason").to_pylist() == ["duplicate_candidate:title"]
    assert rejected.column("impression_id")[0].as_py() == t.column("impression_id")[1].as_py()


def test_rejected_rows_keep_their_original_columns(table):
    i = _row(table, "production")
    bad = set_cells(table, "user_age", {i: 1000})  # the column becomes int64 in the input
    good, rejected = validate(bad, test_start_day=TSD)
    assert rejected.schema.names == bad.schema.names + ["reason"]
    assert rejected.drop_columns(["reason"]).equals(bad.slice(i, 1))
    assert good.schema.equals(impressions_schema())


def test_agrees_with_the_pydantic_row_model(table):
    """Every good row is a valid ImpressionRow; every rejected case above is invalid for it too."""
    good, _ = validate(table.slice(0, 50), test_start_day=TSD)
    for row in good.to_pylist():
        ImpressionRow.model_validate(row)
    i = _row(table, "production")
    for column, value, reason in ROW_CASES:
        if reason.startswith(("duplicate_id", "not_uniform", "propensity_out_of_range")) or column == "user_gender":
            continue  # cross-row / context rules, and float32/int8 rounding the model does not know
        row = table.slice(i, 1).to_pylist()[0]
        row[column] = value
        with pytest.raises(ValidationError) as info:
            ImpressionRow.model_validate(row)
        # the model names the same field: as the error's location, or (row-level rules) first in its message
        assert any(str(e["loc"][0]) == column if e["loc"] else e["msg"].startswith(f"Value error, {column}:")
                   for e in info.value.errors()), (column, value, info.value.errors())


# ------------------------------------------------------------------------------------------- file level
def test_missing_column_refuses_the_file(table):
    with pytest.raises(SchemaError, match=r"raw\.parquet: missing column 'click'"):
        validate(table.drop_columns(["click"]), where="raw.parquet")


def test_unknown_column_refuses_the_file(table):
    with pytest.raises(SchemaError, match=r"f\.csv: unknown column 'score'"):
        validate(table.append_column("score", pa.array([1.0] * table.num_rows)), where="f.csv")


@pytest.mark.parametrize(
    "column,arrow_type",
    [
        ("click", pa.float64()),
        ("user_id", pa.float32()),
        ("day", pa.int64()),
        ("title_candidates", pa.list_(pa.string())),
        ("impression_id", pa.int64()),
        ("title_exposed", pa.bool_()),
    ],
)
def test_unconvertible_type_refuses_the_file(table, column, arrow_type):
    arr = pa.nulls(table.num_rows, arrow_type)
    if not pa.types.is_list(arrow_type):
        arr = pc.cast(pa.array(np.zeros(table.num_rows, dtype=np.int64)), arrow_type) if arrow_type != pa.bool_() else pa.array([False] * table.num_rows)
    bad = table.set_column(table.schema.get_field_index(column), column, arr)
    with pytest.raises(SchemaError, match=rf"x\.parquet: column '{column}' has type"):
        validate(bad, where="x.parquet")


def test_equivalent_types_are_accepted(table):
    t = table
    t = t.set_column(t.schema.get_field_index("user_id"), "user_id", t.column("user_id").cast(pa.int32()))
    t = t.set_column(t.schema.get_field_index("click"), "click", t.column("click").cast(pa.uint8()))
    t = t.set_column(t.schema.get_field_index("title_candidates"), "title_candidates",
                     t.column("title_candidates").cast(pa.large_list(pa.int64())))
    t = t.set_column(t.schema.get_field_index("image_candidates"), "image_candidates",
                     t.column("image_candidates").cast(pa.list_(pa.uint64())))
    t = t.set_column(t.schema.get_field_index("title_propensity"), "title_propensity", t.column("title_propensity").cast(pa.float64()))
    t = t.set_column(t.schema.get_field_index("day"), "day", t.column("day").cast(pa.timestamp("ms")))
    t = t.set_column(t.schema.get_field_index("logging_policy"), "logging_policy", t.column("logging_policy").dictionary_encode())
    t = t.set_column(t.schema.get_field_index("category"), "category", t.column("category").cast(pa.large_string()))
    t = t.select(list(reversed(t.column_names)))  # column order does not matter
    good, rejected = validate(t, test_start_day=TSD)
    assert rejected.num_rows == 0
    assert good.equals(table)


def _as_text(table: pa.Table) -> pa.Table:
    """Every column as text, lists as JSON arrays: what a CSV file reads as."""
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_list(col.type):
            cols[name] = pa.array([None if v is None else json.dumps(v) for v in col.to_pylist()], pa.string())
        else:
            cols[name] = pc.cast(col, pa.string())
    return pa.table(cols)


def test_text_cells_parse_and_bad_cells_reject_their_row(table):
    text = _as_text(table)
    good, rejected = validate(text, test_start_day=TSD)
    assert rejected.num_rows == 0 and good.equals(table)
    bad = set_cells(text, "title_candidates", {3: "[1, 2"})
    bad = set_cells(bad, "image_candidates", {4: '[1, "a"]'})
    bad = set_cells(bad, "day", {5: "2024-13-01"})
    bad = set_cells(bad, "user_id", {6: "12x"})
    bad = set_cells(bad, "query_segments", {7: "[1.5]"})
    bad = set_cells(bad, "ad_id", {8: " 42 "})  # whitespace is fine
    good, rejected = validate(bad, test_start_day=TSD)
    got = dict(zip(rejected.column("impression_id").to_pylist(), rejected.column("reason").to_pylist()))
    ids = table.column("impression_id").to_pylist()
    assert got == {
        ids[3]: "malformed:title_candidates",
        ids[4]: "malformed:image_candidates",
        ids[5]: "malformed:day",
        ids[6]: "malformed:user_id",
        ids[7]: "malformed:query_segments",
    }
    assert good.num_rows == table.num_rows - 5
    assert rejected.drop_columns(["reason"]).column("title_candidates")[0].as_py() == "[1, 2"


def test_coerce_flags_only_malformed_cells(table):
    text = set_cells(_as_text(table), "title_exposed", {0: "x"})
    c = coerce(text, "t.csv")
    assert list(c.malformed) == ["title_exposed"]
    assert np.flatnonzero(c.malformed["title_exposed"]).tolist() == [0]
    codes = row_reasons(c)
    assert np.flatnonzero(codes).tolist() == [0]


# -------------------------------------------------------------------------------------------- hashing
def test_hash_strings_is_a_function_of_the_string_alone():
    fixed = pa.array(["abc", "abd", "xyz"])
    mixed = pa.array(["abc", "a", "", None, "abd", "xyz", "a much longer id"])
    hf, hm = hash_strings(fixed), hash_strings(mixed)
    assert hf.dtype == np.uint64
    assert hm[[0, 4, 5]].tolist() == hf.tolist()  # fixed-width fast path == general path
    assert hm[2] == hm[3]  # null hashes like ""
    assert len(set(hm[[0, 1, 2, 4, 5, 6]].tolist())) == 6
    assert hash_strings(mixed.slice(4, 2)).tolist() == hf[1:].tolist()  # slices
    many = pa.array([f"imp{i:08d}" for i in range(50_000)] + [f"id-{i}" for i in range(50_000)])
    assert len(np.unique(hash_strings(many))) == 100_000


def test_idset_matches_a_python_set():
    rng = np.random.default_rng(0)
    s, ref = IdSet(np.int64), set()
    for _ in range(30):
        v = rng.integers(-50, 5_000, rng.integers(0, 400))
        new = s.add(v)
        assert new == len(set(v.tolist()) - ref)
        ref |= set(v.tolist())
        probe = rng.integers(-60, 5_100, 100)
        assert s.contains(probe).tolist() == [int(x) in ref for x in probe]
    assert len(s) == len(ref)


def test_empty_batch():
    good, rejected = validate(make_impressions(0))
    assert good.num_rows == rejected.num_rows == 0
