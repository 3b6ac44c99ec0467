"""``genco …`` — argument parsing and printing only; every verb calls one library function.

User mistakes (any :class:`genco_data.errors.GencoError`, a missing file) print one line
``genco <verb>: error: <reason>`` on stderr and exit 2; no traceback. ``--json`` prints machine-readable
output on stdout; ``--quiet`` hides progress bars.

``train``, ``predict``, ``reproduce`` and ``demo`` live in the ``reference_model`` package (which needs torch);
they are looked up by name at call time so that ``genco_data`` never imports ``reference_model``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from genco_data import __version__
from genco_data.errors import GencoError

VERBS: dict[str, Callable[[argparse.Namespace], Any]] = {}


def _verb(name: str):
    def deco(fn):
        VERBS[name] = fn
        return fn

    return deco


def _emit(args: argparse.Namespace, payload: Any, text: str | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True, default=str))
    elif text is not None:
        print(text)


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {s!r}") from None


# ----------------------------------------------------------------------------------------------- verbs
@_verb("synth")
def _synth(args):
    from genco_data.synth import SynthConfig, simulate

    sizes = {k: v for k, v in (("train_rows", args.train_rows), ("test_rows", args.test_rows)) if v is not None}
    cfg = SynthConfig.with_settings(args.set, args.preset, seed=args.seed, **sizes)
    summary = simulate(cfg, Path(args.out), progress=not args.quiet)
    _emit(args, summary, f"wrote {summary['train_rows']:,} train + {summary['test_rows']:,} test rows to {args.out}")


@_verb("build")
def _build(args):
    from genco_data.pipeline import BuildConfig, build_release

    cfg = BuildConfig(
        sources=[Path(s) for s in args.sources],
        out=Path(args.out),
        version=args.version,
        max_reject_rate=args.max_reject_rate,
        test_start_day=args.test_start_day,
        overwrite=args.overwrite,
    )
    result = build_release(cfg, progress=not args.quiet)
    d = result.to_dict()
    _emit(args, d, result.summary())


@_verb("verify")
def _verify(args):
    from genco_data.release import verify_release

    report = verify_release(Path(args.release))
    _emit(args, report, f"OK {args.release}: {report['files']} files, {report['rows']:,} rows verified")


@_verb("stats")
def _stats(args):
    from genco_data.build.stats import format_stats, release_stats

    stats = release_stats(Path(args.release), split=args.split)
    _emit(args, stats, format_stats(stats))


@_verb("evaluate")
def _evaluate(args):
    from genco_data.evaluate.evaluator import Evaluator
    from genco_data.evaluate.report import format_validity
    from genco_data.evaluate.validity import metric_validity

    if args.validity:
        report = metric_validity(Path(args.data), n_policies=args.policies, seed=args.seed, progress=not args.quiet)
        _emit(args, report, format_validity(report))
        return
    if not args.predictions:
        raise GencoError("a predictions file is required (or --validity)")
    evaluator = Evaluator(Path(args.data))
    result = evaluator.evaluate(Path(args.predictions), bootstrap=args.bootstrap, seed=args.seed)
    _emit(args, result.to_dict(), result.format_table())


@_verb("leaderboard")
def _leaderboard(args):
    from genco_data import leaderboard as lb

    if args.action == "verify":
        entry = lb.verify_submission(Path(args.submission), Path(args.data), entries_dir=Path(args.entries))
        _emit(args, entry.model_dump(mode="json"), f"verified {entry.method}: entry written to {args.entries}")
    else:
        path = lb.render_leaderboard(Path(args.entries), Path(args.out))
        _emit(args, {"written": str(path)}, f"wrote {path}")


@_verb("card")
def _card(args):
    from genco_data.card.card import FIGURES_DIR, render_card
    from genco_data.card.figures import FIGURES
    from genco_data.card.options import CardOptions
    from genco_data.pipeline import write_default_card

    if args.default:
        if args.release or args.repo or args.changelog or args.license:
            raise GencoError("--default renders the embedded default release; give no RELEASE, --repo, --changelog or --license")
        paths = write_default_card(Path(args.root), progress=not args.quiet)
        _emit(args, {"written": [str(p) for p in paths]}, "wrote " + ", ".join(str(p) for p in paths))
        return
    if not args.release:
        raise GencoError("a RELEASE folder is required (or --default)")
    options = CardOptions(repo_id=args.repo, changelog=Path(args.changelog) if args.changelog else None, license=args.license)
    path = render_card(Path(args.release), options)
    figures = [str(Path(args.release) / FIGURES_DIR / f) for f in FIGURES]
    _emit(args, {"written": str(path), "figures": figures}, f"wrote {path} and {len(figures)} figures in {Path(args.release) / FIGURES_DIR}")


@_verb("publish")
def _publish(args):
    from genco_data.hub import publish

    plan = publish(Path(args.release), args.repo, tag=args.tag, private=args.private, dry_run=args.dry_run, progress=not args.quiet)
    _emit(args, plan.to_dict(), plan.describe())


@_verb("pull")
def _pull(args):
    from genco_data.hub import pull

    report = pull(args.repo, revision=args.revision, out=Path(args.out), progress=not args.quiet)
    _emit(args, report, f"pulled {args.repo}@{args.revision} into {args.out}: {report['files']} files, {report['rows']:,} rows verified")


def _reference(verb: str):
    """Forward ``genco train|predict|reproduce|demo`` to ``reference_model.entry``."""

    def run(args):
        try:
            entry = importlib.import_module("reference_model.entry")
        except ImportError as exc:
            raise GencoError(f"`genco {verb}` needs the reference model and torch: pip install 'genco-data[torch]' ({exc})") from None
        result = getattr(entry, verb)(args)
        if result is not None:
            payload, text = result
            _emit(args, payload, text)

    return run


for _v in ("train", "predict", "reproduce", "demo"):
    VERBS[_v] = _reference(_v)


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genco", description="The GenCO creative-optimization dataset: build, load, evaluate, publish.")
    p.add_argument("--version", action="version", version=f"genco-data {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        return sp

    sp = verb("synth", "simulate raw logs (production-logged train days, uniform-logged test days) + the ground-truth world")
    sp.add_argument("--out", required=True, help="folder for raw Parquet shards and world/")
    sp.add_argument("--train-rows", type=int, default=None, help="default: the preset's (200,000; benchmark 2,000,000)")
    sp.add_argument("--test-rows", type=int, default=None, help="default: the preset's (50,000; benchmark 2,000,000)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--preset", default="default", help="named settings: default (the Table-1 world), benchmark (the same "
                    "world at the leaderboard's size), learnable (0.2's world: shared catalogs of 16), sparse (the first "
                    "release's world: an element per pool slot)")
    sp.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="any other SynthConfig field, e.g. --set zipf_exponent=1.1 --set quality_scale=0.1 (repeatable)")

    sp = verb("build", "validate raw Parquet/JSONL/CSV and write a release folder")
    sp.add_argument("sources", nargs="+", help="raw files or folders (Parquet, JSONL, CSV); a world/ inside is carried over")
    sp.add_argument("--out", required=True, help="release folder to create")
    sp.add_argument("--version", required=True, help="dataset version, semver X.Y.Z")
    sp.add_argument("--max-reject-rate", type=float, default=0.01, help="fail when more than this share of rows is rejected (default 0.01)")
    sp.add_argument("--test-start-day", type=_date, default=None, help="first test day (default: the simulator's, else required)")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing release at --out")

    sp = verb("verify", "re-check a release: checksums, row counts, schema, format version")
    sp.add_argument("release")

    sp = verb("stats", "Table-1 statistics of a release")
    sp.add_argument("release")
    sp.add_argument("--split", default="train", choices=["train", "test"])

    sp = verb("evaluate", "calibrated sCTR (+ CIs, buckets, truth on synthetic releases) of a predictions file")
    sp.add_argument("predictions", nargs="?", help="predictions Parquet (DESIGN.md contract)")
    sp.add_argument("--data", required=True, help="release folder")
    sp.add_argument("--bootstrap", type=int, default=0, help="also bootstrap CIs with N resamples")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--validity", action="store_true", help="metric validity study over many policies (synthetic releases)")
    sp.add_argument("--policies", type=int, default=60, help="policies drawn by --validity")

    sp = verb("leaderboard", "verify a submission by recomputation, or render the board")
    lsub = sp.add_subparsers(dest="action", required=True)
    lv = lsub.add_parser("verify", help="verify a submission JSON against a release")
    lv.add_argument("submission")
    lv.add_argument("--data", required=True, help="release folder")
    lv.add_argument("--entries", default="cards/leaderboard", help="where verified entries are written")
    lr = lsub.add_parser("render", help="render the board from verified entries")
    lr.add_argument("--entries", default="cards/leaderboard")
    lr.add_argument("--out", default="cards/LEADERBOARD.md")
    for x in (lv, lr):
        x.add_argument("--json", action="store_true")
        x.add_argument("--quiet", action="store_true")

    sp = verb("card", "render a release's README.md (dataset card) and figures/")
    sp.add_argument("release", nargs="?", help="release folder")
    sp.add_argument("--repo", default=None, help="Hub id ORG/NAME shown in the card's loading snippets (default: a placeholder)")
    sp.add_argument("--changelog", default=None, help="Markdown file with one '## X.Y.Z — title' section per version "
                    "(default: the package's for genco_data.synth releases, else a stub)")
    sp.add_argument("--license", default=None, help="Hub license id (default: cc-by-4.0 for synthetic releases, unknown for raw)")
    sp.add_argument("--default", action="store_true", help="build the embedded default release in a temporary folder and "
                    "write DATASET_CARD.md and cards/figures/ under --root")
    sp.add_argument("--root", default=".", help="repository root for --default (default: .)")

    sp = verb("publish", "verify a release, upload it to a Hugging Face dataset repo and tag it (credentials: HF_TOKEN or `hf auth login`)")
    sp.add_argument("release")
    sp.add_argument("--repo", required=True, help="ORG/NAME dataset repo (created if missing)")
    sp.add_argument("--tag", default=None, help="tag to create (default v<dataset_version>; tags are immutable)")
    sp.add_argument("--private", action="store_true", help="create the repo private (when it does not exist yet)")
    sp.add_argument("--dry-run", action="store_true", help="print the exact plan (files, sizes, sha256, tag); touch nothing")

    sp = verb("pull", "download a version from the Hub and verify every file against its manifest")
    sp.add_argument("repo", help="ORG/NAME dataset repo")
    sp.add_argument("--revision", required=True, help="version tag, e.g. v1.0.0")
    sp.add_argument("--out", required=True, help="new or empty folder (or an earlier pull, to resume)")

    try:
        entry = importlib.import_module("reference_model.entry")
        add_reference_verbs: Callable[[Callable[[str, str], argparse.ArgumentParser]], None] | None = entry.add_arguments
    except ImportError:
        add_reference_verbs = None
    if add_reference_verbs is not None:
        add_reference_verbs(verb)
    else:
        for name in ("train", "predict", "reproduce", "demo"):
            verb(name, "(needs torch: pip install 'genco-data[torch]')")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.verb
    try:
        VERBS[name](args)
    except GencoError as exc:
        print(f"genco {name}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"genco {name}: error: no such file: {exc.filename or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genco {name}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
