"""genco_data.card: the dataset card and its figures — generated tables, determinism, options, the CLI, and
the top-level DATASET_CARD.md kept equal to a fresh render of the embedded default release."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from factories import TSD, make_impressions, write_parquet, write_world
from genco_data import card, pipeline
from genco_data.format.arrow import impressions_schema
from genco_data import BuildConfig, build_release
from genco_data.cli import main
from genco_data.format.components import COMPONENTS, PAD_TO, PAPER_AVG_CANDIDATES, PAPER_COVERAGE
from genco_data.errors import BackwardCompatibilityError, ForwardCompatibilityError, InvalidInputError
from genco_data.format.records import ImpressionRow
from genco_data.release import Release, verify_release

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "regenerate with `genco card --default` from the repository root (see the README, Publishing a version)"


def _build(src: Path, out: Path, version: str = "1.2.3") -> Path:
    build_release(BuildConfig(sources=[src], out=out, version=version, rows_per_shard=900, row_group_rows=300, sample_rows=200), progress=False)
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A small release with a world/ (synthetic, but not from genco_data.synth)."""
    src = tmp_path_factory.mktemp("src")
    write_parquet(make_impressions(2500, seed=3), src / "raw" / "part-0.parquet")
    write_world(src / "world", TSD)
    return _build(src, tmp_path_factory.mktemp("rel") / "release")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """A small release built from raw exports (no world/)."""
    src = tmp_path_factory.mktemp("exports")
    write_parquet(make_impressions(1500, seed=4), src / "part-0.parquet")
    out = tmp_path_factory.mktemp("rel") / "raw-release"
    build_release(BuildConfig(sources=[src], out=out, version="0.3.0", test_start_day=TSD, sample_rows=100), progress=False)
    return out


