"""Command line: ``kdistill demo | run | validate | tune | shrink | report | export | layers | methods | cache clear``.

Output is fit for logs: on an interactive terminal, tables and log lines are drawn with rich;
anywhere else (a pipe, a file, CI, nohup) they are plain text, one line per log record and one
Markdown row per table row, never wrapped and never rendered as markup or emoji.

One error boundary (:func:`main`): a failure caused by the user's input, files or machine ends
the command with exit status 2 and one message (no traceback unless ``--debug``); anything
else is a bug: exit status 1, said so, with the traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback

from . import __version__
from .boundary import explain, is_allocation_failure
from .terminal import _error, _logging, print_results, say, show_table

__all__ = ["build_parser", "explain", "main", "say", "show_table", "user_errors"]


# --------------------------------------------------------------------------------------------
# Commands


def _print_results(results: dict | None, folder) -> None:
    print_results(results, folder)


def _demo(args) -> int:
    from .study import run_demo

    results, folder = run_demo(args.out, seeds=args.seeds, epochs=args.epochs, quiet=args.quiet,
                               cache_dir=args.cache_dir)
    _print_results(results, folder)
    return 0


def _run(args) -> int:
    from .study import run_experiment

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out RUN_DIR: the folder of the interrupted run to continue")
    results, folder = run_experiment(args.experiment, out=args.out, overrides=_overrides(args), quiet=args.quiet,
                                     resume=args.resume, cache_dir=args.cache_dir)
    _print_results(results, folder)
    return 0


def _validate(args) -> int:
    from . import config
    from .study import validate_experiment

    exp = config.load(args.experiment, args.set)
    models = validate_experiment(exp)  # reads the data and takes one dry step with every model
    teacher = exp.teacher.file or exp.teacher.model
    say(f"{args.experiment}: valid. Experiment {exp.name!r}: {exp.data.source} data, teacher {teacher!r}, "
        f"{len(exp.students)} student(s) ({', '.join(s.name for s in exp.students)}), seeds {exp.seeds}. Every model "
        f"was built and ran one step on the data: " + "; ".join(models) + ".")
    return 0


def _tune(args) -> int:
    import optuna

    from . import config
    from .tune import answer_lines, trials_table, tune
    from .tune.sweep import SweepInterrupted

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kdistill logs one line per trial itself
    try:
        summary = tune(config.load(args.experiment, _overrides(args)), trials=args.trials, out=args.out,
                       storage=args.storage, quiet=args.quiet, cache_dir=args.cache_dir, jobs=args.jobs)
    except SweepInterrupted as exc:
        again = _command(["tune", args.experiment, "--out", str(exc.folder), *[w for o in args.set
                                                                            for w in ("--set", o)]],
                         ("--seeds", args.seeds), ("--storage", args.storage), ("--cache-dir", args.cache_dir),
                         ("--trials", args.trials), ("--jobs", args.jobs if args.jobs > 1 else None))
        raise SweepInterrupted(exc.folder, exc.storage, again) from None
    show_table(f"trials of sweep {summary['study_name']!r} (validation accuracy)", *trials_table(summary["trials"]))
    _print_results(summary["results"], summary["folder"])
    for line in answer_lines(summary):
        say(line)
    return 0


def _overrides(args) -> list[str]:
    """``--set`` overrides, with ``--seeds N`` as ``seeds=[0, ..., N-1]`` (after them: the flag wins)."""
    return [*args.set, *([f"seeds={list(range(args.seeds))}"] if getattr(args, "seeds", None) else [])]


def _command(words: list[str], *flags: tuple) -> str:
    """The shell line ``kdistill <words> <flag value>...`` that runs a command again; flags whose
    value is ``None`` are left out."""
    return shlex.join(["kdistill", *words, *[w for flag, value in flags if value is not None
                                             for w in (flag, str(value))]])


def _report(args) -> int:
    from .report import write_report

    md, page = write_report(args.run_dir)
    say(f"Wrote {md} and {page}")
    return 0


def _export(args) -> int:
    from .export import export_weights

    try:
        reports = export_weights(args.path, args.out, int8=args.int8, threads=args.threads, model=args.model,
                                 allow=args.allow, experiment=args.experiment, skip=args.skip_unexportable)
    except KeyboardInterrupt:
        again = _command(["export", args.path, *(["--int8"] if args.int8 else []),
                          *[w for a in args.allow for w in ("--allow", a)],
                          *(["--skip-unexportable"] if args.skip_unexportable else [])], ("--out", args.out),
                         ("--model", args.model), ("--experiment", args.experiment), ("--threads", args.threads))
        raise KeyboardInterrupt(f"export interrupted; the files written are whole (each is written beside its "
                                f"place, then renamed): run it again with {again}") from None
    rows = []
    for r in reports:
        for row in (r, r.get("int8")):
            if row is not None:
                lat = [row["latency"][f"batch{b}"] for b in (1, 64)]
                acc = f"{row['accuracy']:.4f}" if "accuracy" in row else "–"
                layers = (f"{row['method']}: {len(row['quantized'])} layer(s): {', '.join(row['quantized'])}"
                          if "quantized" in row else "")
                rows.append([row["path"], f"{row['size_mb']:.4f}", f"{row['parity_max_abs_diff']:.2e}",
                             *[f"{x['p50_ms']:.3f} / {x['p95_ms']:.3f}" for x in lat], acc, layers])
    show_table(f"ONNX export of {args.path} (latency: onnxruntime, ms per batch, p50 / p95)",
               ["file", "MB", "max |Δlogit| (estimators: |Δp|)", "batch 1", "batch 64", "test accuracy",
                "int8 layers"], rows)
    return 0


def _shape(row: dict) -> str:
    shape = row["shape"]
    return "(not run)" if shape is None else shape if isinstance(shape, str) else str(tuple(shape))


def _layers(args) -> int:
    from itertools import zip_longest

    from .study.layers import model_layers

    found = model_layers(args.target, args.input_shape, args.classes)
    names = list(found["models"])
    blank = {"name": "", "type": "", "shape": "", "params": ""}
    for first, second in [(names[0], other) for other in names[1:] or [None]] if names else []:
        tables = [found["models"][first]] + ([found["models"][second]] if second else [])
        header = [h for name in [first, second] if name for h in (f"{name}: layer", "type", "output", "params")]
        rows = [[c for r in row for c in (r["name"], r["type"], _shape(r), str(r["params"]))]
                for row in zip_longest(*tables, fillvalue=blank)]
        show_table(f"layers for inputs of shape {tuple(found['input_shape'])}", header, rows)
    for student, pairs in found["pairs"].items():
        rows = [[s["name"], _shape(s), t["name"], _shape(t)] for s, t in pairs]
        show_table(f"suggested pairs for feature methods ({student} -> {names[0]}): student: [...], teacher: [...]",
                   ["student layer", "output", "teacher layer", "output"], rows)
    return 0


def _methods(args) -> int:
    from .methods import describe

    show_table("registered methods", ["name", "what"], [[name, text] for name, text in describe().items()])
    return 0


def _cache(args) -> int:
    from .teachers import cache_dir, clear_cache

    entries, freed = clear_cache(args.cache_dir)
    say(f"removed {entries} teacher-cache entr{'y' if entries == 1 else 'ies'} ({freed / 1e6:.1f} MB) from "
        f"{cache_dir(args.cache_dir)}")
    return 0


# --------------------------------------------------------------------------------------------
# Arguments


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _shape_arg(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas, e.g. 3,32,32; got {text}")
    return shape


def _cache_dir_arg(parser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="keep the teacher-output cache in this folder, for later runs with the same teacher and "
                             "data (default $KDISTILL_CACHE_DIR, else RUN_DIR/teacher-cache, removed when the run "
                             "ends)")


def _experiment_args(parser) -> None:
    parser.add_argument("experiment", help="experiment file (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting by its dotted path, e.g. --set train.epochs=5 (repeatable)")


def _seeds_arg(parser) -> None:
    parser.add_argument("--seeds", type=_positive, default=None, metavar="N",
                        help="repeat over seeds 0..N-1 (the same as --set seeds=[0,...,N-1]; default: the file's "
                             "seeds)")


def _experiment_commands(sub) -> None:
    run = sub.add_parser("run", help="run an experiment file into a run folder, with its report")
    _experiment_args(run)
    run.add_argument("--out", default=None, help="run folder (default runs/<name>; never overwritten)")
    _seeds_arg(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-model log")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --out from its checkpoints (as if never stopped)")
    _cache_dir_arg(run)
    run.set_defaults(func=_run)
    validate = sub.add_parser("validate", help="check an experiment file without running it")
    _experiment_args(validate)
    validate.set_defaults(func=_validate, quiet=False)
    tune = sub.add_parser("tune", help="Optuna sweep over recipes (methods, options, budgets) with the student alone "
                                       "as baseline; the answer tested on the test split")
    _experiment_args(tune)
    tune.add_argument("--trials", type=_positive, default=None,
                      help="finished distilled trials wanted (default: tune.trials)")
    tune.add_argument("--jobs", type=_positive, default=1,
                      help="processes running trials at once, sharing the Optuna storage (default 1)")
    tune.add_argument("--out", default=None, help="run folder (default runs/<name>-tune; resumed if it holds "
                                                  "this sweep)")
    tune.add_argument("--storage", default=None, help="Optuna database URL (default sqlite in the run folder)")
    _seeds_arg(tune)
    tune.add_argument("--quiet", action="store_true", help="no progress bar or per-trial log")
    _cache_dir_arg(tune)
    tune.set_defaults(func=_tune)
    from .shrink.command import add_parser  # light: the search is imported when the command runs

    add_parser(sub, _experiment_args, _cache_dir_arg, (show_table, say, _print_results))
    report = sub.add_parser("report", help="rebuild report.md and report.html of a run folder from its files")
    report.add_argument("run_dir", help="run folder")
    report.set_defaults(func=_report, quiet=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdistill", description="Knowledge distillation: teacher -> student.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (anywhere on the command line)")
    parser.add_argument("--version", action="version", version=f"kdistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="teacher -> student study on the built-in digits dataset")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo; never overwritten)")
    demo.add_argument("--seeds", type=_positive, default=1, help="repeat over this many seeds (default 1)")
    demo.add_argument("--epochs", type=_positive, default=None, help="override the epoch budget of every model")
    demo.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch log")
    _cache_dir_arg(demo)
    demo.set_defaults(func=_demo)
    _experiment_commands(sub)
    export = sub.add_parser("export", help="export a run's models to ONNX, parity-checked, with latency and size")
    export.add_argument("path", help="a run folder (exports every weights/*.safetensors and *.skops) or one "
                                     ".safetensors or .skops file")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    export.add_argument("--int8", action="store_true",
                        help="also write an int8 model, its test accuracy re-measured: static (QDQ, calibrated on "
                             "256 training samples) for a model with convolutions whose training split can be "
                             "rebuilt, else dynamic (dense layers only)")
    export.add_argument("--out", default=None, help="output folder (default RUN_DIR/onnx, or beside the weights file)")
    export.add_argument("--threads", type=_positive, default=None, help="onnxruntime threads (default: its choice)")
    export.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                        help="the factory that builds the architecture, when it is not kdistill's mlp or cnn (a "
                             "weights file never chooses code to run: you name it here)")
    export.add_argument("--allow", action="append", default=[], metavar="MODULE:FACTORY",
                        help="a factory the run's weights may name (repeatable); nothing else outside kdistill's "
                             "zoo is built")
    export.add_argument("--experiment", default=None, metavar="FILE",
                        help="allow the factories this experiment file names (imported from its folder)")
    export.add_argument("--skip-unexportable", action="store_true",
                        help="skip, with a warning, a file that cannot be exported, instead of stopping with exit 2")
    export.set_defaults(func=_export)
    layers = sub.add_parser("layers", help="every layer's output shape and parameters; suggested pairs for feature "
                                           "methods")
    layers.add_argument("target", help="an experiment file, a weights file, or a model (cnn, mynets:factory)")
    layers.add_argument("--input-shape", type=_shape_arg, default=None, help="a model's input shape, e.g. 3,32,32")
    layers.add_argument("--classes", type=_positive, default=None, help="a model's number of classes")
    layers.set_defaults(func=_layers, quiet=True)
    methods = sub.add_parser("methods", help="list the registered distillation methods and their options")
    methods.set_defaults(func=_methods, quiet=True)
    cache = sub.add_parser("cache", help="manage the teacher-output cache")
    action = cache.add_subparsers(dest="action", required=True)
    clear = action.add_parser("clear", help="delete every cached teacher output")
    clear.add_argument("--cache-dir", default=None,
                       help="cache folder (default $KDISTILL_CACHE_DIR, else ./.kdistill-cache)")
    clear.set_defaults(func=_cache)
    return parser


def user_errors() -> tuple:
    """Failures caused by the user's input, files or machine (exit status 2), not by a bug."""
    import torch

    from .engine import NonFiniteLossError

    return (ValueError, TypeError, OSError, MemoryError, EOFError, NonFiniteLossError, torch.cuda.OutOfMemoryError)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere: kdistill run x.yaml --debug
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    _logging(getattr(args, "quiet", False))
    try:
        code = args.func(args)
        from .engine import Runtime

        Runtime.current().shutdown()  # under torchrun: ranks leave together, after the run
        return code
    except KeyboardInterrupt as exc:
        _error("stopped:", "bold yellow", str(exc) or "interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one error boundary of the command line
        user = isinstance(exc, user_errors()) or is_allocation_failure(exc)
        if debug or not user:
            traceback.print_exc()
        if user:
            _error("error:", "bold red", explain(exc))
            return 2
        _error("bug:", "bold red", f"kdistill stopped on an internal error ({type(exc).__name__}: "
                                   f"{str(exc)[:300]}); this is a bug, not a problem with your input: please report "
                                   f"it with the traceback above")
        return 1


if __name__ == "__main__":
    sys.exit(main())
