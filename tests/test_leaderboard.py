"""Leaderboard: submissions verified by recomputation; every refusal of issue #6 has a test."""
from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genco_data import leaderboard as lb
from genco_data.cli import main
from genco_data.format.components import candidates_col
from genco_data.errors import PredictionsError, SubmissionError

from lb_factories import make_submission, pool_table, simulated_release, write_predictions


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return simulated_release(tmp_path_factory.mktemp("lb"))


def _submission(release: Path, folder: Path, **kw) -> Path:
    """lb_factories' submission, naming the release folder as its dataset."""
    return make_submission(release, folder, **{"dataset": str(release), **kw})


def _direct(release: Path, folder: Path, seeds=(0, 1, 2, 3, 4)) -> dict[str, list[float]]:
    """Each seed's headline numbers from a direct Evaluator run (not through the leaderboard's code)."""
    from genco_data.evaluate.evaluator import Evaluator

    ev = Evaluator(release)
    runs = [ev.evaluate(folder / f"seed{s}.parquet").summary_metrics() for s in seeds]
    return {k: [r[k] for r in runs] for k in runs[0]}


def test_verify_recomputes_and_writes_an_entry(release, tmp_path):
    import statistics

    sub = _submission(release, tmp_path / "random")
    entry = lb.verify_submission(sub, release, entries_dir=tmp_path / "entries")
    assert entry.seeds == [0, 1, 2, 3, 4] and entry.synthetic
    direct = _direct(release, tmp_path / "random")
    # every number is the evaluator's, seed by seed; mean and sample std are computed here independently
    assert set(entry.metrics) == set(direct)
    for key, values in direct.items():
        m = entry.metrics[key]
        assert m.per_seed == values, key
        assert m.mean == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-15), key
        assert m.std == pytest.approx(statistics.stdev(values), rel=1e-9, abs=1e-15), key
    assert {"mean_component_lift", "combination_lift", "true_ctr", "headroom_captured"} <= set(direct)
    assert len(set(direct["title_calibrated_sctr"])) == 5  # five random policies, five estimates
    written = json.loads((tmp_path / "entries" / "test-random--v1.0.0.json").read_text())
    assert written["metrics"]["true_ctr"]["per_seed"] == direct["true_ctr"]
    assert [d["seed"] for d in written["per_seed"]] == [0, 1, 2, 3, 4]
    # a uniform-random policy captures about none of the headroom
    assert abs(statistics.fmean(direct["headroom_captured"])) < 0.5


def test_self_reported_numbers_must_agree(release, tmp_path):
    good = lb.verify_submission(_submission(release, tmp_path / "a"), release)
    mean = good.metrics["title_lift"].mean
    ok = _submission(release, tmp_path / "b", reported={"title_lift": mean + 1e-5})
    lb.verify_submission(ok, release)
    bad = _submission(release, tmp_path / "c", reported={"title_lift": mean + 0.05})
    with pytest.raises(SubmissionError, match=r"reported title_lift = .* recomputed mean is .* \(difference \+0\.05"):
        lb.verify_submission(bad, release)
    unknown = _submission(release, tmp_path / "d", reported={"accuracy": 0.9})
    with pytest.raises(SubmissionError, match="'accuracy' is not one the evaluator computes"):
        lb.verify_submission(unknown, release)


def _mutate(path: Path, **over) -> Path:
    doc = json.loads(path.read_text())
    doc.update(over)
    path.write_text(json.dumps(doc))
    return path


