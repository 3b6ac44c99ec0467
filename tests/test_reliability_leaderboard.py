"""Issue #16 (2, 3) and #15's private truth on the leaderboard: writers take a lock, the board is data (never
markup), entry ids are collision-free, render never wipes a board by mistake, ``genco leaderboard check``
re-verifies committed entries, and a synthetic release's entries need the maintainer's world.

Markdown is checked with a real CommonMark renderer (markdown-it-py, GFM tables on, raw HTML allowed as
GitHub and the Hub allow some): what a submission says must come out as text in exactly its own cell.
"""
from __future__ import annotations

import html
import html.parser
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genco_data.cli import main
from genco_data.errors import LockedError, SubmissionError
from genco_data.evaluate.evaluator import Evaluator
from genco_data.leaderboard.board import COMBINATION_NOTE, md_link, md_text, render_board, render_leaderboard
from genco_data.leaderboard.check import check_entries
from genco_data.leaderboard.entries import entry_filename, load_entries
from genco_data.leaderboard.rules import summary_from_result
from genco_data.leaderboard.verify import verify_submission, world_for
from genco_data.release import Release
from lb_factories import make_submission, simulated_release

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py is in the dev extra")

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "cards" / "leaderboard"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return simulated_release(tmp_path_factory.mktemp("lbrel"))


@pytest.fixture(scope="module")
def verified(release, tmp_path_factory):
    """One verified 5-seed entry (random policy) in an entries folder, with its submission folder inside it."""
    entries = tmp_path_factory.mktemp("lbent") / "entries"
    sub = make_submission(release, entries / "submissions" / "random")
    entry = verify_submission(sub, release, entries_dir=entries)
    return entries, sub, entry


