"""The reference training protocol: full batches only (drop-last), validation on the last train days (never the
test split) scored with the evaluator's math, early stopping with model selection, the two protocols
(reference default, ``--paper-defaults``) and a prediction seed separate from the training seed.

Uses test_train's session release (4 k train rows over 33 days + 1 k test rows).
"""
from __future__ import annotations

import argparse
import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import load_file  # noqa: E402

from genco_data.cli import main as genco  # noqa: E402
from genco_data.errors import InvalidInputError  # noqa: E402
from genco_data.evaluate.metrics import UniformLog, estimates, match, sufficient_stats  # noqa: E402
from genco_data.format.components import CONFIGS, COMPONENTS  # noqa: E402
from genco_data.load import Vocabularies, pad_table  # noqa: E402
from genco_data.release import Release  # noqa: E402
from reference_model import validation  # noqa: E402
from reference_model.checkpoint import BEST_NAME, load_run, read_run_config  # noqa: E402
from reference_model.data import read_split  # noqa: E402
from reference_model.predict import predict  # noqa: E402
from reference_model.train import add_train_arguments, config_from_args, train  # noqa: E402
from reference_model.train_config import PROTOCOLS, TrainConfig  # noqa: E402

from test_train import release  # noqa: E402,F401  (the session fixture)


def _bn_batch_sizes(monkeypatch) -> list[int]:
    """Batch sizes every BatchNorm sees in train mode (a forward pre-hook on each one built)."""
    sizes: list[int] = []
    orig = torch.nn.BatchNorm1d.__init__

    def init(self, *a, **kw):
        orig(self, *a, **kw)
        self.register_forward_pre_hook(lambda m, inp: sizes.append(inp[0].shape[0]) if m.training else None)

    monkeypatch.setattr(torch.nn.BatchNorm1d, "__init__", init)
    return sizes


def test_a_one_row_remainder_never_reaches_batchnorm_in_train_mode(release, tmp_path, monkeypatch):
    sizes = _bn_batch_sizes(monkeypatch)
    s = train(TrainConfig(data=str(release), out=str(tmp_path / "r"), protocol="paper", max_rows=2 * 256 + 1, batch_size=256,
                          quiet=True, save_every=0))
    assert s["steps"] == 2 and s["samples"] == 512
    assert sizes and set(sizes) == {256}  # the one-row remainder was dropped
    total = 4_000
    assert read_run_config(tmp_path / "r")["data"]["rows"] == [total - 512, total]  # the OLDEST row made way
    sizes.clear()  # a split smaller than one batch is one batch
    s = train(TrainConfig(data=str(release), out=str(tmp_path / "small"), protocol="paper", max_rows=300, quiet=True))
    assert s["steps"] == 1 and set(sizes) == {300}
    with pytest.raises(InvalidInputError, match="at least 2 rows"):
        train(TrainConfig(data=str(release), out=str(tmp_path / "one"), protocol="paper", max_rows=1, quiet=True))


def _train_days(release) -> np.ndarray:
    files = Release.open(release).data_files(CONFIGS[0], "train")
    return np.concatenate([pq.read_table(f, columns=["day"]).column("day").to_numpy() for f in files])


def test_validation_rows_are_exactly_the_last_days(release):
    files = Release.open(release).data_files(CONFIGS[0], "train")
    days = _train_days(release)
    distinct = np.unique(days)
    for n in (1, 2, 3):
        start, total, names = validation.validation_boundary(files, n)
        assert total == len(days) and names == [str(d) for d in distinct[-n:]]
        assert (days[start:] >= distinct[-n]).all() and (days[:start] < distinct[-n]).all()
    assert validation.validation_boundary(files, 0) == (len(days), len(days), [])
    with pytest.raises(InvalidInputError, match="only 33 day"):
        validation.validation_boundary(files, len(distinct))


