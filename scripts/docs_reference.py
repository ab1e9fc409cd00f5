"""MkDocs hook: the reference pages are generated from the code, so they cannot drift from it.

A page holds a marker ``<!-- generated: NAME -->`` and the build replaces it with the Markdown made
by ``GENERATORS[NAME]``: the experiment-file schema (from the pydantic models and their field
docstrings), the training options (``TrainConfig``), the CLI (from ``kdistill.cli.build_parser``),
the fields of ``results.json`` (``kdistill.report.fields``) and the registered methods
(``kdistill.methods``). ``python scripts/docs_reference.py NAME`` prints one of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import types
import typing

MARKER = re.compile(r"<!--\s*generated:\s*([\w-]+)\s*-->")


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- the experiment file ---------------------------------------------------------------------------

def _sections(tp) -> list[type]:
    from kdistill.config.section import Section

    out = []
    for arg in (typing.get_args(tp) or (tp,)):
        if isinstance(arg, type) and issubclass(arg, Section):
            out.append(arg)
        elif typing.get_origin(arg) is not None:
            out += _sections(arg)
    return out


def _type(tp) -> str:
    from kdistill.config.section import Section

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Literal:
        return " | ".join(f"`{a}`" if a is not None else "null" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(tp, type) and issubclass(tp, Section):
        return f"[{_WHERE[tp][0]}](#{_anchor(tp)})"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(tp, "any")


_WHERE: dict = {}  # section class -> the paths where it appears in a file (filled by schema())


def _anchor(cls) -> str:
    return "key-" + re.sub(r"[^a-z0-9]+", "-", _WHERE[cls][0].lower()).strip("-")


def _default(field) -> str:
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, list) and value and hasattr(value[0], "model_dump"):
        value = [v.model_dump(exclude_none=True) for v in value]
    return "null" if value is None else f"`{_yaml(value)}`"


def _yaml(value) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if not isinstance(value, str) else value


def _limits(field) -> str:
    names = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "at least", "max_length": "at most"}
    out = []
    for meta in field.metadata:
        for attr, sign in names.items():
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sign} {value}" + (" item(s)" if "length" in attr else ""))
        if getattr(meta, "pattern", None):
            out.append(f"matches `{meta.pattern}`")
    return ", ".join(out)


def _train_allowed() -> dict[str, str]:
    from kdistill.engine.config import OPTIMIZERS, SCHEDULES
    from kdistill.engine.runtime import PRECISIONS

    return {"optimizer": ", ".join(OPTIMIZERS), "schedule": ", ".join(SCHEDULES), "precision": ", ".join(PRECISIONS)}


def schema() -> str:
    """Every section of an experiment file: each key's type, default, limits and meaning."""
    from kdistill.config.schema import Experiment
    from kdistill.engine import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    order, seen, where = [Experiment], {Experiment}, _WHERE
    where.clear()
    where[Experiment] = ["top level"]
    i = 0
    while i < len(order):
        cls = order[i]
        for name, field in cls.model_fields.items():
            for sub in _sections(field.annotation):
                path = f"{'' if cls is Experiment else where[cls][0] + '.'}{name}"
                if typing.get_origin(field.annotation) is list or "list" in str(field.annotation):
                    path += "[]"
                where.setdefault(sub, []).append(path)
                if sub not in seen:
                    seen.add(sub)
                    order.append(sub)
        i += 1
    out = []
    for cls in order:
        doc = inspect.cleandoc(cls.__doc__ or "") if cls.__doc__ and "A pydantic model" not in cls.__doc__ else ""
        title = "The top level" if cls is Experiment else f"`{where[cls][0]}`"
        out.append(f"### {title} {{#{_anchor(cls)}}}\n")
        if len(where[cls]) > 1:
            out.append("Also at: " + ", ".join(f"`{p}`" for p in where[cls][1:]) + ".\n")
        if doc:
            out.append(re.sub(r":\w+:`~?([^`]+)`", r"`\1`", doc) + "\n")
        rows = []
        train = cls.__name__ == "TrainSettings"
        for name, field in cls.model_fields.items():
            allowed = _limits(field) or (_train_allowed().get(name, "") if train else "")
            default = f"`{_yaml(defaults[name])}`" if train else _default(field)
            rows.append([f"`{name}`", _type(field.annotation), default, allowed, field.description or ""])
        out.append(_table(["key", "type", "default", "allowed", "meaning"], rows))
    return "\n".join(out)


def train_options() -> str:
    """The options of the training loop (``kdistill.fit``, ``train:`` in a file)."""
    from kdistill.engine import TrainConfig
    from kdistill.engine.config import field_docs

    docs, allowed = field_docs(TrainConfig), _train_allowed()
    rows = [[f"`{f.name}`", f"`{_yaml(f.default)}`", allowed.get(f.name, ""), docs.get(f.name, "")]
            for f in dataclasses.fields(TrainConfig)]
    return _table(["option", "default", "allowed", "meaning"], rows)


# --- the command line ------------------------------------------------------------------------------

def _commands(parser, prefix: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", helps.get(name, ""), sub
                yield from _commands(sub, f"{prefix} {name}")


def cli() -> str:
    """Every command of ``kdistill``: usage, what it does, each argument with its default."""
    from kdistill.cli import build_parser

    parser = build_parser()
    out = [f"```text\n{parser.format_usage().strip()}\n```\n"]
    for command, text, sub in _commands(parser, "kdistill"):
        out.append(f"### `{command}`\n\n{_cell(text)}.\n" if text else f"### `{command}`\n")
        sub.prog = command
        out.append(f"```text\n{sub.format_usage().strip()}\n```\n")
        rows = []
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = ", ".join(action.option_strings) or action.metavar or action.dest
            default = action.default if action.default not in (None, argparse.SUPPRESS, False) else ""
            rows.append([f"`{name}`", _cell(action.help or ""), f"`{default}`" if default != "" else ""])
        if rows:
            out.append(_table(["argument", "meaning", "default"], rows))
    return "\n".join(out)


# --- results.json and the methods -----------------------------------------------------------------

def results() -> str:
    """Every field of ``results.json``, from :mod:`kdistill.report.fields`."""
    from kdistill.report.fields import SECTIONS

    out = []
    for path, fields in SECTIONS.items():
        out.append(f"### `{path or 'results.json'}`\n")
        out.append(_table(["key", "meaning"], [[f"`{k}`", v] for k, v in fields.items()]))
    return "\n".join(out)


def methods() -> str:
    """The registered methods (``kdistill.methods.available()``), with family, paper and options."""
    from kdistill import methods as registry

    rows = []
    for name in registry.available():
        cls = registry.method_class(name)
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        options = ", ".join(f"`{p.name}` ({p.default!r})" if p.default is not p.empty else f"`{p.name}`"
                            for p in params)
        summary = registry.describe()[name].split(" Options: ")[0]
        rows.append([f"`{name}`", cls.family, cls.paper, options or "none", re.sub(r":\w+:`~?([^`]+)`", r"`\1`",
                                                                                      summary)])
    return _table(["name", "family", "paper", "options (defaults)", "what it is"], rows)


GENERATORS = {"schema": schema, "train-options": train_options, "cli": cli, "results": results, "methods": methods}


def on_page_markdown(markdown: str, page=None, **_) -> str:
    """MkDocs hook: replace each marker with what its generator makes."""
    def make(match):
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{getattr(page, 'file', page)}: unknown generated section {name!r}; "
                             f"known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(make, markdown)


if __name__ == "__main__":
    print(GENERATORS[sys.argv[1]]())