def _overwrite(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def good_submission(release, tmp_path) -> Path:
    return _submission(release, tmp_path / "sub")


def _preds(sub: Path) -> list[dict]:
    return json.loads(sub.read_text())["predictions"]


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda s: _mutate(s, dataset_version="9.9.9"), "dataset_version 9.9.9 but the release"),
        (lambda s: _mutate(s, manifest_sha256="0" * 64), "manifest_sha256 0+ does not match"),
        (lambda s: _mutate(s, predictions=_preds(s)[:3]), "3 seeds given, at least 5"),
        (lambda s: _mutate(s, predictions=_preds(s) + [dict(_preds(s)[0])]), "seed 0 is listed twice"),
        (lambda s: _mutate(s, predictions=_preds(s)[:4] + [dict(_preds(s)[0], seed=9)]), "same predictions file .* for two seeds"),
        (lambda s: _mutate(s, predictions=[dict(p, sha256="a" * 64) if p["seed"] == 2 else p for p in _preds(s)]), "seed 2: .* sha256 is"),
        (lambda s: _mutate(s, used_test_labels=True), "used_test_labels is true"),
        (lambda s: _mutate(s, predictions=[dict(p, path="../escape.parquet") if p["seed"] == 1 else p for p in _preds(s)]), "relative and inside"),
        (lambda s: _mutate(s, predictions=[dict(p, path="gone.parquet") if p["seed"] == 1 else p for p in _preds(s)]), "seed 1: predictions file .* does not exist"),
        (lambda s: _mutate(s, n_parameters=-1), "n_parameters"),
        (lambda s: _overwrite(s, b"{not json"), "not a UTF-8 JSON document"),
        (lambda s: _overwrite(s, b"\xff\xfe" * 10), "not a UTF-8 JSON document"),
        (lambda s: _overwrite(s, b" " * (lb.MAX_SUBMISSION_BYTES + 1)), "over the .*-byte limit for a submission JSON"),
    ],
)
def test_broken_submissions_are_refused_with_one_line(good_submission, release, tmp_path, break_it, message, capsys):
    sub = break_it(good_submission)
    with pytest.raises(SubmissionError, match=message):
        lb.verify_submission(sub, release, entries_dir=tmp_path / "entries")
    assert not (tmp_path / "entries").exists(), "a refused submission must write nothing"
    code = main(["leaderboard", "verify", str(sub), "--data", str(release), "--entries", str(tmp_path / "entries")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def _replace_seed_file(sub: Path, seed: int, payload: bytes) -> Path:
    doc = json.loads(sub.read_text())
    target = sub.parent / f"seed{seed}.parquet"
    target.write_bytes(payload)
    for p in doc["predictions"]:
        if p["seed"] == seed:
            p["sha256"] = lb.sha256_file(target)
    sub.write_text(json.dumps(doc))
    return sub


def test_a_pickle_is_refused_unread(good_submission, release, monkeypatch):
    import pickle as _p  # only to *write* a hostile file; the package never imports pickle

    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    sub = _replace_seed_file(good_submission, 3, _p.dumps(Boom()))
    with pytest.raises(SubmissionError, match="seed 3: .* is a pickle .* refused unread"):
        lb.verify_submission(sub, release)


def test_not_parquet_and_oversized_files_are_refused(good_submission, release, monkeypatch):
    sub = _replace_seed_file(good_submission, 4, b"impression_id,title_choice\nx,1\n")
    with pytest.raises(SubmissionError, match="seed 4: .* not a Parquet file"):
        lb.verify_submission(sub, release)
    monkeypatch.setattr("genco_data.leaderboard.rules.MAX_PREDICTIONS_BYTES", 100)
    fresh = write_predictions(release, good_submission.parent / "fresh.parquet", 4)
    sub = _replace_seed_file(good_submission, 4, fresh.read_bytes())
    with pytest.raises(SubmissionError, match="over the 100-byte limit"):
        lb.verify_submission(sub, release)


def test_broken_predictions_are_refused_by_the_evaluator(good_submission, release, tmp_path):
    table = pq.read_table(good_submission.parent / "seed0.parquet")
    # a missing impression, a duplicate id, NaN scores
    cases = {
        "missing": table.slice(1),
        "duplicate": pa.concat_tables([table, table.slice(0, 1)]),
    }
    scores = pa.array([[float("nan")] * len(x) if x else None for x in pool_table(release)[candidates_col("title")].to_pylist()],
                      pa.list_(pa.float32()))
    cases["nan_scores"] = table.append_column("title_scores", scores)
    for name, bad in cases.items():
        folder = tmp_path / name
        shutil.copytree(good_submission.parent, folder)
        buf = pa.BufferOutputStream()
        pq.write_table(bad, buf)
        sub = _replace_seed_file(folder / "submission.json", 0, buf.getvalue().to_pybytes())
        with pytest.raises(PredictionsError) as info:  # the evaluator's own refusal, not any crash
            lb.verify_submission(sub, release)
        assert "\n" not in str(info.value), name
        assert {"missing": "missing", "duplicate": "duplicate", "nan_scores": "finite"}[name] in str(info.value).lower(), str(info.value)


def test_render_is_deterministic_and_ranked(release, tmp_path):
    entries = tmp_path / "entries"
    lb.verify_submission(_submission(release, tmp_path / "r"), release, entries_dir=entries)
    with pytest.raises(SubmissionError, match="same predictions file"):
        lb.verify_submission(_submission(release, tmp_path / "f0", policy="first"), release)
    lb.verify_submission(_submission(release, tmp_path / "f", policy="first", deterministic=True), release, entries_dir=entries)
    out1 = lb.render_leaderboard(entries, tmp_path / "A.md").read_bytes()
    out2 = lb.render_leaderboard(entries, tmp_path / "B.md").read_bytes()
    assert out1 == out2
    text = out1.decode()
    assert "## Dataset version 1.0.0" in text and "Test random" in text and "Test first" in text
    rows = [l for l in text.splitlines() if l.startswith("| 1 |") or l.startswith("| 2 |")]
    assert len(rows) == 2
    assert lb.rank_metric(lb.load_entries(entries)) == lb.TRUTH_RANK_METRIC  # synthetic: ranked by the truth
    assert "Ranked by `headroom_captured`" in text
    # the order is the truth's, from direct Evaluator runs of each method's predictions
    headroom = {"Test random": statistics.fmean(_direct(release, tmp_path / "r")["headroom_captured"]),
                "Test first": statistics.fmean(_direct(release, tmp_path / "f")["headroom_captured"])}
    best = max(headroom, key=headroom.get)
    assert headroom["Test random"] != headroom["Test first"]
    assert rows[0].split("|")[2].strip() == best
    assert main(["leaderboard", "render", "--entries", str(entries), "--out", str(tmp_path / "C.md")]) == 0
    assert (tmp_path / "C.md").read_bytes() == out1


def test_committed_board_matches_committed_entries():
    root = Path(__file__).resolve().parents[1]
    entries = root / "cards" / "leaderboard"
    board = root / "cards" / "LEADERBOARD.md"
    assert len(list(entries.glob("*.json"))) >= 10, "the reference entries are committed"
    assert board.read_text(encoding="utf-8") == lb.render_board(lb.load_entries(entries)), "run `genco leaderboard render`"


def test_rank_metric_falls_back_to_offline_lifts_without_truth(release, tmp_path):
    entry = lb.verify_submission(_submission(release, tmp_path / "r"), release)
    assert lb.rank_metric([entry]) == lb.TRUTH_RANK_METRIC
    real = entry.model_copy(update={"synthetic": False})
    assert lb.rank_metric([entry, real]) == lb.RANK_METRIC
    assert "Ranked by `mean_component_lift`" in lb.render_board([real])
