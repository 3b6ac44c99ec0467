"""Training script, predictions, CLI verbs, reproduce and demo of ``reference_model`` on a tiny simulated release.

The release (4 k train + 1 k test rows from ``genco_data.synth``, built with ``build_release``) is made once per
session. Every run uses one CPU thread.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from genco_data.format.arrow import predictions_schema  # noqa: E402
from genco_data import BuildConfig, build_release  # noqa: E402
from genco_data.cli import main as genco  # noqa: E402
from genco_data.format.components import COMPONENTS, PAD_TO, choice_col, scores_col  # noqa: E402
from genco_data.errors import InvalidInputError  # noqa: E402
from genco_data.evaluate import Evaluator  # noqa: E402
from genco_data.synth import SynthConfig, simulate  # noqa: E402
from reference_model.predict import SCORE_FILL_MARGIN, _scores_column, predict  # noqa: E402
from reference_model.checkpoint import (  # noqa: E402
    METRICS_NAME,
    MODEL_NAME,
    _atomic_write,
    checkpoint_info,
    load_run,
    read_metrics,
    read_run_config,
)
from reference_model.train import train  # noqa: E402
from reference_model.train_config import METHODS, TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ROWS, TEST_ROWS = 4_000, 1_000


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("train_release")
    simulate(SynthConfig(train_rows=TRAIN_ROWS, test_rows=TEST_ROWS, seed=3), base / "raw", progress=False)
    build_release(BuildConfig(sources=[base / "raw"], out=base / "rel", version="1.0.0"), progress=False)
    return base / "rel"


@pytest.fixture(scope="module")
def evaluator(release) -> Evaluator:
    return Evaluator(release)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(release: Path, out: Path, **kw) -> dict:
    kw.setdefault("quiet", True)
    # the mechanics, not the protocol: the paper's settings (no validation days) and batches that divide the rows
    kw.setdefault("protocol", "paper")
    kw.setdefault("batch_size", 1000)
    return train(TrainConfig(data=str(release), out=str(out), **kw))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return e


# ------------------------------------------------------------------------------------ train → predict → evaluate
def test_train_writes_the_run_folder_and_predictions_pass_the_evaluator(release, tmp_path, evaluator):
    out = tmp_path / "genco"
    s = run(release, out, epochs=2, log_every=1)
    assert s["steps"] == 2 * 4 and s["samples"] == 2 * TRAIN_ROWS and s["epochs"] == 2
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.npz", "metrics.jsonl", "loss_curve.png"} <= names
    assert [n for n in names if n.startswith("trainer-")] == ["trainer-00000008.safetensors"]
    assert not [n for n in names if n.endswith(".tmp")]
    # safetensors only: the weights load without torch.load / pickle
    tensors = load_file(out / MODEL_NAME)
    assert "phi.0.weight" in tensors and all(t.dtype == torch.float32 for k, t in tensors.items() if "num_batches" not in k)
    for f in out.iterdir():
        assert f.read_bytes()[:1] != b"\x80", f"{f.name} looks like a pickle"
    meta = read_run_config(out)
    assert meta["method"] == "genco" and meta["progress"] == {"step": 8, "epoch": 2, "batch": 0, "samples": 8000, "finished": True}
    assert meta["model"]["emb_dim"] == 4 and meta["train"]["optimizer"] == "sgd" and meta["train"]["lr"] == 5e-3
    assert meta["release"]["dataset_version"] == "1.0.0" and len(meta["vocab_fingerprint"]) == 64
    recs = [r for r in read_metrics(out / METRICS_NAME) if "loss" in r]
    assert [r["step"] for r in recs] == list(range(1, 9))
    assert all(np.isfinite([r["loss"], r["comb"], r["ele"], r["rl"], r["samples_per_s"]]).all() for r in recs)
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    pred = tmp_path / "p.parquet"
    info = predict(out, release, pred, seed=0)
    table = pq.read_table(pred)
    assert table.schema.equals(predictions_schema(), check_metadata=False)
    assert info["rows"] == table.num_rows == TEST_ROWS and info["mode"] == "sample"
    result = evaluator.evaluate(pred)
    m = result.summary_metrics()
    assert 0 < m["true_ctr"] < 1 and "headroom_captured" in m
    # choices index the ORIGINAL pools; scores have the pool's length and are finite; null iff empty pool
    test = pq.read_table(next((release / "data" / "impressions").glob("test-*.parquet")))
    order = {k: i for i, k in enumerate(test.column("impression_id").to_pylist())}
    rows = [order[k] for k in table.column("impression_id").to_pylist()]
    for c in COMPONENTS:
        n = np.array([len(x) for x in test.column(f"{c}_candidates").to_pylist()])[rows]
        ch = table.column(choice_col(c)).to_pylist()
        sc = table.column(scores_col(c)).to_pylist()
        assert all((x is None) == (k == 0) for x, k in zip(ch, n))
        assert all(x is None or 0 <= x < k for x, k in zip(ch, n))
        assert all((s is None and k == 0) or (len(s) == k and np.isfinite(s).all()) for s, k in zip(sc, n))


def test_scores_of_truncated_and_eliminated_candidates_are_filled_below_the_pool():
    scores = np.full((2, PAD_TO), -np.inf, np.float32)
    mask = np.zeros((2, PAD_TO), bool)
    orig = np.full((2, PAD_TO), -1, np.int16)
    # row 0: a pool of 17, shown element 16 kept in slot 14 -> originals 0..13 and 16 scored, 14 and 15 filled
    mask[0] = True
    orig[0] = np.r_[np.arange(14), 16]
    scores[0] = np.arange(15, dtype=np.float32)
    # row 1: pool of 3, slot 1 eliminated (-inf, as DCO reports it)
    mask[1, :3] = True
    orig[1, :3] = [0, 1, 2]
    scores[1, :3] = [0.5, -np.inf, 0.25]
    col = _scores_column(scores, mask, orig, np.array([17, 3])).to_pylist()
    assert col[0][:14] == list(range(14)) and col[0][16] == 14.0 and col[0][14] == col[0][15] == -SCORE_FILL_MARGIN
    assert col[1] == [0.5, 0.25 - SCORE_FILL_MARGIN, 0.25]
    empty = _scores_column(np.full((1, PAD_TO), -np.inf, np.float32), np.zeros((1, PAD_TO), bool), orig[:1], np.array([0]))
    assert empty.to_pylist() == [None]


@pytest.mark.parametrize("method", [m for m in METHODS if m != "genco"])
def test_every_method_trains_predicts_and_evaluates(release, tmp_path, evaluator, method):
    out = tmp_path / method
    s = run(release, out, method=method, optimizer="adam", lr=1e-3) if method not in ("dco", "uniform") else run(release, out, method=method)
    assert read_run_config(out)["progress"]["finished"]
    policy, meta, _ = load_run(out)
    assert meta["n_parameters"] == s["n_parameters"] and (s["n_parameters"] > 0) == (method != "uniform")
    pred = tmp_path / f"{method}.parquet"
    info = predict(out, release, pred, seed=1)
    assert info["scores"] == (method not in ("mlp", "uniform"))
    m = evaluator.evaluate(pred).summary_metrics()
    assert 0 < m["true_ctr"] < 1


def test_predict_mode_and_seed(release, tmp_path):
    out = tmp_path / "g"
    run(release, out, method="genco")
    a, b, c = (tmp_path / f"{k}.parquet" for k in "abc")
    predict(out, release, a, seed=1)
    predict(out, release, b, seed=1)
    predict(out, release, c, mode="greedy")
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(InvalidInputError, match="--mode must be one of"):
        predict(out, release, c, mode="beam")
    dco = tmp_path / "dco"
    run(release, dco, method="dco")
    with pytest.raises(InvalidInputError, match="applies to GenCO"):
        predict(dco, release, c, mode="greedy")


# ------------------------------------------------------------------------------------------ determinism, resume
def test_same_seed_gives_the_same_bytes_on_cpu(release, tmp_path):
    a, b, c = (run(release, tmp_path / k, epochs=1, seed=s) for k, s in (("a", 5), ("b", 5), ("c", 6)))
    assert a["steps"] == b["steps"] == 4
    bytes_ = [(tmp_path / k / MODEL_NAME).read_bytes() for k in "abc"]
    assert bytes_[0] == bytes_[1] and bytes_[0] != bytes_[2]


def test_resume_continues_and_equals_the_uninterrupted_run(release, tmp_path):
    kw = dict(optimizer="adam", lr=1e-3, seed=2, log_every=1)
    run(release, tmp_path / "full", epochs=3, **kw)
    run(release, tmp_path / "part", epochs=1, **kw)
    s = train(TrainConfig(out=str(tmp_path / "part"), resume=True, epochs=3, quiet=True, log_every=None, save_every=None))
    assert s["steps"] == 12 and s["epochs"] == 3
    full, part = load_file(tmp_path / "full" / MODEL_NAME), load_file(tmp_path / "part" / MODEL_NAME)
    assert full.keys() == part.keys() and all(torch.equal(full[k], part[k]) for k in full)
    steps = [r["step"] for r in read_metrics(tmp_path / "part" / METRICS_NAME) if "loss" in r]
    assert steps == list(range(1, 13))
    # a finished run resumes to nothing; resuming elsewhere / with another release is refused
    assert train(TrainConfig(out=str(tmp_path / "part"), resume=True, epochs=3, quiet=True))["steps"] == 12
    with pytest.raises(InvalidInputError, match="not a training run folder"):
        train(TrainConfig(out=str(tmp_path / "nothing"), resume=True, quiet=True))


def test_killed_mid_run_leaves_a_loadable_checkpoint_and_resumes(release, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "reference_model.train", "--data", str(release), "--out", str(out), "--epochs", "4", "--paper-defaults",
           "--batch-size", "200", "--save-every", "1", "--log-every", "1", "--quiet"]  # 4 x 20 steps
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    step = 0
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                with safe_open(str(out / MODEL_NAME), "pt") as f:
                    step = checkpoint_info(f.metadata())["progress"]["step"]
            except Exception:  # not written yet, or being replaced
                pass
            if step >= 6:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert step >= 6, proc.stderr.read().decode()[-2000:]
    policy, meta, _ = load_run(out)  # the last committed checkpoint loads
    with safe_open(str(out / MODEL_NAME), "pt") as f:
        killed_at = checkpoint_info(f.metadata())["progress"]["step"]
    assert 6 <= killed_at < 80 and (out / f"trainer-{killed_at:08d}.safetensors").is_file()
    r = subprocess.run(cmd + ["--resume", "--json"], env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["steps"] == 80
    steps = [x["step"] for x in read_metrics(out / METRICS_NAME) if "loss" in x]
    assert steps == list(range(1, 81))
    assert read_run_config(out)["progress"]["finished"]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old complete checkpoint")

    def broken(p: Path) -> None:
        p.write_bytes(b"half a chec")
        raise KeyboardInterrupt  # a kill between the write and the rename

    with pytest.raises(KeyboardInterrupt):
        _atomic_write(path, broken)
    assert path.read_bytes() == b"old complete checkpoint" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


# ------------------------------------------------------------------------------------------------- DDP
def run_ddp(release: Path, out: Path, ids_dir: Path, *extra: str) -> dict:
    """``reference_model.train`` on 2 CPU processes (torchrun), every step's impression ids recorded per rank
    by tests/ddp_record_ids.py."""
    import shutil

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(ROOT / "tests" / "ddp_record_ids.py"),
           str(ids_dir), "--data", str(release), "--out", str(out), "--epochs", "1", "--quiet", "--json", "--device", "cpu",
           "--paper-defaults", "--batch-size", "1000", *extra]
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180)
    first = r.stderr
    if r.returncode != 0:  # once more: the rendezvous port can be taken by another job on a shared machine
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(ids_dir, ignore_errors=True)
        r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, first[-2000:] + "\n---- retry ----\n" + r.stderr[-2000:]
    return json.loads(r.stdout)


def train_ids(release: Path) -> list[str]:
    files = sorted((release / "data" / "impressions").glob("train-*.parquet"))
    return pq.read_table(files, columns=["impression_id"])["impression_id"].to_pylist()


def test_ddp_two_cpu_processes_train_on_disjoint_shards(release, tmp_path):
    out, ids_dir = tmp_path / "ddp", tmp_path / "ids"
    summary = run_ddp(release, out, ids_dir)
    assert summary["world_size"] == 2 and summary["steps"] == 4 and summary["samples"] == TRAIN_ROWS
    # independent evidence: the ids each rank computed its loss on
    seen = [(ids_dir / f"rank{r}.txt").read_text().split() for r in range(2)]
    every = train_ids(release)
    assert not set(seen[0]) & set(seen[1])  # disjoint
    assert sorted(seen[0] + seen[1]) == sorted(every)  # together: the whole split, each row once
    assert seen[0] == every[:2000] and seen[1] == every[2000:]  # each rank: its chronological range, in log order
    shards = read_run_config(out)["shards"]
    assert shards == [{"rank": 0, "rows": [0, 2000], "samples": 2000}, {"rank": 1, "rows": [2000, 4000], "samples": 2000}]
    load_run(out)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("trainer-")) == ["trainer-00000004.safetensors"]
    with safe_open(str(out / "trainer-00000004.safetensors"), "pt") as f:
        assert {"rng.rank0", "rng.rank1"} <= set(f.keys())


# ------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["train", "--data", "/no/such/release", "--out", "{tmp}/x"], "not a release folder"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--method", "gencoo"], "--method must be one of"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--optimizer", "lbfgs"], "--optimizer must be"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--epochs", "0"], "--epochs must be"),
        (["train", "--out", "{tmp}/x"], "--data RELEASE is required"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--genco-set", "off_policy_clip=-1"], "--genco-set: GenCOConfig: need off_policy_clip >= 0"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--genco-set", "emb_init_std=x"], "--genco-set 'emb_init_std=x': emb_init_std expects float"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--genco-set", "logged_baseline=mean"], "logged_baseline must be one of"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--genco-set", "pool_context=maybe"], "pool_context expects true or false"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--genco-set", "vocab_sizes=3"], "expected NAME=VALUE with NAME one of"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--method", "mlp", "--genco-set", "rl_samples=2"], "--genco-set applies to the GenCO methods"),
        (["reproduce", "--data", "{rel}", "--out", "{tmp}/r", "--genco-set", "bogus=1"], "--genco-set 'bogus=1': expected NAME=VALUE"),
        (["train", "--data", "{rel}", "--out", "{tmp}"], "exists and is not empty"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--vocab", "exactly"], "--vocab must be one of hashed, exact"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--hash-size-factor", "0"], "--hash-size-factor must be a positive number"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--stream", "sometimes"], "--stream must be one of auto, always, never"),
        (["train", "--data", "{rel}", "--out", "{tmp}/x", "--memory-budget-gb", "-1"], "--memory-budget-gb must be a positive number"),
        (["predict", "--model", "{tmp}/none", "--data", "{rel}", "--out", "{tmp}/p.parquet"], "not a training run folder"),
        (["reproduce", "--data", "{rel}", "--out", "{tmp}/r", "--methods", "genco,magic"], "unknown magic"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(release, tmp_path, capsys, argv, pattern):
    (tmp_path / "occupied").write_text("x")
    argv = [a.format(tmp=tmp_path, rel=release) for a in argv]
    assert genco(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err, err


def test_cli_train_and_predict(release, tmp_path, capsys):
    assert genco(["train", "--data", str(release), "--out", str(tmp_path / "m"), "--method", "wo_rl", "--quiet", "--json",
                  "--paper-defaults", "--batch-size", "1000"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["method"] == "wo_rl" and s["steps"] == 4
    assert genco(["predict", "--model", str(tmp_path / "m"), "--data", str(release), "--out", str(tmp_path / "p.parquet"), "--quiet"]) == 0
    assert "wrote 1,000 predictions of wo_rl" in capsys.readouterr().out
    # --genco-set overrides (options where the paper is silent) reach the saved train and model configs
    sets = ["off_policy_clip=5", "emb_init_std=0.01", "logged_baseline=value", "pool_context=false", "rl_samples=2"]
    argv = ["train", "--data", str(release), "--out", str(tmp_path / "o"), "--quiet", *(x for kv in sets for x in ("--genco-set", kv))]
    assert genco(argv) == 0
    saved = json.loads((tmp_path / "o" / "config.json").read_text())
    expected = {"off_policy_clip": 5.0, "emb_init_std": 0.01, "logged_baseline": "value", "pool_context": False, "rl_samples": 2}
    assert saved["train"]["genco_options"] == expected
    assert {k: saved["model"][k] for k in expected} == expected


# ------------------------------------------------------------------------------------------- reproduce, demo
def test_reproduce_passes_genco_options_to_the_genco_variants_only(release, tmp_path):
    from reference_model.reproduce import ReproduceConfig, run_reproduce

    opts = {"emb_init_std": 0.01, "pool_context": False}
    cfg = ReproduceConfig(data=str(release), out=str(tmp_path / "r"), seeds=1, quick=True, jobs=1, quiet=True,
                          methods=("genco", "f_ele", "mlp"), overrides={"epochs": 1}, genco_options=opts)
    run_reproduce(cfg)
    for method in ("genco", "f_ele"):
        saved = json.loads((tmp_path / "r" / "runs" / method / "seed0" / "config.json").read_text())
        assert saved["train"]["genco_options"] == opts and saved["model"]["pool_context"] is False
    assert json.loads((tmp_path / "r" / "runs" / "mlp" / "seed0" / "config.json").read_text())["train"]["genco_options"] == {}
    assert "config overrides (`--genco-set`): emb_init_std=0.01, pool_context=False" in (tmp_path / "r" / "results.md").read_text()


def test_reproduce_quick_writes_every_artefact_and_verifiable_submissions(release, tmp_path):
    from genco_data.leaderboard import verify_submission
    from reference_model.reproduce import METHOD_ORDER, ReproduceConfig, run_reproduce

    out = tmp_path / "repro"
    rep = run_reproduce(ReproduceConfig(data=str(release), out=str(out), seeds=2, quick=True, jobs=1, quiet=True))
    for name in ("results.md", "results.json", "table2.png", "table3.png", "table4.png", "figure3.png"):
        assert (out / name).is_file(), name
    text = (out / "results.md").read_text()
    assert "Table 2" in text and "Table 3" in text and "Table 4" in text and "Figure 3" in text
    agg = json.loads((out / "results.json").read_text())["aggregate"]
    assert set(agg["table2"]) == set(METHOD_ORDER) and set(agg["table3"]) == {"wo_mil", "wo_rl", "wo_context", "wo_all"}
    assert agg["table2"]["genco"]["true_ctr"]["n"] == 2
    fig = rep["figure3"]
    assert fig["components"] == list(COMPONENTS) and all(abs(sum(w) - 1) < 1e-6 for w in fig["weights"])
    for m in METHOD_ORDER:
        entry = verify_submission(out / "submissions" / m / "submission.json", release, min_seeds=2)
        assert entry.seeds == [0, 1]
    first_runs = json.loads((out / "results.json").read_text())["runs"]
    assert first_runs and not any(r["reused"] for r in first_runs)
    # a second run reuses the finished runs: flagged, and the run folders are not retrained (files untouched)
    models = {s: out / "runs" / "genco" / f"seed{s}" / MODEL_NAME for s in (0, 1)}
    stamps = {s: (p.stat().st_mtime_ns, p.read_bytes()) for s, p in models.items()}
    again = run_reproduce(ReproduceConfig(data=str(release), out=str(out), seeds=2, quick=True, jobs=1, quiet=True, methods=("genco",)))
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["method"], r["seed"], r["reused"]) for r in runs] == [("genco", 0, True), ("genco", 1, True)]
    assert {s: (p.stat().st_mtime_ns, p.read_bytes()) for s, p in models.items()} == stamps
    before = {(r["method"], r["seed"]): r["sha256"] for r in first_runs}
    assert all(r["sha256"] == before[("genco", r["seed"])] for r in runs)  # the same predictions again
    assert again["methods"] == ["genco"]


def test_demo_runs_end_to_end_and_is_rerunnable(tmp_path):
    from reference_model.demo import run_demo

    out = tmp_path / "demo"
    rep = run_demo(out, size="tiny", quiet=True, echo=False)
    assert {r["method"] for r in rep["methods"]} == {"uniform", "dco", "mlp", "genco", "genco_bc"}
    assert (out / "LEADERBOARD.md").is_file() and len(list((out / "leaderboard").glob("*.json"))) == 5
    assert "Leaderboard" in rep["text"] and "headroom" in rep["text"]
    first = (out / "submissions" / "genco" / "seed0.parquet").read_bytes()
    run_demo(out, size="tiny", quiet=True, echo=False)
    assert (out / "submissions" / "genco" / "seed0.parquet").read_bytes() == first
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(InvalidInputError, match="holds no earlier demo"):
        run_demo(other, size="tiny", quiet=True, echo=False)
    assert (other / "thesis.tex").read_text() == "precious"


def test_no_pickle_in_the_reference_model_code():
    for f in (ROOT / "reference_model").glob("*.py"):
        src = f.read_text()
        assert "torch.load(" not in src and "import pickle" not in src and "allow_pickle=True" not in src, f.name
