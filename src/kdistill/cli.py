"""Command line: ``kdistill demo``, ``kdistill export``, ``kdistill cache clear``."""

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
    Console(width=160).print(table)
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
