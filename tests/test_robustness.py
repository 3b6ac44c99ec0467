"""The bad-input corpus: "a clear error, and nothing lost" for every kind of broken raw input.

Every case is generated here (no binary fixtures) from a small valid table, written as Parquet, CSV or JSONL,
and run twice: through :func:`genco_data.build.build_release` and through the CLI (``genco build``). The
table ``CASES`` is the specification; each row is (kind, format, how the input is made, the outcome):

* ``Rejected({row: reason})`` — the build succeeds; exactly those rows of the bad file are in ``rejects/``
  with that reason; rows in = rows written + rows rejected (and every input ``impression_id`` is in the
  release or in ``rejects/``); each rejected row is recoverable exactly from ``rejects/`` (Parquet: the
  file's own columns and types, ``Table.equals``; CSV: every cell equals the file's text as parsed by
  Python's ``csv`` module; JSONL: the row equals ``json.loads`` of the file's line); the release verifies;
  ``genco build`` exits 0 and reports the same rejects.
* ``Refused(error, pattern)`` — the whole file is refused: ``build_release`` raises ``error`` with a one-line
  message matching ``pattern`` (naming the file); nothing is left at ``--out`` (nor a temporary sibling);
  ``genco build`` exits 2 with one stderr line ``genco build: error: …`` and no traceback.
* ``Accepted()`` — the build succeeds with no reject (the input is unusual but valid).

Cases chosen to be *accepted* rather than refused are marked ``# ACCEPTED:`` with the reason.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import genco_data.card.card as card_module
from factories import TSD, make_impressions, set_cells
from genco_data.format.arrow import impressions_schema
from genco_data import BuildConfig, build_release
from genco_data.cli import main
from genco_data.format.components import COMPONENTS, PAD_TO, candidates_col
from genco_data.errors import BuildError, InvalidInputError, SchemaError
from genco_data.release import Release, verify_release

BASE_ROWS = 40
EXTRA = ["reason", "source_file", "source_row"]
MAX_REJECT_RATE = 0.5


@pytest.fixture(autouse=True)
def _no_card_figures(monkeypatch):
    """The card's PNG figures cost ~0.5 s per build and are not what these tests check; the card text is
    still rendered (``verify_release`` needs README.md)."""
    monkeypatch.setattr(card_module, "render_figures", lambda release, out_dir, data=None: [])


@pytest.fixture(scope="module")
def base() -> pa.Table:
    return make_impressions(BASE_ROWS, seed=21)


# ------------------------------------------------------------------------------------------ row picking
def pick(base: pa.Table, policy: str = "production", has: tuple[str, ...] = ("title", "image"), empty: tuple[str, ...] = ()) -> int:
    """First row logged by ``policy`` whose pools of ``has`` hold >= 2 candidates and of ``empty`` none."""
    pols = base.column("logging_policy").to_pylist()
    pools = {c: [len(p) for p in base.column(candidates_col(c)).to_pylist()] for c in COMPONENTS}
    for i, p in enumerate(pols):
        if p == policy and all(pools[c][i] >= 2 for c in has) and all(pools[c][i] == 0 for c in empty):
            return i
    raise AssertionError(f"the base table has no {policy} row with {has} and empty {empty}")


# --------------------------------------------------------------------------------------------- writers
@dataclass(frozen=True)
class Text:
    """A cell given as raw text (how a CSV cell arrives); Parquet stores the column as string."""

    text: str


def _as_text_column(col: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_list(col.type):
        return pa.array([None if v is None else json.dumps(v, separators=(",", ":")) for v in col.to_pylist()], pa.string())
    return pc.cast(col, pa.string()).combine_chunks()


def _apply(table: pa.Table, cells: dict[tuple[int, str], Any]) -> pa.Table:
    """Set cells; a :class:`Text` value turns its column into text first."""
    for (row, col), value in cells.items():
        if isinstance(value, Text):
            if not pa.types.is_string(table.schema.field(col).type):
                i = table.schema.get_field_index(col)
                table = table.set_column(i, pa.field(col, pa.string()), _as_text_column(table.column(col)))
            value = value.text
        table = set_cells(table, col, {row: value})
    return table


def write(table: pa.Table, fmt: str, path: Path) -> Path:
    """``table`` as ``fmt``: Parquet as is; CSV with every cell as text (list columns as JSON arrays, null =
    empty cell); JSONL with one object per row (``day`` as text, NaN/inf as ``NaN``/``Infinity``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        text = pa.table({n: _as_text_column(table.column(n)) for n in table.column_names})
        pa_csv.write_csv(text, path)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            for row in table.to_pylist():
                fh.write(json.dumps({k: v.isoformat() if isinstance(v, dt.date) else v for k, v in row.items()}) + "\n")
    return path


SUFFIX = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


def _edit_text(path: Path, edit: Callable[[list[str]], None]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _edit_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


# -------------------------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class Rejected:
    reasons: dict[int, str]  # source row in the bad file -> reason


@dataclass(frozen=True)
class Refused:
    error: type
    pattern: str


@dataclass(frozen=True)
class Accepted:
    pass


Maker = Callable[[Path, pa.Table], list[Path]]  # writes the sources into a folder; the bad file is the last


@dataclass(frozen=True)
class Case:
    kind: str
    fmt: str
    make: Maker
    outcome: Any
    cli: bool = True  # False: the case needs a BuildConfig option the CLI does not expose
    config: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.fmt}"


def one_file(mutate: Callable[[pa.Table], pa.Table] | None = None, post: Callable[[Path], None] | None = None) -> Callable[[str], Maker]:
    """A maker of one file of the given format: the base table, mutated, written, then edited as bytes."""

    def for_format(fmt: str) -> Maker:
        def make(folder: Path, base: pa.Table) -> list[Path]:
            t = mutate(base) if mutate else base
            p = write(t, fmt, folder / f"bad.{SUFFIX[fmt]}")
            if post:
                post(p)
            return [p]

        return make

    return for_format


# Rows are chosen by predicates on the base table, so the cases survive a change of the factory's seed.
PROD = pick  # a production (train-day) row with >= 2 title and image candidates
PROD_NO_MK = lambda b: pick(b, empty=("marketing",))  # noqa: E731
UNIFORM_ROW = lambda b: pick(b, policy="uniform", has=())  # noqa: E731
ROW_OF = {"PROD": PROD, "PROD_NO_MK": PROD_NO_MK, "UNIFORM": UNIFORM_ROW}


def row_case(kind: str, edits: list[tuple[str, str, Any]], reason: str | dict[str, str], formats=("parquet", "csv", "jsonl")) -> list[Case]:
    """One row-level case in each format; ``edits`` = [(row key, column, value)] where a callable value is
    ``value(base, row)``; ``reason`` the expected reason (or one per format). The rejected row is the
    first edit's row."""
    out = []
    for fmt in formats:
        why = reason[fmt] if isinstance(reason, dict) else reason

        def make(folder: Path, base: pa.Table, fmt=fmt) -> list[Path]:
            rows = [(ROW_OF[r](base), col, v) for r, col, v in edits]
            t = _apply(base, {(i, col): v(base, i) if callable(v) else v for i, col, v in rows})
            return [write(t, fmt, folder / f"bad.{SUFFIX[fmt]}")]

        out.append(Case(kind, fmt, make, Rejected({-1: why}), config={"row_key": edits[0][0]}))
    return out


# ---------------------------------------------------------------------------------------- the row cases
NAN, INF = float("nan"), float("inf")
ROW_CASES: list[Case] = [
    *row_case("negative_user_id", [("PROD", "user_id", -5)], "negative_id:user_id"),
    *row_case("null_ad_id", [("PROD", "ad_id", None)], "null:ad_id"),
    *row_case("negative_query_id", [("PROD", "query_id", -3)], "negative_id:query_id"),
    *row_case("negative_query_segment", [("PROD", "query_segments", [4, -2])], "negative_id:query_segments"),
    *row_case("null_impression_id", [("PROD", "impression_id", None)], "null:impression_id"),
    # a CSV cell "" is null (the CSV contract: an empty cell is null), so the empty id is a null id there
    *row_case("empty_impression_id", [("PROD", "impression_id", "")], {"parquet": "empty:impression_id", "csv": "null:impression_id", "jsonl": "empty:impression_id"}),
    *row_case("negative_candidate_id", [("PROD", "title_candidates", [5, -1, 6]), ("PROD", "title_exposed", 0)], "negative_id:title"),
    # CSV list cells are JSON arrays of integers; "[5,null]" is not one, so the cell is malformed
    *row_case("null_candidate", [("PROD", "image_candidates", [5, None])], {"parquet": "null_element:image_candidates", "csv": "malformed:image_candidates", "jsonl": "null_element:image_candidates"}),
    *row_case("null_pool", [("PROD", "title_candidates", None)], "null:title_candidates"),
    *row_case("exposed_at_pool_length", [("PROD", "title_exposed", lambda b, i: len(b.column("title_candidates")[i].as_py()))], "exposed_out_of_range:title"),
    *row_case("exposed_negative", [("PROD", "title_exposed", -1)], "exposed_out_of_range:title"),
    *row_case("exposed_beyond_int16", [("PROD", "image_exposed", 40_000)], "exposed_out_of_range:image"),
    *row_case("exposure_on_empty_pool", [("PROD_NO_MK", "marketing_exposed", 0)], "exposed_on_empty_pool:marketing"),
    *row_case("pool_emptied_exposure_kept", [("PROD", "title_candidates", [])], "exposed_on_empty_pool:title"),
    *row_case("pool_without_exposure", [("PROD", "title_exposed", None)], "exposed_null:title"),
    *row_case("propensity_on_empty_pool", [("PROD_NO_MK", "marketing_propensity", 0.5)], "propensity_on_empty_pool:marketing"),
    *row_case("duplicate_candidates", [("PROD", "image_candidates", [7, 9, 7])], "duplicate_candidate:image"),
    *row_case("click_2", [("PROD", "click", 2)], "not_binary:click"),
    *row_case("click_negative", [("PROD", "click", -1)], "not_binary:click"),
    *row_case("null_click", [("PROD", "click", None)], "null:click"),
    *row_case("propensity_zero", [("PROD", "title_propensity", 0.0)], "propensity_out_of_range:title"),
    *row_case("propensity_above_1", [("PROD", "title_propensity", 1.5)], "propensity_out_of_range:title"),
    *row_case("propensity_negative", [("PROD", "title_propensity", -0.2)], "propensity_out_of_range:title"),
    *row_case("propensity_nan", [("PROD", "image_propensity", NAN)], "propensity_out_of_range:image"),
    *row_case("propensity_inf", [("PROD", "image_propensity", INF)], "propensity_out_of_range:image"),
    *row_case("propensity_minus_inf", [("PROD", "image_propensity", -INF)], "propensity_out_of_range:image"),
    *row_case("propensity_null", [("PROD", "title_propensity", None)], "propensity_null:title"),
    *row_case("unknown_policy", [("PROD", "logging_policy", "random")], "unknown_policy:logging_policy"),
    *row_case("test_row_not_uniform", [("UNIFORM", "logging_policy", "production")], "not_uniform_in_test:logging_policy"),
    *row_case("null_policy", [("PROD", "logging_policy", None)], "null:logging_policy"),
    *row_case("user_age_beyond_int8", [("PROD", "user_age", 300)], "out_of_range:user_age"),
    *row_case("null_day", [("PROD", "day", None)], "null:day"),
    *row_case("day_not_a_date", [("PROD", "day", Text("2024-02-30"))], "malformed:day"),
    *row_case("id_not_an_integer", [("PROD", "user_id", Text("12abc"))], "malformed:user_id", formats=("parquet", "csv")),
    *row_case("pool_not_a_json_array", [("PROD", "title_candidates", Text("[1,2"))], "malformed:title_candidates", formats=("parquet", "csv")),
    *row_case("pool_of_floats", [("PROD", "query_segments", Text("[1.5]"))], "malformed:query_segments", formats=("parquet", "csv")),
    *row_case("propensity_not_a_number", [("PROD", "title_propensity", Text("high"))], "malformed:title_propensity", formats=("parquet", "csv")),
]


def _dup_within(fmt: str) -> Maker:
    def make(folder: Path, base: pa.Table) -> list[Path]:
        i = PROD(base)
        t = set_cells(base, "impression_id", {BASE_ROWS - 1: base.column("impression_id")[i].as_py()})
        return [write(t, fmt, folder / f"bad.{SUFFIX[fmt]}")]

    return make


def _dup_across(fmt: str) -> Maker:
    def make(folder: Path, base: pa.Table) -> list[Path]:
        first = write(base.slice(0, 30), "parquet", folder / "a_first.parquet")
        second = set_cells(base.slice(30), "impression_id", {2: base.column("impression_id")[3].as_py(), 5: base.column("impression_id")[0].as_py()})
        return [first, write(second, fmt, folder / f"b_second.{SUFFIX[fmt]}")]

    return make


DUPLICATE_CASES = [
    *[Case("duplicate_id_in_file", fmt, _dup_within(fmt), Rejected({BASE_ROWS - 1: "duplicate_id:impression_id"})) for fmt in SUFFIX],
    *[Case("duplicate_id_across_files", fmt, _dup_across(fmt), Rejected({2: "duplicate_id:impression_id", 5: "duplicate_id:impression_id"})) for fmt in SUFFIX],
]


# --------------------------------------------------------------------------------------- the file cases
def _with_good(make_bad: Callable[[Path, pa.Table], Path]) -> Maker:
    """A good Parquet file first (a file refused later must still leave nothing), then the bad one."""

    def make(folder: Path, base: pa.Table) -> list[Path]:
        good = write(base.slice(0, 20), "parquet", folder / "a_good.parquet")
        return [good, make_bad(folder, base.slice(20))]

    return make


def _bad(fmt: str, mutate=None, post=None) -> Callable[[Path, pa.Table], Path]:
    def make(folder: Path, t: pa.Table) -> Path:
        p = write(mutate(t) if mutate else t, fmt, folder / f"bad.{SUFFIX[fmt]}")
        if post:
            post(p)
        return p

    return make


def _retype(col: str, typ: pa.DataType) -> Callable[[pa.Table], pa.Table]:
    def mutate(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index(col)
        return t.set_column(i, pa.field(col, typ), pc.cast(t.column(col), typ))

    return mutate


def _invalid_utf8_column(col: str) -> Callable[[pa.Table], pa.Table]:
    """``col`` as text whose cell 3 holds the bytes ``ph\\xff\\xfe`` (a string column Arrow writes unchecked)."""

    def mutate(t: pa.Table) -> pa.Table:
        vals = [None if v is None else str(v).encode() for v in t.column(col).to_pylist()]
        vals[3] = b"ph\xff\xfe"
        i = t.schema.get_field_index(col)
        return t.set_column(i, pa.field(col, pa.string()), pa.array(vals, pa.binary()).view(pa.string()))

    return mutate


def _truncate(fraction: float):
    def post(p: Path) -> None:
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * fraction)])

    return post


