"""Command line: ``kdistill demo | run | validate | tune | report | export | cache clear``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table


def _wide_console() -> Console:
    """The terminal's width when interactive; else wide enough that logs keep one line per row."""
    return Console() if sys.stdout.isatty() else Console(width=260)


def _table(results: dict) -> Table:
    from .report import table_rows

    header, rows = table_rows(results)
    table = Table(title=results["title"])
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _demo(args) -> int:
    from .study import run_demo

    results, folder = run_demo(args.out, seeds=args.seeds, epochs=args.epochs, quiet=args.quiet,
                               cache_dir=args.cache_dir)
    _print_results(results, folder)
    return 0


def _cache(args) -> int:
    from .cache import cache_dir, clear_cache

    entries, freed = clear_cache(args.cache_dir)
    Console().print(f"removed {entries} teacher-cache entr{'y' if entries == 1 else 'ies'} "
                    f"({freed / 1e6:.1f} MB) from {cache_dir(args.cache_dir)}")
    return 0


def _export(args) -> int:
    from .export import export_weights

    reports = export_weights(args.path, args.out, int8=args.int8, threads=args.threads)
    table = Table(title=f"ONNX export of {args.path} (latency: onnxruntime, ms per batch, p50 / p95)")
    for name in ("file", "MB", "max |Δlogit| vs PyTorch", "batch 1", "batch 64", "test accuracy"):
        table.add_column(name, overflow="fold")
    for r in reports:
        for row in (r, r.get("int8")):
            if row is not None:
                lat = [row["latency"][f"batch{b}"] for b in (1, 64)]
                acc = f"{row['accuracy']:.4f}" if "accuracy" in row else "–"
                table.add_row(row["path"], f"{row['size_mb']:.4f}", f"{row['parity_max_abs_diff']:.2e}",
                              *[f"{x['p50_ms']:.3f} / {x['p95_ms']:.3f}" for x in lat], acc)
    _wide_console().print(table)
    return 0


def _cache_dir_arg(parser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="keep the teacher-output cache in this folder, for later runs with the same teacher and "
                             "data (default $KDISTILL_CACHE_DIR, else RUN_DIR/teacher-cache, removed when the run ends)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdistill", description="Knowledge distillation: teacher -> student.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="teacher -> student study on the built-in digits dataset")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo; never overwritten)")
    demo.add_argument("--seeds", type=_positive, default=1, help="repeat over this many seeds (default 1)")
    demo.add_argument("--epochs", type=_positive, default=None, help="override the epoch budget of every model")
    demo.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch log")
    _cache_dir_arg(demo)
    demo.set_defaults(func=_demo)
    _add_experiment_commands(sub)
    export = sub.add_parser("export", help="export trained weights to ONNX, parity-checked, with latency and size")
    export.add_argument("path", help="a run folder (exports every weights/*.safetensors) or one .safetensors file")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    export.add_argument("--int8", action="store_true", help="also write an int8 dynamically quantized model")
    export.add_argument("--out", default=None, help="output folder (default RUN_DIR/onnx, or beside the weights file)")
    export.add_argument("--threads", type=_positive, default=None, help="onnxruntime threads (default: its choice)")
    export.set_defaults(func=_export)
    cache = sub.add_parser("cache", help="manage the teacher-output cache")
    action = cache.add_subparsers(dest="action", required=True)
    clear = action.add_parser("clear", help="delete every cached teacher output")
    clear.add_argument("--cache-dir", default=None,
                       help="cache folder (default $KDISTILL_CACHE_DIR, else ./.kdistill-cache)")
    clear.set_defaults(func=_cache)
    return parser


# --------------------------------------------------------------------------------------------
# Experiment files: run, validate, tune, report


def _print_results(results: dict | None, folder) -> None:
    if results is None:
        return  # a rank other than 0 under torchrun: rank 0 prints
    console = _wide_console()
    console.print(_table(results))
    for c in results["comparisons"]:
        console.print(escape(c["verdict"]))
    console.print(f"Run folder: {folder} (report.html, report.md, results.json, plots)")


def _run(args) -> int:
    from . import config
    from .experiment import run_experiment

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out RUN_DIR: the folder of the interrupted run to continue")
    results, folder = run_experiment(config.load(args.experiment, args.set), out=args.out, quiet=args.quiet,
                                     resume=args.resume, cache_dir=args.cache_dir)
    _print_results(results, folder)
    return 0