@pytest.fixture(scope="session")
def default_release(tmp_path_factory) -> Path:
    """The embedded default release: ``genco synth --out raw && genco build raw --out release --version 1.0.0``."""
    return pipeline.build_default_release(tmp_path_factory.mktemp("default"))


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _table(text: str, header: str) -> list[list[str]]:
    """Rows (cells stripped) of the Markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


# -------------------------------------------------------------------------------- the default card
def test_dataset_card_md_is_a_fresh_render_of_the_default_release(default_release):
    m = Release.open(default_release).manifest
    assert m.source.kind == "synthetic" and m.source.seed == 0 and m.dataset_version == "1.0.0"
    assert m.splits["impressions"] == {"train": 200_000, "test": 50_000}
    want = pipeline.default_card_text(default_release)
    got = (ROOT / "DATASET_CARD.md").read_text(encoding="utf-8")
    if got != want:
        import difflib

        diff = "".join(list(difflib.unified_diff(got.splitlines(True), want.splitlines(True), "DATASET_CARD.md", "fresh render"))[:60])
        pytest.fail(f"DATASET_CARD.md is stale: {REGENERATE}\n{diff}")


def test_the_default_card_figures_plot_the_default_release(default_release):
    """Checked by the sha256 of the plotted numbers in each PNG, so the test holds across matplotlib versions."""
    from PIL import Image

    want = card.figure_descriptions(card.figure_data(Release.open(default_release)))
    for name, description in want.items():
        path = ROOT / card.DEFAULT_FIGURES_DIR / name
        assert path.is_file(), f"{path} missing: {REGENERATE}"
        with Image.open(path) as im:
            assert im.text.get("Description") == description, f"{path} is stale: {REGENERATE}"
            assert "Software" not in im.text


def test_write_default_card_writes_what_the_test_expects(default_release, tmp_path):
    paths = pipeline.write_default_card(tmp_path, release_path=default_release)
    assert paths == [tmp_path / "DATASET_CARD.md", *(tmp_path / "cards" / "figures" / f for f in card.FIGURES)]
    assert (tmp_path / "DATASET_CARD.md").read_text(encoding="utf-8") == pipeline.default_card_text(default_release)
    for f in card.FIGURES:  # same bytes as the release's own figures (one renderer)
        assert (tmp_path / "cards" / "figures" / f).read_bytes() == (default_release / "figures" / f).read_bytes()
    # the release's README differs only by where it links the figures
    readme = (default_release / "README.md").read_text(encoding="utf-8")
    assert readme == pipeline.default_card_text(default_release).replace("](cards/figures/", "](figures/")


def test_the_default_card_states_the_real_statistics(default_release):
    m = Release.open(default_release).manifest
    text = pipeline.default_card_text(default_release)
    rows = {r[0].strip("`"): r for r in _table(text, "| component |")}
    assert list(rows) == list(COMPONENTS)
    for c in COMPONENTS:
        s = m.stats["components"][c]
        assert rows[c][1] == f"{s['distinct_ids']:,}"
        assert rows[c][2] == f"{100 * s['coverage']:.1f} % ({100 * PAPER_COVERAGE[c]:.1f} %)"
        assert rows[c][3] == f"{s['avg_candidates']:.2f} ({PAPER_AVG_CANDIDATES[c]:.1f})"
    assert f"CTR {100 * m.stats['ctr']:.2f} % (6.84 %)" in text
    assert "200,000 impressions over 33 days" in text
    assert "### 1.0.0 — first public version" in text  # the package's changelog for genco_data.synth releases
    assert "`genco_data.synth 0.1.0`" in text and "| `train_rows` | `200000` |" in text


# ------------------------------------------------------------------------------------ the contents
def test_schema_table_is_generated_from_the_records():
    rows = _table(card.schema_table(), "| column |")
    schema = impressions_schema()
    names = [r[0].strip("`") for r in rows]
    expanded = []
    for name in names:
        expanded += [name.replace("<c>", c) for c in COMPONENTS] if "<c>" in name else [name]
    assert sorted(expanded) == sorted(ImpressionRow.model_fields)  # every column, each once
    for row in rows:
        name = row[0].strip("`").replace("<c>", COMPONENTS[0])
        field = ImpressionRow.model_fields[name]
        assert row[1] == f"`{field.json_schema_extra['arrow']}`"
        assert row[2] == ("yes" if schema.field(name).nullable else "no")
        assert row[3]  # a description for every column
    assert ["`<c>_exposed`", "`int16`", "yes"] == rows[names.index("<c>_exposed")][:3]


def test_card_sections_front_matter_and_links(synthetic):
    text = (synthetic / "README.md").read_text(encoding="utf-8")
    meta = _front_matter(text)
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] == ["1K<n<10K"] and "synthetic" in meta["tags"]
    assert [c["config_name"] for c in meta["configs"]] == ["impressions", "sample"]
    for heading in ("## Loading", "## Configs, splits and row counts", "## Schema", "## Statistics of the train split",
                    "## Logging policies and propensities", "## Calibrated sCTR", "## Truncation rule", "## Provenance",
                    "## Limitations", "## License", "## Citation", "## Changelog"):
        assert f"\n{heading}" in text, heading
    assert 'load_dataset("ORG/NAME", "impressions", revision="v1.2.3")' in text
    assert "from genco_data import loader" in text and "= loader(ds[\"train\"]" in text
    assert "Σ_r n_c(r) · y(r) · 1[choice_c(r) = shown_c(r)]  /  Σ_r n_c(r) · 1[choice_c(r) = shown_c(r)]" in text
    assert "Π_c n_c(r)" in text
    assert card.TRUNCATION_RULE in text and card.CITATION in text and "arXiv:2508.09730" in text
    m = Release.open(synthetic).manifest
    for i in m.source.inputs:
        assert f"`{i.sha256}`" in text and f"`{i.path}`" in text
    assert "| `n_ads` | `2000` |" in text  # world parameters
    for name in card.FIGURES:
        assert f"](figures/{name})" in text and (synthetic / "figures" / name).is_file()
    splits = _table(text, "| config | split |")
    assert [r[2] for r in splits] == [f"{m.splits[c][s]:,}" for c in ("impressions", "sample") for s in ("train", "test")]
    # a changelog for a release not made by genco_data.synth and without --changelog: a stub
    assert "### 1.2.3\n\nNo notes were given for this version" in text


def test_raw_release_card(raw):
    text = (raw / "README.md").read_text(encoding="utf-8")
    assert _front_matter(text)["license"] == "unknown"
    assert "the data owner's terms apply" in text and "**Synthetic.**" not in text
    assert text.split("## Provenance\n\n")[1].startswith("Built from raw log exports")
    assert "whether their product is the propensity of the whole combination depends" in text


def test_the_card_is_deterministic_and_has_no_local_paths(synthetic, tmp_path):
    copy = tmp_path / "elsewhere" / "rel"
    shutil.copytree(synthetic, copy)
    before = {p: (synthetic / p).read_bytes() for p in ["README.md", *(f"figures/{f}" for f in card.FIGURES)]}
    card.render_card(copy)
    for p, data in before.items():
        assert (copy / p).read_bytes() == data, p
    text = before["README.md"].decode()
    assert str(synthetic.parent) not in text and str(tmp_path) not in text
    assert not re.search(r"\d{2}:\d{2}:\d{2}", text)  # no timestamps
    verify_release(copy)  # figures/ lies outside data/ and world/: verify does not flag it


def test_figures_are_pngs_of_the_release_data(synthetic):
    from PIL import Image

    data = card.figure_data(Release.open(synthetic))
    m = Release.open(synthetic).manifest
    assert sum(v["rows"] for v in data["days"].values()) == sum(m.splits["impressions"].values())
    assert sum(v["clicks"] for v in data["days"].values() if v["split"] == "train") == m.stats["clicks"]
    assert {v["split"] for d, v in data["days"].items() if d >= TSD.isoformat()} == {"test"}
    for c in COMPONENTS:
        counts = data["pool_sizes"][c]["train"]
        assert sum(counts) == m.stats["rows"]
        having = sum(counts[1:])
        assert sum(n * k for n, k in enumerate(counts)) / having == pytest.approx(m.stats["components"][c]["rows_avg_candidates"])
    for name, description in card.figure_descriptions(data).items():
        with Image.open(synthetic / "figures" / name) as im:
            assert im.format == "PNG" and im.size[0] >= 800
            assert im.text["Description"] == description


def test_truncation_rule_is_the_padding_modules():
    """One rule, two places: the card's text must be what the adapter's docstring says."""
    padding = pytest.importorskip("genco_data.load.padding")

    def norm(s: str) -> str:
        return " ".join(s.replace("`", "").split())

    assert norm(card.TRUNCATION_RULE) in norm(padding.__doc__)
    assert f"{PAD_TO}" in card.TRUNCATION_RULE


def test_stats_table_without_statistics(synthetic):
    m = Release.open(synthetic).manifest.model_copy(update={"stats": {}})
    text = card.card_text(m)
    assert "The manifest holds no statistics" in text and "No train statistics." in text


# -------------------------------------------------------------------------------------- the options
CHANGELOG = """# Our dataset