def test_early_stopping_keeps_the_best_epoch_on_the_last_days_only(release, tmp_path, monkeypatch):
    """A planted validation curve: best at epoch 2, patience 2 -> stops after epoch 4 and keeps epoch 2's weights;
    the rows scored are exactly the last 2 train days, no test row and no trained-on row among them."""
    planted = [0.10, 0.30, 0.20, 0.25, 0.90, 0.95]
    seen_ids: list[set[str]] = []
    weights: list[dict[str, torch.Tensor]] = []

    def fake(policy, method, blocks, seed, device):
        seen_ids.append({i for b in blocks for i in b.impression_id.to_pylist()})
        weights.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
        e = len(seen_ids)
        return {"score": planted[e - 1], "rows": len(seen_ids[-1]), "components": {}}

    monkeypatch.setattr(validation, "evaluate_policy", fake)
    out = tmp_path / "run"
    s = train(TrainConfig(data=str(release), out=str(out), epochs=6, patience=2, min_epochs=0, validation_days=2, quiet=True,
                          save_every=0))
    assert s["epochs"] == 4 and s["validation"]["best_epoch"] == 2 and s["validation"]["stopped_early"]
    meta = read_run_config(out)
    assert [r["score"] for r in meta["validation"]["curve"]] == planted[:4]
    assert meta["validation"]["best_epoch"] == 2 and meta["progress"]["finished"] and meta["protocol"] == "reference"
    best = load_file(out / BEST_NAME)
    assert all(torch.equal(best[k], weights[1][k]) for k in best)  # epoch 2's weights were kept
    assert not all(torch.equal(best[k], weights[3][k]) for k in best)
    policy, _, _ = load_run(out)  # what predict reads: the selected epoch
    assert all(torch.equal(v, weights[1][k]) for k, v in policy.state_dict().items())
    # the scored rows: the last 2 train days, the same every epoch; disjoint from the test split and the trained rows
    rel = Release.open(release)
    train_t = pq.read_table(rel.data_files(CONFIGS[0], "train"), columns=["impression_id", "day"])  # chronological
    days = train_t.column("day").to_numpy()
    last2 = np.unique(days)[-2:]
    want = set(np.asarray(train_t.column("impression_id").to_pylist())[days >= last2[0]])
    assert all(ids == want for ids in seen_ids)
    assert not want & set(read_split(rel, "test").column("impression_id").to_pylist())
    lo, hi = meta["data"]["rows"]
    assert hi == meta["validation"]["rows"][0] == int((days < last2[0]).sum())
    assert not want & set(train_t.column("impression_id").to_pylist()[lo:hi])


def test_min_epochs_keeps_early_epochs_out_of_selection_and_patience(release, tmp_path, monkeypatch):
    """The same planted curve with min_epochs 3: epoch 2's higher score cannot win; epochs 3 (0.20), 4 (0.25), 5 (0.90),
    6 (0.95) are eligible, so nothing stops early and epoch 6's weights are kept. With min_epochs above the epochs
    trained nothing is selected and the last weights are what predict reads."""
    planted = [0.10, 0.30, 0.20, 0.25, 0.90, 0.95, 0.0]
    weights: list[dict[str, torch.Tensor]] = []

    def fake(policy, method, blocks, seed, device):
        weights.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
        return {"score": planted[len(weights) - 1], "rows": 1, "components": {}}

    monkeypatch.setattr(validation, "evaluate_policy", fake)
    kw = dict(data=str(release), epochs=6, patience=2, validation_days=2, quiet=True, save_every=0)
    s = train(TrainConfig(out=str(tmp_path / "a"), min_epochs=3, **kw))
    assert s["epochs"] == 6 and s["validation"]["best_epoch"] == 6 and not s["validation"]["stopped_early"]
    assert read_run_config(tmp_path / "a")["validation"]["min_epochs"] == 3
    assert all(torch.equal(v, weights[5][k]) for k, v in load_run(tmp_path / "a")[0].state_dict().items())
    # the planted curve again, min_epochs 4, at most 3 epochs: no epoch is eligible, the last weights are kept
    weights.clear()
    s = train(TrainConfig(out=str(tmp_path / "b"), min_epochs=4, **{**kw, "epochs": 3}))
    assert s["epochs"] == 3 and s["validation"]["best_epoch"] is None and not (tmp_path / "b" / BEST_NAME).exists()
    assert all(torch.equal(v, weights[2][k]) for k, v in load_run(tmp_path / "b")[0].state_dict().items())


def test_early_stopping_counts_patience_from_min_epochs():
    stopper = validation.EarlyStopping(2, min_epochs=3)
    for epoch, score in [(1, 0.9), (2, 0.8), (3, 0.1)]:
        stopper.update({"epoch": epoch, "score": score})
        assert not stopper.stop
    assert stopper.best["epoch"] == 3
    stopper.update({"epoch": 4, "score": 0.05})
    assert not stopper.stop  # one eligible epoch since the best
    stopper.update({"epoch": 5, "score": 0.0})
    assert stopper.stop and stopper.best["epoch"] == 3