def _validate(args) -> int:
    from . import config

    exp = config.load(args.experiment, args.set)
    source = next(s for s in ("builtin", "images", "idx", "table") if getattr(exp.data, s) is not None)
    Console().print(f"{escape(args.experiment)}: valid. Experiment {exp.name!r}: {source} data, teacher "
                    f"{exp.teacher.model!r}, {len(exp.students)} student(s) "
                    f"({', '.join(s.name for s in exp.students)}), seeds {exp.seeds}.")
    return 0


def _tune(args) -> int:
    import optuna

    from . import config
    from .tune import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kdistill logs one line per trial itself
    summary = tune(config.load(args.experiment, args.set), trials=args.trials, out=args.out, storage=args.storage,
                   quiet=args.quiet, cache_dir=args.cache_dir)
    console = _wide_console()
    table = Table(title=f"trials of study {summary['study_name']!r} (validation accuracy)")
    keys = sorted({k for t in summary["trials"] for k in t["params"]})
    for name in ("trial", "state", "val accuracy", *keys):
        table.add_column(name)
    for t in summary["trials"]:
        table.add_row(str(t["number"]), t["state"].lower(), "-" if t["value"] is None else f"{t['value']:.4f}",
                      *[f"{t['params'][k]:.4g}" if k in t["params"] else "" for k in keys])
    console.print(table)
    params = ", ".join(f"{k}={v:.4g}" for k, v in summary["best_params"].items())
    console.print(f"Best trial {summary['best_trial']}: {params}; validation accuracy {summary['best_value']:.4f}. "
                  f"Retrained and evaluated on test:")
    _print_results(summary["results"], summary["folder"])
    return 0


def _report(args) -> int:
    from .document import write_report

    md, page = write_report(args.run_dir)
    Console().print(f"Wrote {md} and {page}")
    return 0


def _add_experiment_commands(sub) -> None:
    def experiment_args(p):
        p.add_argument("experiment", help="experiment file (YAML)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting by its dotted path, e.g. --set train.epochs=5 (repeatable)")

    run = sub.add_parser("run", help="run an experiment file into a run folder, with its report")
    experiment_args(run)
    run.add_argument("--out", default=None, help="run folder (default runs/<name>; never overwritten)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-model log")
    run.add_argument("--resume", action="store_true",
                     help="continue the interrupted run in --out from its checkpoints (as if never stopped)")
    _cache_dir_arg(run)
    run.set_defaults(func=_run)
    validate = sub.add_parser("validate", help="check an experiment file without running it")
    experiment_args(validate)
    validate.set_defaults(func=_validate, quiet=False)
    tune = sub.add_parser("tune", help="Optuna sweep of alpha, temperature and lr; best trial evaluated on test")
    experiment_args(tune)
    tune.add_argument("--trials", type=_positive, default=None, help="finished trials wanted (default: tune.trials)")
    tune.add_argument("--out", default=None, help="run folder (default runs/<name>-tune; resumed if it holds "
                                                  "this sweep)")
    tune.add_argument("--storage", default=None, help="Optuna database URL (default sqlite in the run folder)")
    tune.add_argument("--quiet", action="store_true", help="no progress bar or per-trial log")
    _cache_dir_arg(tune)
    tune.set_defaults(func=_tune)
    report = sub.add_parser("report", help="rebuild report.md and report.html of a run folder from its files")
    report.add_argument("run_dir", help="run folder")
    report.set_defaults(func=_report, quiet=False)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    secondary_rank = os.environ.get("RANK", "0") != "0"  # under torchrun only rank 0 reports
    level = logging.WARNING if getattr(args, "quiet", False) or secondary_rank else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False, show_time=False)])
    try:
        code = args.func(args)
        from .engine.runtime import Runtime

        Runtime.current().shutdown()  # under torchrun: ranks leave together, after the run
        return code
    except (ValueError, TypeError, OSError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt as exc:
        Console(stderr=True).print(f"[bold yellow]stopped:[/] {escape(str(exc) or 'interrupted')}")
        return 130


if __name__ == "__main__":
    sys.exit(main())
