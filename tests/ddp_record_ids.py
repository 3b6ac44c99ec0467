"""Run ``reference_model.train`` and record, per process, the impression ids of every training step.

    python -m torch.distributed.run --nproc-per-node 2 tests/ddp_record_ids.py IDS_DIR --data REL --out RUN ...

Independent evidence for the DDP tests: the ids come from the batches the loss is computed on (the probe that
DDP's set-up runs in eval mode is left out), not from the trainer's own report. Rank ``r`` writes
``IDS_DIR/rank<r>.txt``, one id per line, in step order.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from reference_model import policies
from reference_model.train import main

ids_dir = Path(sys.argv.pop(1))
ids_dir.mkdir(parents=True, exist_ok=True)
sink = open(ids_dir / f"rank{os.environ.get('RANK', '0')}.txt", "w", encoding="utf-8")  # noqa: SIM115 - closed at exit
forward = policies.Objective.forward


def recording_forward(self, batch, generator=None):
    if self.policy.training:
        sink.write("".join(f"{x}\n" for x in batch.impression_id.to_pylist()))
        sink.flush()
    return forward(self, batch, generator)


policies.Objective.forward = recording_forward
code = main()
sink.close()
sys.exit(code)
