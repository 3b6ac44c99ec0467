"""Where a submitted policy loses the headroom the fixed-effect logit anchor keeps, component by component.

On a release with its ``world/`` (the maintainer's, or a synthesized one), the anchor of ``benchmarks/learnable.py``
is fitted on the train days the reference protocol trains on (all but the last ``--validation-days``; and, for
comparison, on all of them). Then, per seed of a submission and per component j, the policy "anchor everywhere but
the submission's choice on j" is scored by the planted truth: the headroom it loses against the anchor is what the
submission's scoring of component j costs, and how often it agrees with the anchor's choice says how different
the rankings are. The per-component losses add up to the whole gap when the components act independently, which
they do in the simulator (the click logit is additive across components, ``genco_data/synth/world.py``)::

    python benchmarks/anchor_gap.py --data board_rel --submission board_repro/submissions/genco
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from genco_data.errors import PredictionsError
from genco_data.evaluate.evaluator import Evaluator
from genco_data.format.components import COMPONENTS, N_COMPONENTS
from genco_data.synth import World
from learnable import Headroom, _argmax_per_pool, _split, fixed_effect_logit, split_last_days


def _anchor_choices(train: pa.Table, test: pa.Table) -> np.ndarray:
    effects, _ = fixed_effect_logit(train)
    return np.stack([_argmax_per_pool(test, j, effects[j]) for j in range(N_COMPONENTS)], 1)


def measure(release: Path, submission: Path, validation_days: int) -> dict:
    ev = Evaluator(release, world=None)
    # the evaluator's own test split, so that checked choices and the rows they are scored on share one order
    train, test = _split(release, "train"), ev.requests
    headroom = Headroom.of(World.load(release), test)
    days = len(np.unique(train.column("day").to_numpy()))
    if days <= validation_days:
        raise SystemExit(f"{release}: the train split has {days} day(s); --validation-days {validation_days} leaves none to fit on")
    anchor = _anchor_choices(split_last_days(train, validation_days)[0], test)
    out = {"anchor_all_days": headroom.captured(_anchor_choices(train, test)), "anchor": headroom.captured(anchor), "seeds": {}}
    for path in sorted(submission.glob("seed*.parquet")):
        try:
            mine = ev.check_predictions(path)
        except PredictionsError as exc:
            raise SystemExit(str(exc)) from None
        row = {"captured": headroom.captured(mine), "components": {}}
        for j, c in enumerate(COMPONENTS):
            hybrid = anchor.copy()
            hybrid[:, j] = mine[:, j]
            shown = anchor[:, j] >= 0
            row["components"][c] = {"loss": out["anchor"] - headroom.captured(hybrid),
                                    "agreement": float((mine[shown, j] == anchor[shown, j]).mean())}
        out["seeds"][path.stem] = row
    return out


def _text(r: dict) -> str:
    seeds = list(r["seeds"].values())
    mean = float(np.mean([s["captured"] for s in seeds]))
    lines = [f"anchor (fixed-effect logit) on the protocol's train days {r['anchor']:.1f} % (all train days "
             f"{r['anchor_all_days']:.1f} %); submission {mean:.1f} % over {len(seeds)} seeds; gap {r['anchor'] - mean:.1f} points",
             "component             headroom lost (points)   agreement with the anchor"]
    total = 0.0
    for c in COMPONENTS:
        loss = [s["components"][c]["loss"] for s in seeds]
        agree = [s["components"][c]["agreement"] for s in seeds]
        total += float(np.mean(loss))
        lines.append(f"{c:21s} {np.mean(loss):6.1f} ± {np.std(loss, ddof=1) if len(loss) > 1 else 0.0:.1f}"
                     f"             {100 * np.mean(agree):4.0f} %")
    lines.append(f"sum of the per-component losses {total:.1f} points")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a release with world/")
    ap.add_argument("--submission", type=Path, required=True, help="a folder of seed*.parquet predictions files")
    ap.add_argument("--validation-days", type=int, default=2, help="train days the protocol holds out (reference: 2)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = measure(args.data, args.submission, args.validation_days)
    print(json.dumps(r, indent=2) if args.json else _text(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