def _line(k: int, edit: Callable[[str], str]):
    def post(p: Path) -> None:
        def f(lines: list[str]) -> None:
            lines[k] = edit(lines[k])

        _edit_text(p, f)

    return post


def _json_line(k: int, edit: Callable[[dict], None]):
    def post(p: Path) -> None:
        def f(lines: list[str]) -> None:
            obj = json.loads(lines[k])
            edit(obj)
            lines[k] = json.dumps(obj)

        _edit_text(p, f)

    return post


def _zero(p: Path) -> None:
    p.write_bytes(b"")


def _drop(col: str):
    return lambda t: t.drop_columns([col])


def _extra(t: pa.Table) -> pa.Table:
    return t.append_column("coupon", pa.array(range(t.num_rows), pa.int64()))


FILE_CASES = [
    # wrong column types: a type that cannot be converted without guessing refuses the file
    Case("wrong_type_click_float", "parquet", _with_good(_bad("parquet", _retype("click", pa.float64()))),
         Refused(SchemaError, r"bad\.parquet: column 'click' has type double, which cannot be converted safely to int8")),
    Case("wrong_type_exposed_float", "parquet", _with_good(_bad("parquet", _retype("title_exposed", pa.float32()))),
         Refused(SchemaError, r"bad\.parquet: column 'title_exposed' has type float")),
    Case("wrong_type_pool_of_strings", "parquet",
         _with_good(_bad("parquet", lambda t: t.set_column(t.schema.get_field_index("image_candidates"), "image_candidates",
                    pa.array([[str(x) for x in v] for v in t.column("image_candidates").to_pylist()], pa.list_(pa.string()))))),
         Refused(SchemaError, r"bad\.parquet: column 'image_candidates' has type list<element: string>")),
    Case("wrong_type_category_struct", "parquet",
         _with_good(_bad("parquet", lambda t: t.set_column(t.schema.get_field_index("category"), "category", pa.array([{"a": 1}] * t.num_rows)))),
         Refused(SchemaError, r"bad\.parquet: column 'category' has type struct")),
    Case("wrong_type_uint64_overflow", "parquet",
         _with_good(_bad("parquet", lambda t: set_cells(_retype("user_id", pa.uint64())(t), "user_id", {3: 2**63 + 5}))),
         Refused(SchemaError, r"bad\.parquet: column 'user_id' \(uint64\) cannot be converted to int64")),
    Case("wrong_type_json_string_click", "jsonl", _with_good(_bad("jsonl", post=_json_line(4, lambda o: o.update(click="yes")))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl .*click")),
    Case("wrong_type_json_fractional_click", "jsonl", _with_good(_bad("jsonl", post=_json_line(4, lambda o: o.update(click=0.5)))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl .*0\.5")),
    Case("wrong_type_json_int_overflow", "jsonl", _with_good(_bad("jsonl", post=_json_line(4, lambda o: o.update(user_id=2**70)))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl .*1180591620717411303424")),
    Case("wrong_type_json_string_in_pool", "jsonl", _with_good(_bad("jsonl", post=_json_line(4, lambda o: o.update(title_candidates=[1, "x"])))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl .*title_candidates")),
    # missing / extra / duplicate columns
    *[Case("missing_column", fmt, _with_good(_bad(fmt, _drop("category"))),
           Refused(SchemaError, rf"bad\.{SUFFIX[fmt]}: missing column 'category'")) for fmt in SUFFIX],
    *[Case("extra_column", fmt, _with_good(_bad(fmt, _extra)),
           Refused(SchemaError, rf"bad\.{SUFFIX[fmt]}: unknown column 'coupon'")) for fmt in SUFFIX],
    Case("duplicate_column", "csv", _with_good(_bad("csv", post=_line(0, lambda s: s.replace('"ad_id"', '"user_id"')))),
         Refused(SchemaError, r"bad\.csv: duplicate column 'user_id'")),
    Case("duplicate_column", "parquet",
         _with_good(_bad("parquet", lambda t: pa.Table.from_arrays(t.columns + [t.column("click")], names=t.column_names + ["click"]))),
         Refused(SchemaError, r"bad\.parquet: duplicate column 'click'")),
    # damaged files
    Case("truncated_parquet", "parquet", _with_good(_bad("parquet", post=_truncate(0.5))),
         Refused(InvalidInputError, r"bad\.parquet: cannot read as parquet")),
    Case("truncated_parquet_footer", "parquet", _with_good(_bad("parquet", post=lambda p: p.write_bytes(p.read_bytes()[:-3]))),
         Refused(InvalidInputError, r"bad\.parquet: cannot read as parquet .*magic bytes")),
    Case("not_parquet_at_all", "parquet", _with_good(_bad("parquet", post=lambda p: p.write_bytes(b"id,day\n1,2\n" * 10))),
         Refused(InvalidInputError, r"bad\.parquet: cannot read as parquet")),
    Case("truncated_csv", "csv", _with_good(_bad("csv", post=_truncate(0.97))),
         Refused(InvalidInputError, r"bad\.csv: cannot read as csv .*Expected 29 columns")),
    Case("truncated_jsonl", "jsonl", _with_good(_bad("jsonl", post=_truncate(0.97))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl")),
    Case("csv_broken_quote", "csv", _with_good(_bad("csv", post=_line(3, lambda s: '"' + s.replace('"', "")))),
         Refused(InvalidInputError, r"bad\.csv: data row 2, column 'impression_id': a cell spans lines \(unbalanced quote\?\)")),
    Case("csv_broken_quote_last_line", "csv", _with_good(_bad("csv", post=_line(-1, lambda s: '"' + s.replace('"', "")))),
         Refused(InvalidInputError, r"bad\.csv: cannot read as csv .*Expected 29 columns, got 1")),
    Case("csv_row_with_extra_cell", "csv", _with_good(_bad("csv", post=_line(4, lambda s: s + ",42"))),
         Refused(InvalidInputError, r"bad\.csv: cannot read as csv .*Expected 29 columns, got 30")),
    Case("csv_row_with_missing_cells", "csv", _with_good(_bad("csv", post=_line(4, lambda s: ",".join(s.split(",")[:5])))),
         Refused(InvalidInputError, r"bad\.csv: cannot read as csv .*Expected 29 columns, got 5")),
    Case("jsonl_line_not_an_object", "jsonl", _with_good(_bad("jsonl", post=_line(5, lambda s: "[1, 2]"))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl")),
    Case("jsonl_first_line_not_an_object", "jsonl", _with_good(_bad("jsonl", post=_line(0, lambda s: "[1, 2]"))),
         Refused(InvalidInputError, r"bad\.jsonl: line 1 is not a JSON object")),
    Case("jsonl_broken_json", "jsonl", _with_good(_bad("jsonl", post=_line(5, lambda s: s[:-7]))),
         Refused(InvalidInputError, r"bad\.jsonl: cannot read as jsonl")),
    # invalid UTF-8 (Arrow's JSON and Parquet readers pass it through; the builder refuses the file)
    Case("invalid_utf8", "csv", _with_good(_bad("csv", post=lambda p: _edit_bytes(p, b'"imp0', b'"i\xffmp0'))),
         Refused(InvalidInputError, r"bad\.csv: cannot read as csv .*invalid UTF8")),
    Case("invalid_utf8", "jsonl", _with_good(_bad("jsonl", post=lambda p: _edit_bytes(p, b'"imp00000025', b'"i\xffmp00000025'))),
         Refused(InvalidInputError, r"bad\.jsonl: column 'impression_id' holds text that is not valid UTF-8 \(e\.g\. b'i\\xffmp00000025'\)")),
    Case("invalid_utf8_first_line", "jsonl", _with_good(_bad("jsonl", post=lambda p: _edit_bytes(p, b'"imp0', b'"i\xffmp0'))),
         Refused(InvalidInputError, r"bad\.jsonl: line 1 is not valid UTF-8 \(invalid start byte at byte 20\)")),
    Case("invalid_utf8_string_column", "parquet", _with_good(_bad("parquet", _invalid_utf8_column("category"))),
         Refused(InvalidInputError, r"bad\.parquet: column 'category' holds text that is not valid UTF-8 \(e\.g\. b'ph\\xff\\xfe'\)")),
    Case("invalid_utf8_text_int_column", "parquet", _with_good(_bad("parquet", _invalid_utf8_column("user_id"))),
         Refused(InvalidInputError, r"bad\.parquet: column 'user_id' holds text that is not valid UTF-8")),
    # empty and tiny files
    *[Case("zero_byte_file", fmt, _with_good(_bad(fmt, post=_zero)),
           Refused(InvalidInputError, rf"bad\.{SUFFIX[fmt]}: empty file \(0 bytes\)")) for fmt in SUFFIX],
    *[Case("one_row_file_alone", fmt, lambda folder, base, fmt=fmt: [write(base.slice(UNIFORM_ROW(base), 1), fmt, folder / f"one.{SUFFIX[fmt]}")],
           Refused(BuildError, r"no train rows: no valid row is before test_start_day 2024-03-05 \(a release needs both splits")) for fmt in SUFFIX],
    # bounded resources: a file above max_file_bytes is refused before it is opened (no CLI flag for it)
    Case("file_over_max_file_bytes", "parquet", _with_good(_bad("parquet", post=lambda p: p.write_bytes(b"\0" * 100_000))),
         Refused(InvalidInputError, r"bad\.parquet: [\d,]+ bytes is over the 30,000-byte limit for one input file"), cli=False,
         config={"max_file_bytes": 30_000}),
    Case("jsonl_first_line_over_block_bytes", "jsonl", _with_good(_bad("jsonl")),
         Refused(InvalidInputError, r"bad\.jsonl: line 1 is longer than 1,000 bytes"), cli=False, config={"block_bytes": 1_000}),
]


def _one_row(fmt: str) -> Maker:
    def make(folder: Path, base: pa.Table) -> list[Path]:
        return [write(base.slice(0, BASE_ROWS - 1), "parquet", folder / "a.parquet"), write(base.slice(BASE_ROWS - 1), fmt, folder / f"one.{SUFFIX[fmt]}")]

    return make


def _no_rows(fmt: str) -> Maker:
    def make(folder: Path, base: pa.Table) -> list[Path]:
        p = write(base.slice(0, 0), fmt, folder / f"empty.{SUFFIX[fmt]}")
        if fmt == "jsonl":
            p.write_text("\n\n")  # blank lines only: no object at all
        return [write(base, "parquet", folder / "a.parquet"), p]

    return make


def _equivalent_types(t: pa.Table) -> pa.Table:
    t = t.set_column(t.schema.get_field_index("logging_policy"), "logging_policy", t.column("logging_policy").dictionary_encode())
    t = _retype("user_id", pa.int32())(t)
    t = _retype("title_propensity", pa.float64())(t)
    t = _retype("day", pa.timestamp("ms"))(t)
    return _retype("image_candidates", pa.large_list(pa.int64()))(t)


def _long_pools(t: pa.Table) -> pa.Table:
    """Pools longer than PAD_TO with the shown element late, on a train and a test row."""
    i, j = PROD(t), UNIFORM_ROW(t)
    t = set_cells(t, "title_candidates", {i: list(range(1000, 1020)), j: list(range(2000, 2031))})
    t = set_cells(t, "title_exposed", {i: 18, j: 30})
    return set_cells(t, "title_propensity", {i: 0.25, j: 1 / 31})


ACCEPTED_CASES = [
    # ACCEPTED: a 1-row file is a valid file (one impression); its row counts like any other
    *[Case("one_row_file", fmt, _one_row(fmt), Accepted()) for fmt in SUFFIX],
    # ACCEPTED: a file with a valid header/schema but no rows adds nothing (not an error: exports can have empty parts)
    *[Case("no_rows_file", fmt, _no_rows(fmt), Accepted()) for fmt in SUFFIX],
    # ACCEPTED: pools longer than PAD_TO=15 are data, not an error; truncation is the loaders' job and keeps
    # the shown element (checked through the torch adapter in test_long_pools_round_trip_through_the_torch_adapter)
    *[Case("pool_longer_than_15_shown_late", fmt, one_file(_long_pools)(fmt), Accepted()) for fmt in SUFFIX],
    # ACCEPTED: types that convert without guessing (dictionary text, narrower ints, float64, timestamps, large lists)
    Case("equivalent_types", "parquet", one_file(_equivalent_types)("parquet"), Accepted()),
    # ACCEPTED: a column of Arrow type null (every value missing) in a nullable column
    Case("all_null_nullable_column", "parquet",
         one_file(lambda t: t.set_column(t.schema.get_field_index("category"), "category", pa.nulls(t.num_rows)))("parquet"), Accepted()),
    # ACCEPTED: CSV with a UTF-8 byte-order mark and CRLF line ends (what spreadsheet exports write)
    Case("csv_bom_and_crlf", "csv", one_file(post=lambda p: p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes().replace(b"\n", b"\r\n")))("csv"), Accepted()),
    # ACCEPTED: a propensity of 1 + 1e-10 in a float64 column is 1.0 once stored as float32 (the schema's
    # type); the rule is applied after that rounding (validate.py), so the row is kept with propensity 1.0
    Case("propensity_rounds_to_1_in_float32", "parquet",
         one_file(lambda t: set_cells(_retype("title_propensity", pa.float64())(t), "title_propensity", {PROD(t): 1.0 + 1e-10}))("parquet"), Accepted()),
]

CASES: list[Case] = ROW_CASES + DUPLICATE_CASES + FILE_CASES + ACCEPTED_CASES


def test_the_corpus_is_big_enough():
    kinds = {c.kind for c in CASES}
    assert len(kinds) >= 20 and len(CASES) >= 60, (len(kinds), len(CASES))
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------------------- the checks
def _build(sources: list[Path], out: Path, **kw) -> Any:
    kw = {"version": "1.0.0", "test_start_day": TSD, "max_reject_rate": MAX_REJECT_RATE, "sample_rows": 10, **kw}
    return build_release(BuildConfig(sources=sources, out=out, **kw), progress=False)


def _cli(sources: list[Path], out: Path, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["build", *map(str, sources), "--out", str(out), "--version", "1.0.0", "--test-start-day", TSD.isoformat(),
               "--max-reject-rate", str(MAX_REJECT_RATE), "--quiet", "--json"])
    got = capsys.readouterr()
    return rc, got.out, got.err


def _rows_in(path: Path) -> int:
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix == ".csv":
        return max(len(list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))) - 1, 0)
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _input_ids(path: Path) -> list[Any]:
    if path.suffix == ".parquet":
        return pq.read_table(path, columns=["impression_id"]).column(0).to_pylist()
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        k = rows[0].index("impression_id")
        return [r[k] or None for r in rows[1:]]
    return [json.loads(line).get("impression_id") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _release_rows(out: Path) -> pa.Table:
    rel = Release.open(out)
    return pa.concat_tables([pq.read_table(f) for s in ("train", "test") for f in rel.data_files("impressions", s)])


def _rejects(out: Path) -> pa.Table | None:
    files = sorted((out / "rejects").glob("rejects-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive") if files else None


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (JSON NaN / Infinity tokens)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


def _identical(a: pa.Table, b: pa.Table) -> bool:
    """Same schema and the same values bit for bit (floats compared as their bits, so NaN equals NaN)."""
    if not a.schema.equals(b.schema):
        return False
    for x, y in zip(a.columns, b.columns):
        x, y = x.combine_chunks(), y.combine_chunks()
        if pa.types.is_floating(x.type):
            bits = {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[x.type.bit_width]
            x, y = pc.if_else(x.is_null(), None, x.view(bits)), pc.if_else(y.is_null(), None, y.view(bits))
        if not x.equals(y):
            return False
    return True


def _assert_recoverable(bad: Path, rej: pa.Table) -> None:
    """Every reject of ``bad`` is the input row exactly, as that format carries it."""
    mine = rej.filter(pc.equal(rej.column("source_file"), bad.name))
    rows = mine.column("source_row").to_pylist()
    original = mine.drop_columns(EXTRA)
    if bad.suffix == ".parquet":
        file_rows = pq.read_table(bad).take(rows)
        assert _identical(original, file_rows), "a Parquet reject differs from its input row (columns, types or bits)"
        return
    if bad.suffix == ".csv":
        parsed = list(csv.reader(io.StringIO(bad.read_text(encoding="utf-8-sig"))))
        header, data = parsed[0], parsed[1:]
        for k, got in zip(rows, original.to_pylist()):
            want = {h: (cell if cell != "" else None) for h, cell in zip(header, data[k])}
            assert got == want, f"CSV data row {k}: reject {got} != file cells {want}"
        return
    lines = [line for line in bad.read_text(encoding="utf-8").splitlines() if line.strip()]
    for k, got in zip(rows, original.to_pylist()):
        want = json.loads(lines[k])
        assert set(got) == set(want)
        assert all(_same(got[c], want[c]) for c in want), f"JSONL line {k}: reject {got} != line {want}"


def _expected_reasons(case: Case, base: pa.Table, sources: list[Path]) -> dict[tuple[str, int], str]:
    bad = sources[-1].name
    outcome: Rejected = case.outcome
    if -1 in outcome.reasons:  # a row_case: its edited row
        return {(bad, ROW_OF[case.config["row_key"]](base)): outcome.reasons[-1]}
    return {(bad, k): v for k, v in outcome.reasons.items()}


def _nothing_left(out: Path) -> None:
    assert not out.exists(), f"{out} exists after a refused build"
    assert not [p for p in out.parent.glob(f".{out.name}.*") if p.name != f".{out.name}.lock"], "a temporary sibling was left"  # the writer lock stays (genco_data.locks)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(case: Case, base: pa.Table, tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    table = base
    sources = case.make(src, table)
    out, out_cli = tmp_path / "rel", tmp_path / "rel-cli"
    config = {k: v for k, v in case.config.items() if k != "row_key"}

    if isinstance(case.outcome, Refused):
        with pytest.raises(case.outcome.error, match=case.outcome.pattern) as info:
            _build(sources, out, **config)
        assert "\n" not in str(info.value)
        _nothing_left(out)
        if case.cli:
            rc, stdout, err = _cli(sources, out_cli, capsys)
            assert rc == 2 and json.loads(stdout) == {"error": err.split(": error: ", 1)[1].strip(), "kind": case.outcome.error.__name__,
                                                       "exit_code": 2}  # --json: the failure envelope (#17)
            assert err.count("\n") == 1 and err.startswith("genco build: error: "), err
            assert "Traceback" not in err
            assert re.search(case.outcome.pattern, err), err
            _nothing_left(out_cli)
        return

    result = _build(sources, out, **config)
    n_in = sum(_rows_in(p) for p in sources)
    expected = _expected_reasons(case, table, sources) if isinstance(case.outcome, Rejected) else {}
    # rows in = rows written + rows rejected, from the result, the manifest and the files themselves
    assert result.rows_in == n_in
    assert result.rows_rejected == len(expected)
    assert sum(result.splits["impressions"].values()) + result.rows_rejected == result.rows_in
    kept = _release_rows(out)
    rej = _rejects(out)
    assert kept.num_rows + (rej.num_rows if rej is not None else 0) == n_in
    assert kept.schema.equals(impressions_schema())
    # nothing lost: every input id is in the release or in rejects/, as many times as it was given
    ids_in = Counter(i for p in sources for i in _input_ids(p))
    ids_out = Counter(kept.column("impression_id").to_pylist())
    if rej is not None:
        ids_out.update(rej.column("impression_id").to_pylist())
    assert ids_out == ids_in
    if expected:
        got = dict(zip(zip(rej.column("source_file").to_pylist(), rej.column("source_row").to_pylist()), rej.column("reason").to_pylist()))
        assert got == expected
        assert result.reject_reasons == dict(Counter(expected.values()))
        _assert_recoverable(sources[-1], rej)
    else:
        assert rej is None
    verify_release(out)
    if case.cli:
        rc, stdout, err = _cli(sources, out_cli, capsys)
        assert rc == 0 and err == "", err
        d = json.loads(stdout)
        assert d["rows_in"] == n_in and d["rows_rejected"] == len(expected)
        assert d["reject_reasons"] == dict(Counter(expected.values()))


# ------------------------------------------------------------------------------- long pools, end to end
def test_long_pools_round_trip_through_the_torch_adapter(base: pa.Table, tmp_path: Path) -> None:
    """Pools of 20 and 31 candidates, shown at index 18 and 30 (train and test): kept by the builder, and
    the torch adapter keeps the shown element in the last slot with its original index."""
    pytest.importorskip("torch")
    td = pytest.importorskip("genco_data.load")
    t = _long_pools(base)
    src = write(t, "parquet", tmp_path / "long.parquet")
    out = tmp_path / "rel"
    result = _build([src], out)
    assert result.rows_rejected == 0
    stored = _release_rows(out)
    i, j = PROD(base), UNIFORM_ROW(base)
    for row, n, e, split in ((i, 20, 18, "train"), (j, 31, 30, "test")):
        rid = t.column("impression_id")[row].as_py()
        mine = stored.filter(pc.equal(stored.column("impression_id"), rid))
        assert mine.column("title_candidates")[0].as_py() == t.column("title_candidates")[row].as_py()  # untouched
        assert mine.column("title_exposed")[0].as_py() == e
        train_vocabs = td.Vocabularies.build(out)
        ds = td.MapDataset(out, train_vocabs, split=split)
        k = ds.table.column("impression_id").to_pylist().index(rid)
        b = ds.__getitems__([k])
        c = COMPONENTS.index("title")
        assert int(b.n_candidates[0, c]) == n
        assert int(b.exposed[0, c]) == PAD_TO - 1
        assert int(b.original_index[0, c, PAD_TO - 1]) == e
        assert b.original_index[0, c, : PAD_TO - 1].tolist() == list(range(PAD_TO - 1))
        assert bool(b.mask[0, c].all())
        shown_id = t.column("title_candidates")[row].as_py()[e]
        assert int(b.candidates[0, c, PAD_TO - 1]) == int(ds.vocabs.lookup("title", np.array([shown_id]))[0])
        assert int(b.original_choice(b.exposed)[0, c]) == e