## 2.0.0 — the future
not yet

## 1.2.3 — fixes
- fixed a thing

## 1.0.0 — first
- hello
"""


def test_changelog_file_versions_up_to_the_release_newest_first(synthetic, tmp_path):
    path = tmp_path / "CHANGES.md"
    path.write_text(CHANGELOG, encoding="utf-8")
    m = Release.open(synthetic).manifest
    text = card.changelog_markdown(m, card.CardOptions(changelog=path))
    assert text == "### 1.2.3 — fixes\n\n- fixed a thing\n\n### 1.0.0 — first\n\n- hello"
    older = m.model_copy(update={"dataset_version": "1.1.0"})
    text = card.changelog_markdown(older, card.CardOptions(changelog=path))
    assert text.startswith("### 1.1.0\n\nNo notes were given") and "### 1.0.0 — first" in text and "1.2.3" not in text


@pytest.mark.parametrize(
    "content,message",
    [("no sections here\n", "no '## X.Y.Z — title' section"), ("## 1.0.0\na\n## 1.0.0\nb\n", "version 1.0.0 has two sections")],
)
def test_bad_changelog_files(synthetic, tmp_path, content, message):
    path = tmp_path / "CHANGES.md"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=message):
        card.changelog_markdown(Release.open(synthetic).manifest, card.CardOptions(changelog=path))
    with pytest.raises(InvalidInputError, match="no such file"):
        card.changelog_markdown(Release.open(synthetic).manifest, card.CardOptions(changelog=tmp_path / "nope.md"))


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"repo_id": "no-slash"}, "ORG/NAME"),
        ({"repo_id": "a/b/c"}, "ORG/NAME"),
        ({"license": "CC BY"}, "license"),
        ({"figures_href": "/abs"}, "figures_href"),
        ({"figures_href": "x/"}, "figures_href"),
    ],
)
def test_card_options_are_checked(kw, message):
    with pytest.raises(InvalidInputError, match=message):
        card.CardOptions(**kw)


def test_template_placeholders_must_match():
    assert card.fill_template("a {{x}} b {{ y }}", {"x": "1", "y": "2"}) == "a 1 b 2"
    with pytest.raises(ValueError, match=r"without a value \['y'\]"):
        card.fill_template("{{x}} {{y}}", {"x": "1"})
    with pytest.raises(ValueError, match=r"without a placeholder \['z'\]"):
        card.fill_template("{{x}}", {"x": "1", "z": "2"})


@pytest.mark.parametrize("found,error,message", [
    ("2.0", ForwardCompatibilityError, "newer than 1.0; upgrade genco-data"),
    ("0.9", BackwardCompatibilityError, "older than 1.0.*rebuild it"),
])
def test_card_refuses_other_format_versions(synthetic, tmp_path, found, error, message):
    rel = tmp_path / "rel"
    shutil.copytree(synthetic, rel)
    m = json.loads((rel / "manifest.json").read_text())
    m["format_version"] = found
    (rel / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(error, match=message):
        card.render_card(rel)


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_card_with_options(synthetic, tmp_path, capsys):
    rel = tmp_path / "rel"
    shutil.copytree(synthetic, rel)
    changes = tmp_path / "CHANGES.md"
    changes.write_text(CHANGELOG, encoding="utf-8")
    argv = ["card", str(rel), "--repo", "my-org/genco", "--changelog", str(changes), "--license", "cc-by-nc-4.0"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"wrote {rel / 'README.md'} and 2 figures in {rel / 'figures'}"
    text = (rel / "README.md").read_text(encoding="utf-8")
    assert _front_matter(text)["license"] == "cc-by-nc-4.0"
    assert 'load_dataset("my-org/genco", "impressions", revision="v1.2.3")' in text and "ORG/NAME" not in text
    assert "### 1.2.3 — fixes" in text and "2.0.0" not in text
    assert main(["card", str(rel), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["written"] == str(rel / "README.md") and len(out["figures"]) == 2
    assert 'load_dataset("ORG/NAME"' in (rel / "README.md").read_text(encoding="utf-8")  # options are not stored


@pytest.mark.parametrize(
    "argv,message",
    [
        (["card"], "a RELEASE folder is required"),
        (["card", "--default", "{rel}"], "give no RELEASE"),
        (["card", "{rel}", "--repo", "bad"], "repo must be ORG/NAME"),
        (["card", "{rel}", "--changelog", "{tmp}/missing.md"], "no such file"),
        (["card", "{tmp}"], "not a release folder"),
    ],
)
def test_cli_card_errors_are_one_line(synthetic, tmp_path, capsys, argv, message):
    args = [a.format(rel=synthetic, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genco card: error: ") and message in err


# ---------------------------------------------------------------- a card ready to publish (issue #17)
def _with_source(manifest, **parameters):
    src = manifest.source.model_copy(update={"generator": "genco_data.synth 0.1.0", "seed": parameters.get("seed", 0),
                                             "parameters": parameters})
    return manifest.model_copy(update={"source": src})


def test_the_changelog_is_true_for_the_seed_and_settings_used(synthetic):
    from genco_data.card.changelog import changelog_markdown, settings_differences
    from genco_data.synth.config import SynthConfig

    m = Release.open(synthetic).manifest
    default = json.loads(json.dumps(SynthConfig().to_dict()))
    same = _with_source(m, **default)
    assert settings_differences(same) == []
    assert "`genco synth` defaults, seed 0" in changelog_markdown(same)  # the package's history: its text is true here
    seed3 = _with_source(m, **{**default, "seed": 3, "train_rows": 1000})
    assert settings_differences(seed3) == [("seed", 3, 0), ("train_rows", 1000, 200_000)]
    text = changelog_markdown(seed3)
    assert "seed 0" not in text and "defaults, seed" not in text
    assert text.startswith("### 1.2.3 — generated with `genco synth`")
    assert "with seed 3" in text and "`seed` = `3` (default `0`)" in text and "`train_rows` = `1000` (default `200000`)" in text


def test_front_matter_has_hub_tasks_and_the_body_links_paper_and_code(synthetic):
    from genco_data.card.front_matter import TASK_CATEGORIES, TASK_IDS

    m = Release.open(synthetic).manifest
    text = card.card_text(m, card.CardOptions(code_url="https://example.org/genco-data"))
    meta = _front_matter(text)
    assert meta["task_categories"] == TASK_CATEGORIES == ["reinforcement-learning", "tabular-classification"]
    assert meta["task_ids"] == TASK_IDS
    assert not any(t.startswith("arxiv") for t in meta["tags"])  # the Hub derives arxiv:<id> from the link below
    assert "(https://arxiv.org/abs/2508.09730)" in text and "(https://huggingface.co/papers/2508.09730)" in text
    assert "| code | [https://example.org/genco-data](https://example.org/genco-data) — `genco-data`" in text
    # without a URL (none given, none in the package metadata) the card says how to give one
    bare = card.card_text(m, card.CardOptions())
    if card.package_code_url() is None:
        assert "repository URL not set (`genco card --code-url URL`)" in bare
    with pytest.raises(InvalidInputError, match="code url must be an http"):
        card.CardOptions(code_url="javascript:alert(1)")


def test_every_figure_has_a_caption_under_it(synthetic):
    text = (synthetic / "README.md").read_text(encoding="utf-8")
    for name in card.FIGURES:
        image = f"![{'Candidates per component' if name == card.figures.FIGURE_CANDIDATES else 'CTR by day'}](figures/{name})"
        after = text.split(image, 1)[1].lstrip("\n").split("\n", 1)[0]
        assert after == f"*{card.CAPTIONS[name]}*"


def test_pool_size_bins_are_bounded_whatever_the_pool_sizes():
    counts = [0] * 40_001
    counts[0], counts[3], counts[40_000] = 5, 10, 1
    x, share, overflow = card.pool_size_bins(counts)
    assert overflow and len(x) == card.MAX_EXACT_POOL + 1 and x[-1] == card.MAX_EXACT_POOL + 1
    assert share[2] == pytest.approx(10 / 11) and share[-1] == pytest.approx(1 / 11) and share.sum() == pytest.approx(1)
    x, share, overflow = card.pool_size_bins([4, 2, 2])
    assert not overflow and list(x) == [1, 2] and list(share) == [0.5, 0.5]
    assert card.pool_size_bins([7])[0].size == 0


def test_a_huge_pool_costs_one_bar_not_one_per_size(tmp_path, monkeypatch):
    """#16: one row with a 40 000-candidate pool drew 40 000 bars (~1.4 ms each); now at most MAX_EXACT_POOL + 1."""
    from matplotlib.axes import Axes

    from factories import set_cells

    table = make_impressions(300, seed=5)
    pool = [(1 << 41) + i for i in range(40_000)]
    table = set_cells(table, "image_candidates", {0: pool})
    table = set_cells(table, "image_exposed", {0: 7})
    table = set_cells(table, "image_propensity", {0: 0.5})
    write_parquet(table, tmp_path / "src" / "part-0.parquet")
    rel = tmp_path / "rel"
    build_release(BuildConfig(sources=[tmp_path / "src"], out=rel, version="1.0.0", test_start_day=TSD, sample_rows=50), progress=False)
    bars: list[int] = []
    real_bar = Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda self, x, *a, **k: (bars.append(len(x)), real_bar(self, x, *a, **k))[1])
    card.render_card(rel)
    data = card.figure_data(Release.open(rel))
    assert len(data["pool_sizes"]["image"]["train"]) == 40_001  # the counts stay exact
    assert bars and max(bars) <= card.MAX_EXACT_POOL + 1 and sum(bars) <= len(COMPONENTS) * (card.MAX_EXACT_POOL + 1)
