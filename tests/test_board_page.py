"""genco_data.board_page: the leaderboard as a static Hugging Face Space — escaping, no network assets, the
Space card, and (in headless Chromium) a page that lists every reference method and sorts on a click."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from chromium_cdp import Chromium, find_chromium
from genco_data import board_page
from genco_data.cli import main
from genco_data.errors import InvalidInputError
from genco_data.leaderboard import load_entries
from reference_model.reproduce_config import LABELS, METHOD_ORDER

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = ROOT / "cards" / "leaderboard"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">|\n## heading'
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")


def _hostile_entries():
    """The reference entries plus one whose every free-text field is hostile (built without validation)."""
    entries = load_entries(ENTRIES)
    e = entries[0]
    sub = e.submission.model_copy(update={"method": HOSTILE, "hardware": '"><svg onload=alert(1)>', "code_url": "javascript:alert(1)"})
    return entries + [e.model_copy(update={"submission": sub})]


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "board"
    board_page.write_space(ENTRIES, out)
    return out


def test_the_space_has_a_static_sdk_card_and_inlines_everything(space):
    files = sorted(p.name for p in space.iterdir())
    assert files == sorted([board_page.SPACE_README, board_page.INDEX, board_page.ENTRIES_JSON, board_page.RULES])
    meta = yaml.safe_load((space / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert meta["sdk"] == "static" and meta["app_file"] == "index.html" and meta["title"]
    page = (space / "index.html").read_text(encoding="utf-8")
    # nothing the browser would fetch: no src/href to another origin, no @import/url(), no <link>
    assert not re.search(r"""\b(src|srcset)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert re.findall(r'href="([^"]*)"', page) == []  # the reference entries' code_url is relative: shown as text
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src &#x27;none&#x27;" in csp
    assert page.count("<script>") == 1
    script = page.split("<script>")[1].split("</script>")[0]
    import base64
    import hashlib

    assert base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() in csp  # the one allowed script
    rows = json.loads((space / "entries.json").read_text(encoding="utf-8"))
    assert {r["method"] for r in rows} == {e.submission.method for e in load_entries(ENTRIES)}


def test_every_field_is_escaped_and_only_http_links_are_links():
    page = board_page.render_page(_hostile_entries())
    assert "<script>window" not in page and "<img src=x" not in page and "<svg onload" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page and "javascript:alert" in page
    assert 'href="javascript' not in page
    ok = load_entries(ENTRIES)[0]
    linked = ok.model_copy(update={"submission": ok.submission.model_copy(update={"code_url": "https://example.org/x?a=1&b=<2>"})})
    page = board_page.render_page([linked])
    assert '<a href="https://example.org/x?a=1&amp;b=&lt;2&gt;"' not in page  # '<' is not allowed in a link at all
    linked = ok.model_copy(update={"submission": ok.submission.model_copy(update={"code_url": "https://example.org/x?a=1&b=2"})})
    assert '<a href="https://example.org/x?a=1&amp;b=2" rel="noopener noreferrer nofollow">code</a>' in board_page.render_page([linked])


def test_one_seed_shows_na_and_the_page_is_deterministic():
    e = load_entries(ENTRIES)[0]
    one = e.model_copy(update={"seeds": [0]})
    page = board_page.render_page([one])
    assert "± n/a (1 seed)" in page
    assert board_page.render_page(load_entries(ENTRIES)) == board_page.render_page(list(reversed(load_entries(ENTRIES))))


def test_refusals_are_one_line(tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="no such folder"):
        board_page.write_space(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no verified entry"):
        board_page.write_space(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    assert main(["leaderboard", "render", "--entries", str(ENTRIES), "--html", str(tmp_path / "file"), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 2 and out["kind"] == "InvalidInputError" and "is not a folder" in out["error"]
    assert not (tmp_path / "out").exists()
    assert main(["leaderboard", "render", "--entries", str(ENTRIES), "--html", str(tmp_path / "ok"), "--json"]) == 0
    assert sorted(Path(p).name for p in json.loads(capsys.readouterr().out)["written"]) == sorted(p.name for p in (tmp_path / "ok").iterdir()
                                                                                                  if not p.name.startswith("."))


@needs_chromium
def test_chromium_renders_every_reference_method_and_sorts_on_a_click(tmp_path):
    out = tmp_path / "space"
    board_page.write_space(ENTRIES, out)
    hostile = tmp_path / "hostile.html"
    hostile.write_text(board_page.render_page(_hostile_entries()), encoding="utf-8")
    with Chromium(CHROMIUM) as browser:
        page = browser.open((out / "index.html").as_uri())
        methods = page.evaluate("Array.from(document.querySelectorAll('table.board tbody td.method')).map(td => td.textContent)")
        for m in METHOD_ORDER:
            assert f"{LABELS[m]} (genco-data reference)" in methods, m
        headers = page.evaluate("Array.from(document.querySelectorAll('table.board thead th')).map(th => th.textContent)")
        col = headers.index("title") + 1

        def column() -> list[float]:
            return page.evaluate(f"Array.from(document.querySelectorAll('table.board tbody tr td:nth-child({col})'))"
                                 ".map(td => parseFloat(td.getAttribute('data-v')))")

        before = column()
        assert before != sorted(before)  # ranked by headroom, not by the title lift
        page.click(f"table.board thead th:nth-child({col})")
        assert column() == sorted(before)
        assert page.evaluate(f"document.querySelector('table.board thead th:nth-child({col})').getAttribute('aria-sort')") == "ascending"
        page.click(f"table.board thead th:nth-child({col})")
        assert column() == sorted(before, reverse=True)
        page.click("table.board thead th:nth-child(2)")  # text column: methods in alphabetical order
        shown = page.evaluate("Array.from(document.querySelectorAll('table.board tbody td.method')).map(td => td.textContent)")
        assert shown == sorted(shown, key=str.lower)
        assert page.evaluate("document.querySelectorAll('svg circle').length") > 12 * 6  # the lift chart is drawn
        shot = page.screenshot(tmp_path / "leaderboard.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        assert all(u.startswith("file://") for u in page.requests()), page.requests()  # no network request at all
        evil = browser.open(hostile.as_uri())
        assert evil.evaluate("typeof window.__pwned") == "undefined"
        assert HOSTILE.split("\n")[0] in evil.evaluate("document.body.innerText")
        assert evil.evaluate("document.querySelectorAll('a[href^=javascript]').length") == 0
