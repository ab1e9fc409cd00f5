"""Every code block of the README and the docs site runs as a test (Sybil), so no example drifts.

In a page (one namespace and one fresh temporary working folder per page, blocks in order):

- ```python: executed; an ``assert`` checks a shown result that matters.
- any block with ``title="NAME"``: written to NAME in the page's folder, for later blocks (a titled
  python block is compiled, not run: it is a module a later block imports); ```yaml and ```json
  blocks must parse.
- ```console / ```bash: every ``$ kdistill ...`` line (or, in bash, every ``kdistill ...`` line) runs the
  CLI in-process in the page's folder and must exit 0; in a console block, the lines shown under a
  command must be among the lines it prints (a line ending in ``...`` is a prefix).
  ```bash lines that are not ``kdistill`` commands (``make``, ``torchrun``, ``pip``) need a skip.
- ``<!-- exits: N -->`` before a block: its commands must exit N instead.
- ``<!-- tiny: OLD => NEW; OLD2 => NEW2 -->`` before a block: the test runs it with these literal
  replacements (a shorter budget, fewer seeds); each OLD must occur, so the note cannot drift.
- ``<!-- skip: next "why" -->`` before a block: not run (something a test cannot do: a real dataset,
  several machines, the command that runs this very suite). ``text`` blocks are never run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from sybil import Region, Sybil

ROOT = Path(__file__).resolve().parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"<!--\s*(?P<name>skip|exits|tiny):\s*(?P<args>(?:(?!-->).)*?)\s*-->\s*\Z", re.DOTALL)
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
RUN = {"python", "yaml", "json", "console", "bash"}


def _directives(text: str, start: int) -> dict:
    """The directive comments just above a block (blank lines allowed between)."""
    found, head = {}, text[:start].rstrip()
    while True:
        match = DIRECTIVE.search(head)
        if match is None:
            return found
        found[match["name"]] = match["args"]
        head = head[:match.start()].rstrip()


def _tiny(source: str, spec: str | None) -> str:
    for pair in filter(None, (p.strip() for p in (spec or "").split(";"))):
        old, sep, new = pair.partition("=>")
        old, new = old.strip(), new.strip()
        if not sep or old not in source:
            raise AssertionError(f"tiny: {old!r} does not occur in the block (the directive drifted from the example)")
        source = source.replace(old, new)
    return source


def _dedent(body: str, indent: str) -> str:
    return "".join(line[len(indent):] if line.startswith(indent) else line for line in body.splitlines(True))


def _commands(lang: str, body: str) -> list[tuple[str, list[str]]]:
    """Each command of a block with the output lines shown under it (console blocks only)."""
    lines = [line.strip() for line in body.splitlines()]
    if lang == "console":
        out: list[tuple[str, list[str]]] = []
        for line in lines:
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif line and out:
                out[-1][1].append(line)
        return out
    commands = [line.split("#")[0].strip() for line in lines if line and not line.startswith("#")]
    other = [c for c in commands if not c.startswith("kdistill ")]
    if other:
        raise AssertionError(f"bash block runs {other[0]!r}, which a test cannot run; mark the block "
                             f"<!-- skip: next \"why\" --> or show it as console")
    return [(c, []) for c in commands if c]


def _run_cli(command: str, expected: int, shown: list[str]) -> None:
    """Run ``command`` in-process; it must exit ``expected`` and print every ``shown`` line (a line
    ending in ``...`` is a prefix of the line printed)."""
    from kdistill.cli import main

    words = shlex.split(command, comments=True)
    assert words[0] == "kdistill", f"console lines run kdistill, got {command!r}"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(words[1:])
        except SystemExit as exc:  # argparse's --help and usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    printed = [" ".join(line.split()) for line in (out.getvalue() + err.getvalue()).splitlines()]
    report = f"stdout:\n{out.getvalue()[-3000:]}\nstderr:\n{err.getvalue()[-3000:]}"
    assert code == expected, f"`{command}` exited {code}, expected {expected}\n{report}"
    for line in shown:
        want = " ".join(line.split())
        found = any(p.startswith(want[:-3].rstrip()) if want.endswith("...") else p == want for p in printed)
        assert found, f"`{command}` did not print the line shown under it: {line!r}\n{report}"


def _evaluator(lang: str, info: str, source: str, directives: dict):
    def evaluate(example):
        if "skip" in directives:
            return None
        code = _tiny(source, directives.get("tiny"))
        title = TITLE.search(info)
        if title:  # a file the page's later blocks use
            Path(title["title"]).write_text(code)
        if lang == "python" and title:
            compile(code, title["title"], "exec")
        elif lang == "python":
            exec(compile(code, f"{example.path}:{example.line}", "exec"), example.namespace)
        elif lang == "yaml":
            yaml.safe_load(code)
        elif lang == "json":
            json.loads(code)
        else:
            expected = int(directives.get("exits", 0))
            for command, shown in _commands(lang, code):
                _run_cli(command, expected, shown)
        return None

    return evaluate


def parse(document):
    for match in FENCE.finditer(document.text):
        lang = match["lang"]
        if lang not in RUN:
            continue
        directives = _directives(document.text, match.start())
        if "skip" in directives and not directives["skip"].startswith("next"):
            raise AssertionError(f"{document.path}: skip takes the form <!-- skip: next \"why\" -->")
        source = _dedent(match["body"], match["indent"])
        yield Region(match.start(), match.end(), source,
                     evaluator=_evaluator(lang, match["info"], source, directives))


def _setup(namespace):
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)
    _forget_temporary_modules()  # a page's `mynets.py` must not be another test's module of that name
    folder = Path(tempfile.mkdtemp(prefix="kdistill-docs-"))
    (folder / "examples").symlink_to(ROOT / "examples")
    namespace["__docs_cwd__"] = (os.getcwd(), folder)
    namespace["__name__"] = "__docs__"
    os.chdir(folder)


def _teardown(namespace):
    old, folder = namespace.pop("__docs_cwd__")
    os.chdir(old)
    shutil.rmtree(folder, ignore_errors=True)
    _forget_temporary_modules()


def _forget_temporary_modules() -> None:
    """Drop imported modules that live in temporary folders (a page's or a test's model files)."""
    temp = os.path.realpath(tempfile.gettempdir()) + os.sep
    keep = tuple(os.path.realpath(p) + os.sep for p in (ROOT, sys.prefix, sys.base_prefix))  # a clone in /tmp
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        real = os.path.realpath(path) if path else ""
        if real.startswith(temp) and not real.startswith(keep):
            del sys.modules[name]


pytest_collect_file = Sybil(parsers=[parse], patterns=["README.md", "docs/*.md", "docs/*/*.md"],
                            path=str(ROOT), setup=_setup, teardown=_teardown).pytest()