def _cell_texts(markdown: str) -> list[list[str]]:
    """The text of every body cell of every table, as a browser shows it (markdown-it-py -> HTML -> text)."""
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)

    class Cells(html.parser.HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.rows, self.cell, self.in_body, self.tags = [], None, False, []

        def handle_starttag(self, tag, attrs):
            if self.cell is not None or tag in ("table", "thead", "tr", "th", "tbody", "td"):
                self.tags.append((tag, dict(attrs)))  # the table's own tags and whatever a cell holds
            if tag == "tbody":
                self.in_body = True
            elif tag == "tr" and self.in_body:
                self.rows.append([])
            elif tag == "td" and self.in_body:
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "td" and self.cell is not None:
                self.rows[-1].append(self.cell)
                self.cell = None
            elif tag == "tbody":
                self.in_body = False

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(rendered)
    _cell_texts.tags = parser.tags
    return parser.rows


def _entry_with(entry, **submission_fields):
    """``entry`` with submission fields replaced without validation (what a hand-made entry file could hold)."""
    return entry.model_copy(update={"submission": entry.submission.model_copy(update=submission_fields)})


# ------------------------------------------------------------------------------ the board is data
HOSTILE_TEXT = [
    "x | y | z",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ `code` ~~gone~~ $x^2$",
    "[click](javascript:alert(1))",
    "![img](https://evil.example/x.png)",
    "&lt;already&gt; &#60;escaped&#62; &amp;",
    "back\\slash \\| pipe",
    "\u202eevil\u202c bidi",
    "line\nbreak\r\n## Heading",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_every_field_renders_as_its_own_text_in_its_own_cell(verified, text):
    _, _, entry = verified
    hostile = _entry_with(entry, method=text, hardware=text)
    rows = _cell_texts(render_board([hostile, entry]))
    assert len(rows) == 2 and all(len(r) == 15 for r in rows)
    row = next(r for r in rows if r[1] != entry.method)
    shown = " ".join(text.replace("\r", " ").replace("\n", " ").replace("\u202e", " ").replace("\u202c", " ").split())
    assert " ".join(row[1].split()) == shown and " ".join(row[12].split()) == shown
    inside = {tag for tag, _ in _cell_texts.tags} - {"table", "thead", "tr", "th", "tbody", "td"}
    assert inside == {"a"}, inside  # the code links, and no other element
    assert [attrs.get("href") for tag, attrs in _cell_texts.tags if tag == "a"] == ["https://example.org/code"] * 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_md_text_is_inert_for_any_text(text):
    rows = _cell_texts(f"| a | b |\n|---|---|\n| {md_text(text)} | end |\n")
    assert len(rows) == 1 and len(rows[0]) == 2 and rows[0][1] == "end"
    want = " ".join(md_text_plain(text).split())
    assert " ".join(rows[0][0].split()) == want
    assert all(tag in ("table", "thead", "tr", "th", "tbody", "td") for tag, _ in _cell_texts.tags), _cell_texts.tags


def md_text_plain(text: str) -> str:
    """What a reader should see: the text on one line (controls, separators and bidi controls as spaces; NUL too)."""
    import re

    return re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", " ", text)


@pytest.mark.parametrize("url,href", [
    ("https://example.org/a)b(c", "https://example.org/a%29b%28c"),
    ("https://example.org/x?q=1&r='2'", "https://example.org/x?q=1&r=%272%27"),
    ("../reference_model", "../reference_model"),
])
def test_links_are_percent_encoded_and_stay_one_link(url, href):
    rows = _cell_texts(f"| a |\n|---|\n| {md_link('code', url)} |\n")
    assert rows == [["code"]]
    assert [a.get("href") for t, a in _cell_texts.tags if t == "a"] == [href]


@pytest.mark.parametrize("field,value,message", [
    ("method", "x\n## Heading", r"method: Value error, must be one line"),
    ("hardware", "gpu\u202e", r"hardware: Value error, must be one line"),
    ("code_url", "javascript:alert(1)", r"code_url: Value error, must be an http\(s\) URL"),
    ("code_url", "JavaScript:alert(1)", r"code_url: Value error"),
    ("code_url", "data:text/html,<script>x</script>", r"code_url: Value error"),
    ("code_url", "//evil.example/x", r"code_url: Value error"),
    ("code_url", "https://example.org/a b", r"code_url: Value error"),
    ("paper_url", "vbscript:x", r"paper_url: Value error"),
    ("used_test_labels", "no", r"used_test_labels: Input should be a valid boolean"),
    ("n_parameters", True, r"n_parameters: Input should be a valid integer"),
    ("n_parameters", "12", r"n_parameters: Input should be a valid integer"),
])
def test_submissions_are_parsed_strictly(release, tmp_path, capsys, field, value, message):
    sub = make_submission(release, tmp_path / "sub", seeds=(0,), **{field: value})
    with pytest.raises(SubmissionError, match=message):
        verify_submission(sub, release, min_seeds=1)
    assert main(["leaderboard", "verify", str(sub), "--data", str(release), "--entries", str(tmp_path / "entries")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and not (tmp_path / "entries").exists()


def test_a_hand_made_entry_with_markup_is_refused_by_render(verified, tmp_path, capsys):
    entries, _, entry = verified
    folder = tmp_path / "entries"
    folder.mkdir()
    raw = entry.model_dump(mode="json")
    raw["submission"]["code_url"] = "javascript:alert(1)"
    (folder / entry_filename(entry.method, "1.0.0")).write_text(json.dumps(raw))
    board = tmp_path / "LEADERBOARD.md"
    assert main(["leaderboard", "render", "--entries", str(folder), "--out", str(board)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "code_url" in err and not board.exists()


def test_a_key_given_twice_in_a_submission_is_refused(release, tmp_path):
    sub = make_submission(release, tmp_path / "sub", seeds=(0,))
    text = sub.read_text()
    sub.write_text(text.replace('"used_test_labels": false', '"used_test_labels": true, "used_test_labels": false'))
    with pytest.raises(SubmissionError, match="key 'used_test_labels' is given twice"):
        verify_submission(sub, release, min_seeds=1)


@pytest.mark.parametrize("depth", [100, 50_000])
def test_a_deeply_nested_submission_is_one_line(release, tmp_path, capsys, depth):
    sub = tmp_path / "submission.json"
    sub.write_text('{"notes": ' + "[" * depth + "]" * depth + "}")
    assert main(["leaderboard", "verify", str(sub), "--data", str(release), "--entries", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nested deeper than 64 levels" in err and not (tmp_path / "e").exists()


@pytest.mark.parametrize("value", [65536, 2**40, -65536])
def test_a_choice_beyond_int16_is_refused_not_narrowed(release, tmp_path, value):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genco_data.errors import PredictionsError
    from genco_data.fsutil import sha256_file

    sub = make_submission(release, tmp_path / "s", seeds=(0,))
    path = sub.parent / "seed0.parquet"
    t = pq.read_table(path)
    col = t.column("title_choice").combine_chunks()
    wide = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    wide[np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))[0]] = value  # wraps to a valid int16 if narrowed
    t = t.set_column(t.schema.get_field_index("title_choice"), "title_choice", pa.array(wide, pa.int64(), mask=col.is_null().to_numpy(zero_copy_only=False)))
    pq.write_table(t, path)
    doc = json.loads(sub.read_text())
    doc["predictions"][0]["sha256"] = sha256_file(path)
    sub.write_text(json.dumps(doc))
    with pytest.raises(PredictionsError, match=rf"column 'title_choice': out of range .*{value}"):
        verify_submission(sub, release, min_seeds=1)


# ----------------------------------------------------------------------------- collision-free ids
@pytest.mark.parametrize("other", ["test random", "TEST-RANDOM", "Test \u2713 Random", "Test_Random!"])
def test_a_second_method_mapping_to_a_taken_id_is_refused(release, verified, tmp_path, capsys, other):
    entries, sub, entry = verified
    folder = tmp_path / "entries"
    shutil.copytree(entries, folder)
    target = folder / entry_filename(entry.method, "1.0.0")
    before = target.read_bytes()
    if entry_filename(other, "1.0.0") != target.name:
        pytest.fail(f"{other!r} should map to {target.name}")
    clash = make_submission(release, tmp_path / "clash", method=other)
    with pytest.raises(SubmissionError, match=rf"entry id {target.stem} is taken by method 'Test random'"):
        verify_submission(clash, release, entries_dir=folder)
    assert target.read_bytes() == before
    assert main(["leaderboard", "verify", str(clash), "--data", str(release), "--entries", str(folder)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and target.read_bytes() == before
    again = verify_submission(sub, release, entries_dir=folder)  # the same method: its entry is replaced
    assert again.method == entry.method and load_entries(folder)[0].method == entry.method


def test_a_renamed_entry_file_is_refused(verified, tmp_path):
    entries, _, entry = verified
    folder = tmp_path / "entries"
    folder.mkdir()
    shutil.copy(entries / entry_filename(entry.method, "1.0.0"), folder / "genco--v1.0.0.json")
    with pytest.raises(SubmissionError, match=r"holds method 'Test random' of version 1\.0\.0, whose entry file is test-random--v1\.0\.0\.json"):
        load_entries(folder)


# --------------------------------------------------------------------------- render never wipes
def test_render_refuses_a_missing_entries_folder_and_a_folder_as_out(verified, tmp_path, capsys):
    entries, _, _ = verified
    board = tmp_path / "LEADERBOARD.md"
    assert main(["leaderboard", "render", "--entries", str(entries), "--out", str(board)]) == 0
    before = board.read_bytes()
    for argv, message in [
        (["--entries", str(tmp_path / "entires"), "--out", str(board)], "no such entries folder (is --entries right?)"),
        (["--entries", str(board), "--out", str(board)], "--entries must be a folder of verified entries, not a file"),
        (["--entries", str(entries), "--out", str(tmp_path)], "--out is a folder; give the board's file name"),
    ]:
        assert main(["leaderboard", "render", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert board.read_bytes() == before


def test_an_empty_board_never_replaces_one_with_entries_unless_told(verified, tmp_path, capsys):
    entries, _, _ = verified
    board = tmp_path / "LEADERBOARD.md"
    render_leaderboard(entries, board)
    before = board.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SubmissionError, match="holds no entries and .* is a board with entries: not replaced"):
        render_leaderboard(empty, board)
    assert board.read_bytes() == before
    assert main(["leaderboard", "render", "--entries", str(empty), "--out", str(board), "--allow-empty"]) == 0
    assert "No verified entries yet" in board.read_text()
    render_leaderboard(empty, board)  # empty over empty: nothing is lost


def test_verify_entries_pointing_at_a_file_is_one_line(release, verified, tmp_path, capsys):
    _, sub, _ = verified
    (tmp_path / "entries.json").write_text("{}")
    assert main(["leaderboard", "verify", str(sub), "--data", str(release), "--entries", str(tmp_path / "entries.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--entries must be a folder" in err


# --------------------------------------------------------------------------------------- locks
def _hold(target: Path, what: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from genco_data.locks import writer_lock\n"
         f"with writer_lock({str(target)!r}, {what!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_concurrent_writer_fails_at_once(release, verified, tmp_path, capsys):
    entries, sub, _ = verified
    folder = tmp_path / "entries"
    shutil.copytree(entries, folder)
    board = tmp_path / "LEADERBOARD.md"
    holder = _hold(folder, "genco leaderboard verify")
    try:
        t0 = time.perf_counter()
        with pytest.raises(LockedError, match=r"another writer holds it \(genco leaderboard verify, pid \d+"):
            verify_submission(sub, release, entries_dir=folder)
        assert time.perf_counter() - t0 < 3
    finally:
        holder.kill()
        holder.wait()
    holder = _hold(board, "genco leaderboard render")
    try:
        assert main(["leaderboard", "render", "--entries", str(folder), "--out", str(board)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another writer holds it (genco leaderboard render" in err
        assert not board.exists()
    finally:
        holder.kill()
        holder.wait()
    render_leaderboard(folder, board)  # the lock died with its holder: nothing stale


# ---------------------------------------------------------------------------- one seed, one line
def test_one_seed_shows_na_and_the_combination_metric_is_explained(release, tmp_path):
    entry = verify_submission(make_submission(release, tmp_path / "one", seeds=(7,)), release, min_seeds=1)
    text = render_board([entry])
    row = next(l for l in text.splitlines() if l.startswith("| 1 |"))
    assert "± n/a (1 seed)" in row and "± 0.00" not in row
    assert COMBINATION_NOTE in text and text.index(COMBINATION_NOTE) > text.index(row)


# -------------------------------------------------------------------------------- the private truth
def test_a_synthetic_release_without_its_world_is_refused_and_the_maintainers_world_is_checked(release, verified, tmp_path, capsys):
    _, sub, entry = verified
    public = tmp_path / "public"
    shutil.copytree(release, public)
    kept = tmp_path / "kept-world"
    shutil.move(str(public / "world"), str(kept))
    with pytest.raises(SubmissionError, match=r"a synthetic release whose ground truth .* is not here; .* --world PATH"):
        verify_submission(sub, public)
    assert main(["leaderboard", "verify", str(sub), "--data", str(public), "--entries", str(tmp_path / "e")]) == 2
    assert "--world PATH" in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert main(["leaderboard", "verify", str(sub), "--data", str(public), "--world", str(kept), "--entries", str(tmp_path / "e"), "--quiet"]) == 0
    assert json.loads((tmp_path / "e" / entry_filename(entry.method, "1.0.0")).read_text())["synthetic"] is True
    with_world = verify_submission(sub, public, world=kept)
    assert with_world.synthetic and with_world.metrics["headroom_captured"] == entry.metrics["headroom_captured"]
    other = tmp_path / "other-world"
    shutil.copytree(kept, other)
    data = json.loads((other / "world.json").read_text())
    data["seed"] = data.get("seed", 0) + 1
    (other / "world.json").write_text(json.dumps(data))
    with pytest.raises(SubmissionError, match=r"world\.json differs from the world/world\.json pinned by"):
        verify_submission(sub, public, world=other)
    raw = Release(public, Release.open(public).manifest.model_copy(update={"files": [f for f in Release.open(public).manifest.files
                                                                                    if not f.path.startswith("world/")]}))
    with pytest.raises(SubmissionError, match="--world given, but the release pins no world"):
        world_for(raw, kept)
    assert world_for(raw, None) is None


# ---------------------------------------------------------------------------------------- check
def test_check_passes_on_the_committed_entries_quickly(capsys):
    t0 = time.perf_counter()
    assert main(["leaderboard", "check", "--entries", str(COMMITTED), "--board", str(ROOT / "cards" / "LEADERBOARD.md")]) == 0
    out = capsys.readouterr().out
    assert out.count("OK ") == len(list(COMMITTED.glob("*.json"))) >= 10 and "board up to date" in out
    assert time.perf_counter() - t0 < 20


def _edit(folder: Path, name: str, edit) -> None:
    path = folder / name
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw, indent=2, sort_keys=True))


#: The committed reference GenCO entry (whatever dataset version the board is of).
GENCO = next(COMMITTED.glob("genco-genco-data-reference--v*.json")).name
HAND_EDITS = {
    "inflated mean": (lambda r: r["metrics"]["headroom_captured"].update(mean=0.9), r"headroom_captured: mean 0\.9 but its per-seed values average"),
    "shrunk std": (lambda r: r["metrics"]["title_lift"].update(std=0.0), r"title_lift: std 0\.0 but its per-seed values have std"),
    "per-seed value": (lambda r: r["metrics"]["true_ctr"]["per_seed"].__setitem__(0, 0.5), r"true_ctr: per_seed .* differ from the per-seed results"),
    "dropped seed": (lambda r: r.update(seeds=r["seeds"][:4]), r"seeds \[0, 1, 2, 3\] differ from its submission's predictions"),
    "swapped results": (lambda r: r["per_seed"].reverse(), r"per-seed results are for seeds \[4, 3, 2, 1, 0\]"),
    "other release": (lambda r: r["per_seed"][2].update(manifest_sha256="0" * 64), r"seed 2: per-seed result is for release"),
    "truth removed": (lambda r: r["per_seed"][1].update(truth=None), r"seed 1: synthetic=True but the per-seed result lacks a truth"),
    "metric added": (lambda r: r["metrics"].update(accuracy={"mean": 1.0, "std": 0.0, "per_seed": [1.0] * 5}), r"metric accuracy"),
    "predictions swapped": (lambda r: r["per_seed"][0].update(predictions="/x/seed3.parquet"), r"seed 0: per-seed result is of predictions"),
    "url": (lambda r: r["submission"].update(code_url="javascript:alert(1)"), r"code_url"),
}


@pytest.mark.parametrize("what", list(HAND_EDITS))
def test_check_catches_a_hand_edited_entry(tmp_path, capsys, what):
    folder = tmp_path / "entries"
    shutil.copytree(COMMITTED, folder)
    edit, pattern = HAND_EDITS[what]
    _edit(folder, GENCO, edit)
    with pytest.raises(SubmissionError, match=pattern):
        check_entries(folder)
    assert main(["leaderboard", "check", "--entries", str(folder), "--board", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and GENCO in err and "Traceback" not in err


def test_check_catches_a_stale_board(tmp_path, capsys):
    folder = tmp_path / "entries"
    shutil.copytree(COMMITTED, folder)
    board = tmp_path / "LEADERBOARD.md"
    board.write_text((ROOT / "cards" / "LEADERBOARD.md").read_text().replace("GenCO (genco-data reference)", "GenCO (best!)"))
    assert main(["leaderboard", "check", "--entries", str(folder), "--board", str(board)]) == 2
    assert "differs from the entries (run genco leaderboard render" in capsys.readouterr().err


def test_check_recomputes_where_the_predictions_are_present(release, verified, tmp_path, capsys):
    entries, sub, entry = verified
    folder = tmp_path / "entries"
    shutil.copytree(entries, folder)
    report = check_entries(folder, release_path=release)
    assert report["entries"][0]["checks"][-1] == "re-evaluated from its predictions: every number matches"
    assert check_entries(folder)["entries"][0]["checks"][-1].startswith("predictions present and their sha256 match (not re-evaluated")
    # a consistent forgery: the per-seed result, the per-seed value, the mean and the std all edited together
    name = entry_filename(entry.method, "1.0.0")

    def forge(r):
        r["per_seed"][0]["components"]["title"]["lift"]["value"] += 0.2
        m = r["metrics"]["title_lift"]
        m["per_seed"][0] += 0.2
        vals = m["per_seed"]
        mean = sum(vals) / len(vals)
        m["mean"] = mean
        m["std"] = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
        lifts = [r["per_seed"][0]["components"][c]["lift"]["value"] for c in r["per_seed"][0]["components"]]
        mc = r["metrics"]["mean_component_lift"]
        mc["per_seed"][0] = sum(lifts) / len(lifts)
        mv = mc["per_seed"]
        mc["mean"] = sum(mv) / len(mv)
        mc["std"] = (sum((v - mc["mean"]) ** 2 for v in mv) / (len(mv) - 1)) ** 0.5

    _edit(folder, name, forge)
    check_entries(folder)  # the numbers agree with each other: only the predictions can tell
    with pytest.raises(SubmissionError, match=r"seed 0: recomputed (mean_component_lift|title_lift) = .*, the entry says"):
        check_entries(folder, release_path=release)
    assert main(["leaderboard", "check", "--entries", str(folder), "--board", "", "--data", str(release)]) == 2
    assert "seed 0: recomputed" in capsys.readouterr().err
    shutil.copytree(entries, tmp_path / "again")
    (tmp_path / "again" / "submissions" / "random" / "seed3.parquet").write_bytes(
        (tmp_path / "again" / "submissions" / "random" / "seed1.parquet").read_bytes())
    with pytest.raises(SubmissionError, match=r"seed 3: .*seed3\.parquet sha256 is"):
        check_entries(tmp_path / "again")


def test_summary_from_a_stored_result_equals_the_evaluators(release, verified):
    _, sub, _ = verified
    ev = Evaluator(release)
    result = ev.evaluate(sub.parent / "seed0.parquet")
    assert summary_from_result(json.loads(json.dumps(result.to_dict()))) == result.summary_metrics()
    no_truth = Evaluator(release, world=None).evaluate(sub.parent / "seed0.parquet")
    assert summary_from_result(no_truth.to_dict()) == no_truth.summary_metrics()
    assert "headroom_captured" not in no_truth.summary_metrics()


def test_entries_pin_the_truth_they_were_ranked_by(verified):
    _, _, entry = verified
    assert entry.synthetic and all(d["truth"] is not None for d in entry.per_seed)
    assert html.escape("x") == "x"  # (html is used by the cell parser)
