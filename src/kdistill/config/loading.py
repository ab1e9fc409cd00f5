"""Loading experiment files: safe YAML, dotted ``--set`` overrides, validation with field paths."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..engine import TrainConfig
from ..models import importable
from .schema import Experiment, train_options
from .section import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


# YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e-3`` as a string, a trap in learning-rate settings.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))
_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 lambda loader, node: _mapping(loader, node, deep=True))


def read_yaml(text: str, source: str = "experiment") -> dict:
    """Parse YAML safely (no tags that build objects) into a mapping."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: nested deeper than Python's stack
        raise ConfigError([("", f"not valid YAML: {exc}")], source) from None
    if not isinstance(raw, dict):
        raise ConfigError([("", f"the file must hold a mapping of sections, got {type(raw).__name__}")], source)
    return raw


def apply_overrides(raw: dict, overrides, source: str = "--set") -> dict:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    raw = copy.deepcopy(raw)
    for item in overrides or ():
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError([("", f"--set {item!r}: expected dotted.key=value, e.g. train.epochs=5")], source)
        try:
            value = yaml.load(text, Loader=_UniqueKeyLoader) if text else ""  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            raise ConfigError([(key, f"--set value {text!r} is not valid YAML ({exc})")], source) from None
        try:
            _set(raw, key.split("."), value)
        except ValueError as exc:
            raise ConfigError([(key, f"--set: {exc}")], source) from None
    return raw


def _set(node, parts, value):
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i]) or "(top level)"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"{where} is a list of {len(node)} item(s); {part!r} is not an index in "
                                 f"0..{len(node) - 1}")
            part = int(part)
        elif not isinstance(node, dict):
            raise ValueError(f"{where} holds {node!r}, which has no key {part!r}")
        if last:
            node[part] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]


def validate(raw: dict, base=".", source: str = "experiment") -> Experiment:
    """Validate a raw mapping into an :class:`Experiment`; relative paths resolve against ``base``."""
    try:
        with importable(base):  # `model: mynets:factory` beside the experiment file
            exp = Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_problem(e) for e in exc.errors()], source) from None
    except ValueError as exc:  # a train-settings check of TrainConfig itself
        raise ConfigError([("", str(exc))], source) from None
    exp._base = Path(base)
    _check_train(exp, source)
    _check_paths(exp, source)
    return exp


def _check_paths(exp: Experiment, source: str) -> None:
    """Every file or folder the experiment reads must exist (relative paths: next to the file)."""
    wanted = [("teacher.weights", exp.teacher.weights, "file"), ("student.weights", exp.student and exp.student.weights,
                                                                 "file")]
    data = exp.data
    if data.images is not None:
        wanted.append(("data.images.path", data.images.path, "folder"))
    if data.table is not None:
        wanted.append(("data.table.path", data.table.path, "file"))
    if data.idx is not None:
        wanted += [(f"data.idx.{k}", getattr(data.idx, k), "file")
                   for k in ("train_images", "train_labels", "test_images", "test_labels")]
    if data.unlabeled is not None:
        kind = data.unlabeled.kind
        wanted.append((f"data.unlabeled.{kind}", getattr(data.unlabeled, kind),
                       "folder" if kind == "images" else "file"))
    problems = []
    for where, value, kind in wanted:
        if value is None:
            continue
        path = exp.path(value)
        if not (path.is_dir() if kind == "folder" else path.is_file()):
            problems.append((where, f"{kind} {str(path)!r} does not exist ({value!r}; relative paths are read from the "
                                    f"experiment file's folder)"))
    if problems:
        raise ConfigError(problems, source)


def _check_train(exp: Experiment, source: str) -> None:
    """Range checks of :class:`TrainConfig` on every model's merged settings."""
    models = [("teacher.train", exp.teacher.train)] + [(f"students.{i}.train", s.train)
                                                       for i, s in enumerate(exp.students)]
    for where, own in models:
        options = train_options(exp.train, own)
        try:
            TrainConfig(**options)
        except ValueError as exc:
            field = str(exc).split(" ", 1)[0]
            path = f"{where}.{field}" if own is not None and field in own.model_fields_set else f"train.{field}"
            raise ConfigError([(path, str(exc))], source) from None


def _problem(error: dict) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"]]
    msg = error["msg"]
    if error["type"] == "unknown_key":
        loc.append(error["ctx"]["key"])
        return ".".join(loc), msg
    msg = msg.removeprefix("Value error, ")
    if msg.startswith("@"):
        path, _, msg = msg[1:].partition("@ ")
        return ".".join([*loc, path]), msg
    if error["type"] not in ("value_error", "missing") and "input" in error:
        msg += f"; got {error['input']!r}"
    return ".".join(loc), msg


def load(path, overrides=()) -> Experiment:
    """Read, override and validate an experiment file.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    overrides : sequence of str
        ``--set``-style ``KEY=VALUE`` overrides, applied before validation.

    Returns
    -------
    Experiment
        The validated experiment; a problem raises :class:`~kdistill.config.ConfigError`,
        naming each field, its value and what is allowed.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise ConfigError([("", f"experiment file {str(path)!r} {what}")], str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([("", f"not a text file in UTF-8 ({exc.reason} at byte {exc.start})")], str(path)) from None
    raw = read_yaml(text, str(path))
    return validate(apply_overrides(raw, overrides, str(path)), base=path.parent, source=str(path))
