"""The ``genco train | predict | reproduce | demo`` verbs (``genco_data.cli`` forwards them here by name).

``add_arguments(verb)`` registers the four sub-commands (``verb(name, help)`` returns an argparse parser that
already has ``--json`` and ``--quiet``); each function takes the parsed namespace and returns
``(payload, text)`` for the CLI to print. User mistakes raise :class:`genco_data.errors.GencoError` (one line,
exit 2).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from genco_data.errors import InvalidInputError

__all__ = ["add_arguments", "train", "predict", "reproduce", "demo"]


def add_arguments(verb: Callable[[str, str], argparse.ArgumentParser]) -> None:
    from reference_model.config import INFERENCE_MODES
    from reference_model.reproduce_config import DEFAULT_SEEDS
    from reference_model.train import add_genco_set_argument, add_train_arguments
    from reference_model.train_config import METHODS

    sp = verb("train", f"train a reference policy ({', '.join(METHODS)}) on a release's train split")
    add_train_arguments(sp)

    sp = verb("predict", "write a trained run's predictions for a release's test split (the evaluator's contract)")
    sp.add_argument("--model", required=True, help="run folder written by `genco train`")
    sp.add_argument("--data", required=True, help="release folder")
    sp.add_argument("--out", required=True, help="predictions .parquet file to write")
    sp.add_argument("--mode", default=None, help=f"GenCO inference: {', '.join(INFERENCE_MODES)} (default: the model's, sample)")
    sp.add_argument("--prediction-seed", "--seed", dest="seed", type=int, default=0, help="prediction seed: the sampled "
                    "combinations (and uniform's draws), independent of the run's training seed (default 0)")
    sp.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    sp.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")

    sp = verb("reproduce", "every method and ablation x seeds -> predictions -> evaluation: Tables 2-4, Figure 3, submissions")
    sp.add_argument("--data", required=True, help="release folder")
    sp.add_argument("--out", required=True, help="output folder (tables, figures, runs/, submissions/)")
    sp.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"seeds per method (default {DEFAULT_SEEDS})")
    sp.add_argument("--quick", action="store_true", help="a smoke run, not a ranking: 2 seeds, fewer rows, 1 epoch (checks that every "
                    "method trains, predicts and evaluates)")
    sp.add_argument("--methods", default=None, help="comma-separated subset of the methods (default: all)")
    sp.add_argument("--jobs", type=int, default=None, help="runs in parallel, one CPU thread each (default: CPU count, at most 4)")
    sp.add_argument("--device", default="cpu", help="cpu (default) or cuda (then one job at a time)")
    sp.add_argument("--prediction-seed", type=int, default=None, help="seed of every run's prediction draws, the same for all "
                    "training seeds so that the seed spread is the training noise alone (default: each run's training seed)")
    add_genco_set_argument(sp)

    sp = verb("demo", "synthesize a small release, build, load, train GenCO and baselines, evaluate, leaderboard")
    sp.add_argument("--out", default="demo_out", help="demo folder (replaced if it holds an earlier demo; default demo_out)")
    sp.add_argument("--size", default="default", help=argparse.SUPPRESS)  # "tiny" for the tests


def train(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from reference_model.train import config_from_args, format_summary
    from reference_model.train import train as run

    summary = run(config_from_args(args))
    return summary, format_summary(summary)


def predict(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from reference_model.predict import format_predict
    from reference_model.predict import predict as run

    if args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1; got {args.threads}")
    summary = run(args.model, args.data, args.out, mode=args.mode, seed=args.seed, device=args.device,
                  threads=args.threads, progress=not args.quiet)
    return summary, format_predict(summary)


def reproduce(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from reference_model.reproduce import ReproduceConfig, format_reproduce, run_reproduce

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else None
    from reference_model.config import GenCOConfig

    cfg = ReproduceConfig(data=args.data, out=args.out, seeds=args.seeds, quick=args.quick, methods=methods,
                          jobs=args.jobs, device=args.device, quiet=args.quiet, prediction_seed=args.prediction_seed, genco_options=GenCOConfig.parse_options(args.genco_set))
    report = run_reproduce(cfg)
    return report, format_reproduce(report)


def demo(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from reference_model.demo import run_demo

    report = run_demo(args.out, size=args.size, quiet=args.quiet, echo=not args.json)
    return report, report["text"]
