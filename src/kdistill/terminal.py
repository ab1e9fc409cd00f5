"""What the command line shows: tables and messages on standard output, log lines and errors on
standard error. On an interactive terminal they are drawn with rich (a table too wide for the
terminal is stacked, one block per row, rather than squeezed into unreadable columns); anywhere
else they are plain text: one line per log record and one Markdown row per table row, never
wrapped and never rendered as markup or emoji."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["print_results", "say", "show_table"]


def _interactive(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def _rich_console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, emoji=False, highlight=False, markup=False)


def show_table(title: str, header: list[str], rows: list[list[str]], console=None) -> None:
    """A table on standard output: drawn by rich on a terminal (or on ``console``), else Markdown
    (one line per row). A table wider than the terminal is stacked: one block per row, each
    cell on its own line after its column's name, so that no name or number is broken."""
    if console is None and not _interactive(sys.stdout):
        lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        print("\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n")
        return
    from rich.table import Table

    console = console or _rich_console()
    if _width(header, rows) <= console.width:
        table = Table(title=title)
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(title)
    for row in rows:
        block = Table(title=f"{header[0]}: {row[0]}" if row else None, show_header=False, title_justify="left")
        block.add_column(overflow="fold")
        block.add_column(overflow="fold")
        for name, cell in zip(header[1:], row[1:]):
            block.add_row(name, cell)
        console.print(block)


def _width(header: list[str], rows: list[list[str]]) -> int:
    """The narrowest width at which rich draws the table with no cell and no header word broken."""
    widths = [max([len(max(name.split() or [""], key=len))] + [len(r[i]) for r in rows if i < len(r)])
              for i, name in enumerate(header)]
    return sum(w + 3 for w in widths) + 1


def say(text: str) -> None:
    """One message on standard output, as it is (no markup, no emoji, no wrapping off a terminal)."""
    if _interactive(sys.stdout):
        _rich_console().print(text, soft_wrap=True)
    else:
        print(text)


def _error(label: str, style: str, message: str) -> None:
    if _interactive(sys.stderr):
        from rich.text import Text

        _rich_console(stderr=True).print(Text(label, style=style) + Text(" " + message))
    else:
        print(f"{label} {message}", file=sys.stderr)


class _Handler(logging.StreamHandler):
    """kdistill's log lines as plain text on standard error (one line per record)."""


def _logging(quiet: bool) -> None:
    """kdistill's own logger prints INFO lines (WARNING with --quiet, or on torchrun ranks but 0)."""
    log = logging.getLogger("kdistill")
    log.setLevel(logging.WARNING if quiet or os.environ.get("RANK", "0") != "0" else logging.INFO)
    for old in [h for h in log.handlers if isinstance(h, _Handler) or getattr(h, "kdistill", False)]:
        log.removeHandler(old)
    if _interactive(sys.stderr):
        from rich.logging import RichHandler

        handler = RichHandler(console=_rich_console(stderr=True), show_path=False, show_time=False, markup=False)
        handler.kdistill = True
    else:
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.propagate = False  # a root handler some library installs (onnxruntime.quantization) must not repeat our lines


def print_results(results: dict | None, folder) -> None:
    """A study's table, verdicts, warnings, notes and recommendation, as ``kdistill run`` and
    :func:`kdistill.compare` show them."""
    from .report import table_rows

    if results is None:
        return  # a rank other than 0 under torchrun: rank 0 prints
    show_table(results["title"], *table_rows(results))
    for c in results["comparisons"]:
        say(c["verdict"])
    for warning in results.get("warnings", []):
        say(f"Warning: {warning}")
    for note in results.get("still_improving", []):
        say(f"Note: {note}")
    if results.get("recommendation"):
        say(f"Recommendation: {results['recommendation']['sentence']} (model card: {folder}/model_card.md)")
    say(f"Run folder: {folder} (report.html, report.md, results.json, plots)")
