"""The experiment schema: one pydantic model per section of an experiment file.

Every error names the field path, the bad value and what is allowed; an unknown key gets a
did-you-mean. Nothing in a file executes code; a model given by import path is imported to
check that it exists.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, create_model, model_validator

from .. import methods
from ..engine import TrainConfig
from ..models import ZOO, option_names, resolve_factory
from ..report.tables import slug
from .data import DataConfig
from .section import Section
from .tune import TuneConfig


class MethodConfig(Section):
    """One weighted term of a student's objective, checked against the method registry."""

    name: str
    weight: float = Field(1.0, ge=0.0)
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _buildable(self):
        try:
            methods.build(self.name.split(":")[0], **self.options)
        except TypeError as exc:
            raise ValueError(f"method {self.name!r} cannot be built with options {self.options}: {exc}") from None
        return self

    def term(self) -> tuple:
        return (self.name, self.weight, dict(self.options))


def _train_model():
    """A pydantic model of :class:`TrainConfig`'s fields, so that new engine settings are
    accepted here without edits; ``seed`` and ``quiet`` are set by the experiment."""
    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name: (_loose(hints[f.name]) | None, None) for f in dataclasses.fields(TrainConfig)
              if f.name not in ("seed", "quiet", "checkpoint_dir", "resume")}
    return create_model("TrainSettings", __base__=Section, **fields)


def _loose(tp):
    try:
        from pydantic import TypeAdapter

        TypeAdapter(tp)
        return tp
    except Exception:  # noqa: BLE001 - a type pydantic cannot check is passed through unchecked
        return Any


TrainSettings = _train_model()


def train_options(*layers) -> dict:
    """Merge training settings (later layers win), leaving out unset ones."""
    merged: dict = {}
    for layer in layers:
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return merged


class FreezeConfig(Section):
    modules: list[str] = []
    first_layers: int = Field(0, ge=0)


class ModelConfig(Section):
    """A model: built-in (``mlp``, ``cnn``) or ``package.module:factory``, with its options."""

    model: str = "cnn"
    options: dict[str, Any] = {}
    weights: str | None = None
    weights_partial: bool = False
    freeze: FreezeConfig | None = None
    train: TrainSettings | None = None

    @model_validator(mode="after")
    def _known_model(self):
        _raise_at(check_model(self.model, self.options))
        return self


def check_model(model: str, options: dict) -> tuple[str, str] | None:
    """``(field, problem)`` unless ``model`` is a built-in model taking ``options``, or an import path."""
    if model.count(":") == 1 and all(model.split(":")):
        try:
            resolve_factory(model)
        except ValueError as exc:
            return "model", str(exc)
        return None
    if model not in ZOO:
        hint = difflib.get_close_matches(model, list(ZOO), n=1)
        return "model", (f"{model!r} is unknown{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
                         f"use {', '.join(ZOO)} or an import path 'package.module:factory'")
    allowed = option_names(model)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        return "options", f"{unknown} are not options of model {model!r}; allowed: {', '.join(allowed)}"
    return None


def _raise_at(problem, prefix: str = "") -> None:
    if problem is not None:
        raise _at(prefix + problem[0], problem[1])


class TeacherConfig(ModelConfig):
    name: str = "teacher"
    fit: bool = True

    @model_validator(mode="after")
    def _loaded(self):
        if not self.fit and self.weights is None:
            raise ValueError("fit: false uses the teacher as loaded, so it needs weights: PATH")
        return self


class StudentConfig(Section):
    """One student run. ``model`` and ``options`` default to the experiment's ``student``."""

    name: str
    model: str | None = None
    options: dict[str, Any] | None = None
    methods: list[MethodConfig] = Field(min_length=1, default_factory=lambda: [
        MethodConfig(name=n, weight=w) for n, w in methods.ALONE])
    train: TrainSettings | None = None

    @model_validator(mode="after")
    def _known_model(self):
        if self.model is not None:
            _raise_at(check_model(self.model, self.options or {}))
        return self

    @property
    def distilled(self) -> bool:
        return any(methods.build(m.name.split(":")[0], **m.options).needs_teacher for m in self.methods)


class Experiment(Section):
    """The whole experiment file."""

    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str | None = None
    data: DataConfig
    teacher: TeacherConfig
    student: ModelConfig | None = None
    students: list[StudentConfig] = Field(min_length=1)
    train: TrainSettings = Field(default_factory=lambda: TrainSettings())
    seeds: list[int] = Field([0], min_length=1)
    tune: TuneConfig | None = None
    _base: Path = PrivateAttr(default=Path("."))

    @model_validator(mode="after")
    def _students(self):
        names = [s.name for s in self.students]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({self.teacher.name} & set(names)))
        if dupes:
            raise _at("students", f"model names must be unique (teacher and students), repeated: {dupes}")
        _check_file_names([self.teacher.name, *names])
        if all(s.distilled for s in self.students):
            raise _at("students", "one entry must train without a teacher (methods: [{name: ce}]): the baseline "
                                  "that distillation is compared with")
        for i, s in enumerate(self.students):
            if s.model is None and self.student is None:
                raise _at(f"students.{i}.model", f"student {s.name!r} gives no model and there is no default "
                                                 f"`student:` section")
            if s.model is None and s.options is not None:
                _raise_at(check_model(self.student.model, s.options), f"students.{i}.")
        if self.tune is not None and self.tune.student is not None and self.tune.student not in names:
            raise _at("tune.student", f"{self.tune.student!r} is not a student; students: {names}")
        return self

    def student_model(self, s: StudentConfig) -> ModelConfig:
        """The model section of student ``s`` (its own, or the default ``student``)."""
        base = self.student or ModelConfig()
        return base.model_copy(update={k: v for k, v in (("model", s.model), ("options", s.options))
                                       if v is not None})

    def path(self, value: str) -> Path:
        """``value`` resolved against the folder of the experiment file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._base / p


def _check_file_names(names: list[str]) -> None:
    """Model names become file names (weights, checkpoints, plots): two that become the same
    one would share a checkpoint, so that one model could continue the other's training."""
    by_file: dict[str, list[str]] = {}
    for name in names:
        by_file.setdefault(slug(name), []).append(name)
    if "" in by_file:
        raise _at("students", f"model name {by_file[''][0]!r} has no letter or digit, so it cannot name its files "
                              f"(weights, checkpoints, plots); give it one")
    clash = next((same for same in by_file.values() if len(same) > 1), None)
    if clash:
        raise _at("students", f"model names {' and '.join(map(repr, clash))} both become the file name "
                              f"{slug(clash[0])!r} (weights, checkpoints, plots: lowercase letters and digits, other "
                              f"characters become '-'); rename one")


def _at(path: str, message: str) -> ValueError:
    """An error of a whole-section check, located at ``path`` (read back by ``loading._problem``)."""
    return ValueError(f"@{path}@ {message}")
