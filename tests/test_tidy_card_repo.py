"""``genco card --repo`` checks the Hub id with the grammar ``genco publish`` uses
(:func:`genco_data.format.records.check_repo_id`, with publish's message): a bad id is refused in one line and
nothing is written."""
from __future__ import annotations

from pathlib import Path

import pytest

from factories import TSD, make_impressions, write_parquet, write_world
from genco_data import BuildConfig, build_release
from genco_data.card.options import CardOptions
from genco_data.cli import main
from genco_data.errors import InvalidInputError
from genco_data.format.records import is_repo_id


BAD_REPOS = {
    "trailing newline": "org/name\n",
    "newline inside": "org/na\nme",
    "space": "org/na me",
    "markup": "org/<script>",
    "no slash": "orgname",
    "two slashes": "org/name/x",
    "double dash": "org/na--me",
    "double dot": "org/na..me",
    "ends with a dot": "org/name.",
    "non-ASCII letter": "org/n\u00e4me",
    "too long": "o/" + "n" * 95,
}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    write_parquet(make_impressions(400, seed=5), src / "raw" / "part-0.parquet")
    write_world(src / "world", TSD)
    out = tmp_path_factory.mktemp("rel") / "release"
    build_release(BuildConfig(sources=[src], out=out, version="1.0.0", sample_rows=50), progress=False)
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("repo", BAD_REPOS.values(), ids=BAD_REPOS.keys())
def test_card_repo_refuses_what_publish_refuses_in_one_line(release, capsys, repo):
    assert not is_repo_id(repo)  # the grammar `genco publish --repo` uses
    before = _snapshot(release)
    assert main(["card", str(release), "--repo", repo, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco card: error: repo must be ORG/NAME") and "Traceback" not in err
    assert repr(repo) in err  # the value given, escaped: a newline in it cannot break the line
    assert _snapshot(release) == before  # nothing written


def test_card_repo_accepts_a_hub_id_and_names_it(release, capsys):
    repo = "my-org/genco.v1_data"
    assert is_repo_id(repo)
    assert main(["card", str(release), "--repo", repo, "--quiet"]) == 0
    capsys.readouterr()
    text = (release / "README.md").read_text(encoding="utf-8")
    assert repo in text and "ORG/NAME" not in text


@pytest.mark.parametrize("repo", BAD_REPOS.values(), ids=BAD_REPOS.keys())
def test_card_options_refuse_a_bad_repo_id(repo):
    with pytest.raises(InvalidInputError, match=r"^repo must be ORG/NAME .*, got "):
        CardOptions(repo_id=repo)
