"""``genco …`` — argument parsing and printing only; every verb calls one library function.

User mistakes (any :class:`genco_data.errors.GencoError`, a missing file, a bad argument) print one line
``genco <verb>: error: <reason>`` on stderr and exit 2; no traceback. ``--json`` prints machine-readable
output on stdout — on success the verb's result, on failure the envelope
``{"error": "<reason>", "kind": "<error class>", "exit_code": 2}`` (argument errors: kind ``usage``; an
unexpected crash: exit code 1 and its traceback on stderr). Progress bars (tqdm, stderr) are drawn only when stderr is a
terminal, so a log or a pipe gets exactly the one error line on failure; ``--quiet`` hides them on a terminal too, and
``GENCO_PROGRESS=1`` forces them where stderr is not a terminal.

Fast start: this module imports only the standard library and ``genco_data.errors`` at load time; each verb
imports what it uses when it runs, so ``genco --version`` and ``genco --help`` pay for no pyarrow, pydantic,
datasets or torch (``tests/test_cli_start.py`` guards the import set).

``train``, ``predict``, ``reproduce`` and ``demo`` live in the ``reference_model`` package (which needs torch);
they are looked up by name at call time so that ``genco_data`` never imports ``reference_model``, and their
options are registered (``reference_model.entry.add_arguments``) only when one of them is the verb asked for.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

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


def _progress(args: argparse.Namespace) -> bool:
    """Draw progress bars? Not with --quiet; otherwise only on a terminal (or when GENCO_PROGRESS=1)."""
    if getattr(args, "quiet", False):
        return False
    return os.environ.get("GENCO_PROGRESS") == "1" or sys.stderr.isatty()


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
    summary = simulate(cfg, Path(args.out), progress=_progress(args))
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
        workers=args.workers,
        rows_per_shard=args.rows_per_shard,
        row_group_rows=args.row_group_rows,
        engine=args.engine,
        ray_address=args.ray_address,
    )
    result = build_release(cfg, progress=_progress(args))
    d = result.to_dict()
    _emit(args, d, result.summary())


@_verb("verify")
def _verify(args):
    from genco_data.release import verify_release

    report = verify_release(Path(args.release), progress=_progress(args))
    world = " (world/ withheld: pinned by the manifest, not here)" if report.get("world") == "withheld" else ""
    _emit(args, report, f"OK {args.release}: {report['files']} files, {report['rows']:,} rows verified{world}")


@_verb("stats")
def _stats(args):
    from genco_data.build.stats import format_stats, release_stats

    stats = release_stats(Path(args.release), split=args.split, progress=_progress(args))
    _emit(args, stats, format_stats(stats))


@_verb("evaluate")
def _evaluate(args):
    from genco_data.evaluate.evaluator import Evaluator
    from genco_data.evaluate.report import format_validity
    from genco_data.evaluate.validity import metric_validity

    if args.validity:
        report = metric_validity(Path(args.data), n_policies=args.policies, seed=args.seed, progress=_progress(args))
        _emit(args, report, format_validity(report))
        return
    if not args.predictions:
        raise GencoError("a predictions file is required (or --validity)")
    evaluator = Evaluator(Path(args.data))
    result = evaluator.evaluate(Path(args.predictions), bootstrap=args.bootstrap, seed=args.seed, progress=_progress(args))
    _emit(args, result.to_dict(), result.format_table())


@_verb("leaderboard")
def _leaderboard(args):
    if args.action == "verify":
        from genco_data.leaderboard.verify import verify_submission

        world = Path(args.world) if args.world else None
        entry = verify_submission(Path(args.submission), Path(args.data), entries_dir=Path(args.entries), world=world)
        _emit(args, entry.model_dump(mode="json"), f"verified {entry.method}: entry written to {args.entries}")
    elif args.action == "check":
        from genco_data.leaderboard.check import check_entries

        report = check_entries(Path(args.entries), board=Path(args.board) if args.board else None,
                               release_path=Path(args.data) if args.data else None,
                               submissions=Path(args.submissions) if args.submissions else None,
                               world=Path(args.world) if args.world else None, min_seeds=args.min_seeds)
        lines = [f"OK {e['entry']}: {e['method']} v{e['version']}, {e['seeds']} seeds: {'; '.join(e['checks'])}" for e in report["entries"]]
        lines.append(f"{len(report['entries'])} entries re-verified" + (f"; board {report['board']}" if report["board"] else ""))
        _emit(args, report, "\n".join(lines))
    elif args.html:
        from genco_data.board_page import write_space

        files = write_space(Path(args.entries), Path(args.html))
        _emit(args, {"written": [str(f) for f in files]}, f"wrote the leaderboard Space ({len(files)} files) to {args.html}")
    else:
        from genco_data.leaderboard.board import render_leaderboard

        path = render_leaderboard(Path(args.entries), Path(args.out), allow_empty=args.allow_empty)
        _emit(args, {"written": str(path)}, f"wrote {path}")


@_verb("card")
def _card(args):
    from genco_data.card.options import CardOptions
    from genco_data.pipeline import render_release_card, write_default_card

    if args.default:
        if args.release or args.repo or args.changelog or args.license or args.code_url:
            raise GencoError("--default renders the embedded default release; give no RELEASE, --repo, --changelog, --license or --code-url")
        paths = write_default_card(Path(args.root), progress=_progress(args))
        _emit(args, {"written": [str(p) for p in paths]}, "wrote " + ", ".join(str(p) for p in paths))
        return
    if not args.release:
        raise GencoError("a RELEASE folder is required (or --default)")
    options = CardOptions(repo_id=args.repo, changelog=Path(args.changelog) if args.changelog else None, license=args.license,
                          code_url=args.code_url)
    result = render_release_card(Path(args.release), options, progress=_progress(args))
    _emit(args, result.to_dict(), f"wrote {result.card} and {len(result.figures)} figures in {Path(args.release) / 'figures'}")


@_verb("publish")
def _publish(args):
    from genco_data.hub import publish

    plan = publish(Path(args.release), args.repo, tag=args.tag, private=args.private, dry_run=args.dry_run,
                   include_world=args.include_world, progress=_progress(args))
    _emit(args, plan.to_dict(), plan.describe())


@_verb("pull")
def _pull(args):
    from genco_data.hub import pull

    report = pull(args.repo, revision=args.revision, out=Path(args.out), progress=_progress(args))
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


#: The reference model's verbs and their one-line help (the full options are registered by
#: ``reference_model.entry.add_arguments`` only when one of them is the verb asked for).
REFERENCE_VERBS = {
    "train": "train a reference policy (GenCO, its ablations, the baselines) on a release's train split",
    "predict": "write a trained run's predictions for a release's test split (the evaluator's contract)",
    "reproduce": "every method and ablation x seeds -> predictions -> evaluation: Tables 2-4, Figure 3, submissions",
    "demo": "synthesize a small release, build, load, train GenCO and baselines, evaluate, leaderboard",
}
for _v in REFERENCE_VERBS:
    VERBS[_v] = _reference(_v)


# ---------------------------------------------------------------------------------------------- parser
class UsageError(Exception):
    """An argument error; ``main`` prints it (as text, or as the JSON envelope under ``--json``)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing and exiting, so that ``main`` decides
    how a usage error is shown (argparse's usage + one line, or JSON)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


def _requested_verb(argv: list[str]) -> str | None:
    """The verb of a command line: its first non-option word (the top-level options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(verb_hint: str | None = None) -> argparse.ArgumentParser:
    """The ``genco`` parser. The reference model's options are registered for ``verb_hint`` only (the verb
    of the command line), so no other command line imports ``reference_model`` (nor torch)."""
    p = _Parser(prog="genco", description="The GenCO creative-optimization dataset: build, load, evaluate, publish.")
    p.add_argument("--version", action="version", version=f"genco-data {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--json", action="store_true", help="machine-readable output on stdout (errors too: see README, JSON output)")
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
    sp.add_argument("--workers", type=int, default=None, help="processes that validate and encode (default: the machine's cores); "
                    "the output is byte-identical for any number")
    sp.add_argument("--rows-per-shard", type=int, default=None, help="rows per Parquet shard (default: automatic, >= 16 shards "
                    "for a split of >= 1 M rows; every shard also stays <= 500 MB uncompressed)")
    sp.add_argument("--row-group-rows", type=int, default=62_500, help="rows per row group (default 62,500; every row group "
                    "also stays <= 100 MB uncompressed)")
    sp.add_argument("--engine", choices=["local", "ray"], default="local", help="where the work runs: local processes, or Ray "
                    "Data (pip install 'genco-data[ray]')")
    sp.add_argument("--ray-address", default=None, help="with --engine ray: join this Ray cluster (host:port, ray://host:port or auto; default: start a local Ray)")

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

    sp = verb("leaderboard", "verify a submission by recomputation, render the board, or re-check the committed entries")
    lsub = sp.add_subparsers(dest="action", required=True)
    lv = lsub.add_parser("verify", help="verify a submission JSON against a release")
    lv.add_argument("submission")
    lv.add_argument("--data", required=True, help="release folder")
    lv.add_argument("--entries", default="cards/leaderboard", help="where verified entries are written")
    lv.add_argument("--world", default=None, help="the maintainer's world folder of a synthetic release published without "
                    "world/ (checked against the manifest's sha256; default: RELEASE/world when present)")
    lr = lsub.add_parser("render", help="render the board from verified entries")
    lr.add_argument("--entries", default="cards/leaderboard")
    lr.add_argument("--out", default="cards/LEADERBOARD.md")
    lr.add_argument("--allow-empty", action="store_true", help="allow replacing a board that lists entries with an empty one")
    lc = lsub.add_parser("check", help="re-verify every committed entry (hashes, means/stds, recomputation where "
                         "predictions are present) and the rendered board; exit 2 on any problem")
    lc.add_argument("--entries", default="cards/leaderboard")
    lc.add_argument("--board", default="cards/LEADERBOARD.md", help="the rendered board to compare ('' to skip)")
    lc.add_argument("--data", default=None, help="the release the entries pin: re-evaluate entries whose predictions are present")
    lc.add_argument("--submissions", default=None, help="where submission folders are (default: ENTRIES/submissions)")
    lc.add_argument("--world", default=None, help="the maintainer's world folder when --data has no world/")
    lc.add_argument("--min-seeds", type=int, default=5, help="fewest seeds an entry may have (default 5)")
    lr.add_argument("--html", default=None, metavar="DIR", help="write the board as a static Hugging Face Space into DIR "
                    "(README.md with sdk: static, index.html; no network assets) instead of the Markdown board")
    for x in (lv, lr, lc):
        x.add_argument("--json", action="store_true")
        x.add_argument("--quiet", action="store_true")

    sp = verb("card", "render a release's README.md (dataset card) and figures/")
    sp.add_argument("release", nargs="?", help="release folder")
    sp.add_argument("--repo", default=None, help="Hub id ORG/NAME shown in the card's loading snippets (default: a placeholder)")
    sp.add_argument("--changelog", default=None, help="Markdown file with one '## X.Y.Z — title' section per version "
                    "(default: the package's for genco_data.synth releases, else a stub)")
    sp.add_argument("--license", default=None, help="Hub license id (default: cc-by-4.0 for synthetic releases, unknown for raw)")
    sp.add_argument("--code-url", default=None, help="code repository the card links (default: genco-data's Repository project URL)")
    sp.add_argument("--default", action="store_true", help="build the embedded default release in a temporary folder and "
                    "write DATASET_CARD.md and cards/figures/ under --root")
    sp.add_argument("--root", default=".", help="repository root for --default (default: .)")

    sp = verb("publish", "verify a release, upload it to a Hugging Face dataset repo and tag it (credentials: HF_TOKEN or `hf auth login`)")
    sp.add_argument("release")
    sp.add_argument("--repo", required=True, help="ORG/NAME dataset repo (created if missing)")
    sp.add_argument("--tag", default=None, help="tag to create (default v<dataset_version>; tags are immutable)")
    sp.add_argument("--private", action="store_true", help="create the repo private (when it does not exist yet)")
    sp.add_argument("--dry-run", action="store_true", help="print the exact plan (files, sizes, sha256, tag); touch nothing")
    sp.add_argument("--include-world", action="store_true", help="also publish world/ (the ground truth; by default the "
                    "maintainer keeps it and the published manifest only pins its sha256)")

    sp = verb("pull", "download a version from the Hub and verify every file against its manifest")
    sp.add_argument("repo", help="ORG/NAME dataset repo")
    sp.add_argument("--revision", required=True, help="version tag, e.g. v1.0.0")
    sp.add_argument("--out", required=True, help="new or empty folder (or an earlier pull, to resume)")

    for name, help in REFERENCE_VERBS.items():
        if name == verb_hint and _add_reference_verb(name, verb):
            continue
        verb(name, help if name != verb_hint else f"{help} (needs torch: pip install 'genco-data[torch]')")
    return p


def _add_reference_verb(name: str, verb: Callable[[str, str], argparse.ArgumentParser]) -> bool:
    """Register ``name``'s full options from ``reference_model.entry``; False when it cannot be imported."""
    try:
        entry = importlib.import_module("reference_model.entry")
    except ImportError:
        return False
    # entry registers all four verbs; keep the one asked for, the others go to a scratch parser.
    entry.add_arguments(lambda n, h: verb(n, h) if n == name else argparse.ArgumentParser(add_help=False))
    return True