def test_the_validation_score_is_the_evaluators_math(release):
    """On uniform-logged rows (μ = 1/n) the validation statistics equal the evaluator's, so every estimate does."""
    rel = Release.open(release)
    test = read_split(rel, "test")
    vocabs = Vocabularies.build(test)
    batch = pad_table(test, vocabs)
    gen = torch.Generator().manual_seed(0)
    n_real = batch.mask.sum(-1)  # real slots per component
    slots = (torch.rand(batch.exposed.shape, generator=gen) * n_real.clamp(min=1)).long()
    slots = torch.where(batch.exposed >= 0, torch.where(torch.rand(slots.shape, generator=gen) < 0.5, batch.exposed, slots), -1)
    ours = validation.block_stats(batch, slots)
    half = len(batch) // 2  # additive over blocks
    parts = validation.add_stats(validation.block_stats(batch[:half], slots[:half]), validation.block_stats(batch[half:], slots[half:]))
    log = UniformLog.build(batch.n_candidates.numpy().T, batch.original_choice(batch.exposed).numpy().T, batch.click.numpy().astype(np.int8))
    theirs = sufficient_stats(log, match(log, batch.original_choice(slots).numpy().T))
    a, b, c = estimates(ours), estimates(theirs), estimates(parts)
    for key in ("calibrated", "lift", "lift_se", "uniform", "matched"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, equal_nan=True)
        np.testing.assert_allclose(a[key], c[key], rtol=1e-9, equal_nan=True)
    rec = validation.score(ours)
    lifts = [rec["components"][c]["lift"] for c in COMPONENTS if rec["components"][c]["lift"] is not None]
    assert rec["score"] == pytest.approx(float(np.mean(lifts))) and rec["rows"] == len(batch)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    return p.parse_args(["--out", "x", "--data", "rel", *argv])


def test_no_tuning_flag_is_the_reference_protocol_and_paper_defaults_is_one_flag():
    ref = config_from_args(_args())
    assert ref.protocol == "reference" and {k: getattr(ref, k) for k in PROTOCOLS["reference"]} == PROTOCOLS["reference"]
    assert (ref.optimizer, ref.lr) == ("adam", 1e-3) and ref.validation_days >= 1 and ref.patience >= 1 and ref.epochs > 3
    paper = config_from_args(_args("--paper-defaults"))
    assert (paper.protocol, paper.optimizer, paper.lr, paper.epochs, paper.validation_days) == ("paper", "sgd", 5e-3, 1, 0)
    mixed = config_from_args(_args("--paper-defaults", "--epochs", "3", "--validation-days", "1"))
    assert (mixed.optimizer, mixed.epochs, mixed.validation_days) == ("sgd", 3, 1)  # an explicit flag wins
    assert TrainConfig(data="rel").to_dict()["optimizer"] == "adam"  # the library default is the CLI's


@pytest.mark.parametrize("argv, message", [
    (["--validation-days", "-1"], "--validation-days must be an integer >= 0"),
    (["--patience", "-2"], "--patience must be an integer >= 0"),
    (["--validation-days", "40"], "--validation-days 40: the train split has only 33 day(s)"),
])
def test_bad_protocol_options_are_one_line(release, tmp_path, capsys, argv, message):
    assert genco(["train", "--data", str(release), "--out", str(tmp_path / "x"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_prediction_seed_is_not_the_training_seed(release, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(data=str(release), out=str(out), protocol="paper", seed=7, max_rows=1024, quiet=True))
    a = predict(out, release, tmp_path / "a.parquet", seed=0)
    b = predict(out, release, tmp_path / "b.parquet", seed=0)
    c = predict(out, release, tmp_path / "c.parquet", seed=1)
    assert (a["prediction_seed"], a["training_seed"]) == (0, 7) and c["prediction_seed"] == 1
    assert a["sha256"] == b["sha256"] != c["sha256"]  # reproducible; the draws follow the prediction seed alone
    assert genco(["predict", "--model", str(out), "--data", str(release), "--out", str(tmp_path / "d.parquet"),
                  "--prediction-seed", "1", "--quiet", "--json"]) == 0
    assert pq.read_table(tmp_path / "d.parquet").equals(pq.read_table(tmp_path / "c.parquet"))
