"""Truth after every epoch (the tuning experiments of benchmarks/README.md, "Reference protocol"): train one epoch at
a time (``--resume`` to the next), predict and evaluate against the world after each. For tuning seeds only.

    python benchmarks/protocol_curve.py --data R --out /tmp/c --seed 100 --epochs 9                       # GenCO
    python benchmarks/protocol_curve.py --data R --out /tmp/w --seed 100 --epochs 5 --set method=wo_rl --modes sample,greedy
    python benchmarks/protocol_curve.py --data R --out /tmp/x --seed 100 --epochs 2 --set vocab=exact
    python benchmarks/protocol_curve.py --data R --out /tmp/n --seed 100 --epochs 3 --blank-context-ids
    python benchmarks/protocol_curve.py --data R --out /tmp/v --seed 100 --epochs 7 --reference --from-epoch 3

``--reference``: the reference protocol instead (``genco train``'s defaults: validation on the last train days,
``min_epochs``), run to ``--epochs`` without early stopping; every epoch's weights are kept, and each line also gives
the validation score, its standard error and the epoch the early stopping of ``genco train`` would have selected
by then — the data for tuning the selection rule (benchmarks/README.md, "Model selection"). ``--from-epoch``:
predict from that epoch on (earlier ones are still trained and validated).

Settings: Adam, lr 1e-3, no validation days (every train day trained on), prediction seed 0; ``--set NAME=VALUE``
overrides TrainConfig fields (JSON values). ``--blank-context-ids`` maps every ``user_id`` and ``query_id`` to the OOV
index in training and prediction (the id-table suspect of issue #15 part 4). The anchor is the oracle: the figure
is the headroom captured, (V − V_uniform) / (V_oracle − V_uniform), per epoch.
"""
from __future__ import annotations

import argparse
import json


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--modes", default="sample")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--blank-context-ids", action="store_true")
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--from-epoch", type=int, default=1)
    a = ap.parse_args()

    import reference_model.predict as P
    import reference_model.train as T
    from genco_data.evaluate import Evaluator
    from reference_model.train_config import TrainConfig

    if a.blank_context_ids:
        def blank(b):
            b.user_id.fill_(1)  # OOV_INDEX
            b.query_id.fill_(1)
            return b

        plan, pad = T.plan_rows, P.pad_table

        def planned(*args, **kw):
            rows = plan(*args, **kw)
            if rows.resident is None:
                raise SystemExit("--blank-context-ids needs resident train rows")
            blank(rows.resident)
            return rows

        T.plan_rows = planned
        P.pad_table = lambda *args, **kw: blank(pad(*args, **kw))
    extra = {}
    for item in a.set:
        k, v = item.split("=", 1)
        try:
            extra[k] = json.loads(v)
        except json.JSONDecodeError:
            extra[k] = v
    ev = Evaluator(a.data)
    if a.reference:
        return _reference_curve(a, extra, ev)
    for e in range(1, a.epochs + 1):
        kw = dict(data=a.data, out=a.out, epochs=e, quiet=True, save_every=0, threads=1)
        if e == 1:
            T.train(TrainConfig(**{"seed": a.seed, "optimizer": "adam", "lr": 1e-3, "validation_days": 0, "patience": 0, **extra, **kw}))
        else:
            T.train(TrainConfig(out=a.out, resume=True, epochs=e, quiet=True, save_every=0))
        rec = {"epoch": e}
        for mode in a.modes.split(","):
            path = f"{a.out}/pred_epoch{e}_{mode}.parquet"
            P.predict(a.out, a.data, path, seed=0, mode=None if mode == "default" else mode)
            rec[f"headroom_{mode}"] = round(100 * ev.evaluate(path).summary_metrics()["headroom_captured"], 2)
        print(json.dumps(rec), flush=True)
    return 0


def _reference_curve(a: argparse.Namespace, extra: dict, ev) -> int:
    """One reference-protocol run to ``a.epochs`` (patience 0), every epoch's weights kept, then the truth per epoch."""
    import shutil
    from pathlib import Path

    import reference_model.predict as P
    import reference_model.train as T
    from reference_model.checkpoint import BEST_NAME, _save_tensors
    from reference_model.train_config import TrainConfig
    from reference_model.validation import score_se

    out = Path(a.out)
    validate = T.validate_epoch

    def keep_every_epoch(policy, method, blocks, seed, device, prog, stopper, meta, out_, master, bar=None):
        validate(policy, method, blocks, seed, device, prog, stopper, meta, out_, master, bar)
        _save_tensors(out_ / f"epoch{prog.epoch}.safetensors", policy.state_dict(), {})

    T.validate_epoch = keep_every_epoch
    T.train(TrainConfig(**{"seed": a.seed, "patience": 0, **extra, "data": a.data, "out": a.out, "epochs": a.epochs,
                           "quiet": True, "save_every": 0, "threads": 1}))
    meta = json.loads((out / "config.json").read_text())
    curve = meta["validation"]["curve"]
    best = out / BEST_NAME
    shutil.copyfile(best, out / "best.selected.safetensors")
    for rec in curve:
        e = rec["epoch"]
        line = {"epoch": e, "validation_score": round(rec["score"], 5), "validation_se": round(score_se(rec), 5)}
        if e >= a.from_epoch:
            shutil.copyfile(out / f"epoch{e}.safetensors", best)  # load_run reads the selected weights
            for mode in a.modes.split(","):
                path = out / f"pred_epoch{e}_{mode}.parquet"
                P.predict(a.out, a.data, path, seed=0, mode=None if mode == "default" else mode)
                line[f"headroom_{mode}"] = round(100 * ev.evaluate(path).summary_metrics()["headroom_captured"], 2)
        print(json.dumps(line), flush=True)
    shutil.copyfile(out / "best.selected.safetensors", best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
