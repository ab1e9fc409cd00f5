"""Command line: ``kdistill demo``, ``kdistill cache clear``."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table


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

    results, folder = run_demo(args.out, seeds=args.seeds, epochs=args.epochs, quiet=args.quiet)
    console = Console(width=160)
    console.print(_table(results))
    for c in results["comparisons"]:
        console.print(c["verdict"])
    console.print(f"Run folder: {folder} (results.json, results.md, plots)")
    return 0


def _cache(args) -> int:
    from .cache import cache_dir, clear_cache

    entries, freed = clear_cache(args.cache_dir)
    Console().print(f"removed {entries} teacher-cache entr{'y' if entries == 1 else 'ies'} "
                    f"({freed / 1e6:.1f} MB) from {cache_dir(args.cache_dir)}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
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
    demo.set_defaults(func=_demo)
    cache = sub.add_parser("cache", help="manage the teacher-output cache")
    action = cache.add_subparsers(dest="action", required=True)
    clear = action.add_parser("clear", help="delete every cached teacher output")
    clear.add_argument("--cache-dir", default=None,
                       help="cache folder (default $KDISTILL_CACHE_DIR, else ./.kdistill-cache)")
    clear.set_defaults(func=_cache)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False, show_time=False)])
    try:
        return args.func(args)
    except (ValueError, TypeError, FileExistsError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