# ------------------------------------------------------------------------------------------------ main
def _fail(name: str, json_mode: bool, message: str, kind: str, code: int = 2) -> int:
    """Print a failure: one line on stderr, or under ``--json`` the envelope on stdout (and the line on stderr)."""
    message = " ".join(str(message).split())  # one line, whatever the exception carried
    if json_mode:
        print(json.dumps({"error": message, "kind": kind, "exit_code": code}, sort_keys=True))
    print(f"genco {name}: error: {message}" if name else f"genco: error: {message}", file=sys.stderr)
    return code


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP), raised where the verb is so that it cleans up as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    # One shot: a second signal while the verb cleans up (removes its temporary folder, stops its workers)
    # would cut the clean-up short; SIGKILL remains for a process that must die at once.
    for sig in _TERMINATION_SIGNALS:
        if signal.getsignal(sig) is _raise_terminated:
            signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


_TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`Terminated` for the verb's duration, where Python's default would kill the
    process on the spot: a ``kill``, ``timeout``, Slurm or Kubernetes stop left a build's temporary folder (GBs)
    and its worker processes behind. Signals already ignored (``nohup``) stay ignored; off the main thread
    (signal handlers cannot be set there) nothing changes."""
    previous: dict[int, Any] = {}
    try:
        for sig in _TERMINATION_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _raise_terminated)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in argv
    hint = _requested_verb(argv)
    parser = build_parser(hint)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        if json_mode:
            return _fail(hint if hint in VERBS else "", True, str(exc), "usage")
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    name = args.verb
    json_mode = bool(getattr(args, "json", False))
    try:
        with _termination_as_interrupt():
            VERBS[name](args)
    except GencoError as exc:
        return _fail(name, json_mode, str(exc), type(exc).__name__)
    except FileNotFoundError as exc:
        return _fail(name, json_mode, f"no such file: {exc.filename or exc}", type(exc).__name__)
    except KeyboardInterrupt as exc:
        # 128 + the signal's number, as a shell reports a process the signal killed
        if isinstance(exc, Terminated):
            what, kind, code = f"terminated ({exc})", "Terminated", 128 + exc.signum
        else:
            what, kind, code = "interrupted", "KeyboardInterrupt", 130
        if json_mode:
            print(json.dumps({"error": what, "kind": kind, "exit_code": code}, sort_keys=True))
        print(f"genco {name}: {what}", file=sys.stderr)
        return code
    except Exception as exc:
        if not json_mode:
            raise  # a bug, not a user mistake: keep the traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        return _fail(name, True, f"internal error: {type(exc).__name__}: {exc}", "internal", 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
