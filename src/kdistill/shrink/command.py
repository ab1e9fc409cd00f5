"""``kdistill shrink EXPERIMENT``: its arguments, and the command (the search is imported only
when it runs, so that building the parser stays light)."""

from __future__ import annotations

import functools


def add_parser(sub, experiment_args, cache_dir_arg, output) -> None:
    """Add the ``shrink`` command to the subparsers ``sub``; ``output`` is the CLI's
    ``(show_table, say, print_results)``."""
    shrink = sub.add_parser("shrink", help="search the most accurate student within student.shrink's budget: the "
                                           "teacher pruned and a family scaled, weak candidates stopped early")
    experiment_args(shrink)
    shrink.add_argument("--out", default=None, help="run folder (default runs/<name>-shrink; never overwritten)")
    shrink.add_argument("--storage", default=None, help="Optuna database URL shared by every worker (default "
                                                        "student.shrink.storage, else sqlite in the run folder)")
    shrink.add_argument("--study-name", default=None, help="Optuna study name (default student.shrink.study_name)")
    shrink.add_argument("--worker", action="store_true", help="only run trials of the shared study (another "
                                                              "process makes the final study)")
    shrink.add_argument("--quiet", action="store_true", help="no progress bar or per-model log")
    cache_dir_arg(shrink)
    shrink.set_defaults(func=functools.partial(run, output=output))


def run(args, output) -> int:
    """Run the search of ``args.experiment`` and show its candidates, results and choice."""
    from .experiment import shrink_experiment, summary_lines, summary_table

    show_table, say, print_results = output
    summary = shrink_experiment(args.experiment, out=args.out, overrides=args.set, storage=args.storage,
                                study_name=args.study_name, worker=args.worker, quiet=args.quiet,
                                cache_dir=args.cache_dir)
    show_table(*summary_table(summary))
    if summary["folder"] is not None:
        print_results(summary["results"], summary["folder"])
    for line in summary_lines(summary):
        say(line)
    return 0
