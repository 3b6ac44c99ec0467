"""Training that streams: the streamed path steps on the same batches as the resident one (same bytes), resumes
mid-epoch at the right row, and under DDP each rank streams only its own chronological range."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from genco_data.load import TENSOR_FIELDS  # noqa: E402
from genco_data.release import Release  # noqa: E402
from reference_model.checkpoint import MODEL_NAME, read_run_config  # noqa: E402
from reference_model.train import train  # noqa: E402
from reference_model.train_config import TrainConfig  # noqa: E402
from reference_model.train_data import plan_rows, train_vocabularies  # noqa: E402
from test_train import TRAIN_ROWS, release, run_ddp, train_ids  # noqa: E402,F401  (release: the session fixture)


def test_streamed_and_resident_runs_are_the_same_bytes(release, tmp_path):
    kw = dict(data=str(release), epochs=2, max_rows=1536, batch_size=256, quiet=True, seed=4, save_every=0, protocol="paper")
    a = train(TrainConfig(out=str(tmp_path / "resident"), stream="never", **kw))
    b = train(TrainConfig(out=str(tmp_path / "streamed"), stream="always", **kw))
    c = train(TrainConfig(out=str(tmp_path / "auto-tiny-budget"), memory_budget_gb=1e-6, **kw))  # over budget: streams
    assert a["steps"] == b["steps"] == c["steps"] == 2 * 6
    modes = [read_run_config(tmp_path / k)["data"]["mode"] for k in ("resident", "streamed", "auto-tiny-budget")]
    assert modes == ["resident", "streamed", "streamed"]
    assert read_run_config(tmp_path / "streamed")["data"]["rows"] == [TRAIN_ROWS - 1536, TRAIN_ROWS]  # the most recent rows
    model = [(tmp_path / k / MODEL_NAME).read_bytes() for k in ("resident", "streamed", "auto-tiny-budget")]
    assert model[0] == model[1] == model[2]
    vocab = read_run_config(tmp_path / "streamed")["vocab"]
    assert vocab["mode"] == "hashed" and vocab["tables"]["title"]["size_from"] == "manifest"
    stats = json.loads((release / "manifest.json").read_text())["stats"]
    assert vocab["tables"]["title"]["rows"] == stats["components"]["title"]["distinct_ids"] + 2  # the paper's sizing


def test_a_resumed_streamed_epoch_starts_at_the_right_row(release):
    rel = Release.open(release)
    cfg = TrainConfig(data=str(release), quiet=True)
    vocabs = train_vocabularies(cfg, rel)
    kw = dict(rank=1, world_size=2, local_batch=250, whole=False)  # full batches: 2 x 250 divides the 4,000 rows
    resident = plan_rows(TrainConfig(data=str(release), stream="never"), rel, vocabs, **kw)
    streamed = plan_rows(TrainConfig(data=str(release), stream="always"), rel, vocabs, **kw)
    assert (resident.lo, resident.hi) == (streamed.lo, streamed.hi) == (TRAIN_ROWS // 2, TRAIN_ROWS)
    for first in (0, 3, 6):
        want, got = list(resident.batches(first, 250)), list(streamed.batches(first, 250))
        assert len(got) == len(want) == streamed.steps(250) - first
        for w, g in zip(want, got):
            assert w.impression_id.equals(g.impression_id)
            assert all(torch.equal(getattr(w, k), getattr(g, k)) for k in TENSOR_FIELDS)
    assert list(streamed.batches(0, 250))[0].impression_id.equals(resident.resident[:250].impression_id)  # skip reset


def test_ddp_streamed_ranks_each_read_their_own_range(release, tmp_path):
    summary = run_ddp(release, tmp_path / "run", tmp_path / "ids", "--stream", "always")
    assert summary["world_size"] == 2 and summary["samples"] == TRAIN_ROWS
    seen = [(tmp_path / "ids" / f"rank{r}.txt").read_text().split() for r in range(2)]
    every = train_ids(release)
    assert seen[0] == every[: TRAIN_ROWS // 2] and seen[1] == every[TRAIN_ROWS // 2 :]  # disjoint, covering, in order
    assert read_run_config(tmp_path / "run")["data"]["mode"] == "streamed"
