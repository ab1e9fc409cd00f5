"""Sections of an experiment file about models: the teacher, the students, their methods and
training settings. A model given by import path is imported to check that it exists."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from .. import methods
from ..engine import TrainConfig
from ..engine.config import field_docs
from ..models import ZOO, is_estimator_class, is_sklearn_model, option_names, resolve_factory
from ..teachers.oof import check_folds
from ..weights import check_trusted
from .section import Section, at, raise_at


class MethodConfig(Section):
    """One weighted term of a student's objective, checked against the method registry."""

    name: str
    """A registered method (`kdistill methods` lists them); `kd:2`-style names repeat one."""
    weight: float = Field(1.0, ge=0.0)
    """Its weight in the objective (>= 0)."""
    options: dict[str, Any] = {}
    """The method's options (checked against its constructor)."""

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
    hints, docs = typing.get_type_hints(TrainConfig), field_docs(TrainConfig)
    fields = {f.name: (_loose(hints[f.name]) | None, Field(None, description=docs[f.name]))
              for f in dataclasses.fields(TrainConfig) if f.name not in ("seed", "quiet", "checkpoint_dir", "resume")}
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
    """Named modules whose parameters stay frozen."""
    first_layers: int = Field(0, ge=0)
    """Freeze the first N parameterised layers."""


class ModelConfig(Section):
    """A model: built-in (``mlp``, ``cnn``), ``package.module:factory`` or a scikit-learn
    estimator class (``sklearn.tree:DecisionTreeClassifier``), with its options."""

    model: str = "cnn"
    """mlp | cnn | package.module:factory (called with options, plus input_shape and num_classes when it takes them) |
    a scikit-learn class, e.g. sklearn.tree:DecisionTreeClassifier."""
    options: dict[str, Any] = {}
    """Keyword options of the model or estimator."""
    weights: str | None = None
    """A .safetensors file, or a state dict read with torch.load(weights_only=True)."""
    weights_partial: bool = False
    """Load only the tensors that match by name and shape (e.g. a new head)."""
    freeze: FreezeConfig | None = None
    """Layers kept frozen while training."""
    train: TrainSettings | None = None
    """Training settings for this model only (the keys of train)."""

    @model_validator(mode="after")
    def _known_model(self):
        raise_at(check_model(self.model, self.options))
        if self.sklearn:
            for key in ("weights", "freeze"):
                if getattr(self, key) is not None:
                    raise at(key, f"{key}: applies to PyTorch models; {self.model!r} is a scikit-learn estimator, "
                                  f"trained in the study (give a fitted one to the teacher as file: PATH.skops)")
        return self

    @property
    def sklearn(self) -> bool:
        """Whether the model is a scikit-learn estimator class."""
        return ":" in self.model and is_sklearn_model(self.model)


def check_model(model: str, options: dict) -> tuple[str, str] | None:
    """``(field, problem)`` unless ``model`` is a built-in model taking ``options``, or an import path."""
    if model.count(":") == 1 and all(model.split(":")):
        try:
            factory = resolve_factory(model)
        except ValueError as exc:
            return "model", str(exc)
        if is_estimator_class(factory):
            allowed = sorted(factory().get_params(deep=False))
            unknown = sorted(set(options) - set(allowed))
            if unknown:
                return "options", f"{unknown} are not parameters of {factory.__name__}; allowed: {', '.join(allowed)}"
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


FILE_KEYS = ("kind", "output", "output_name", "trusted")  # what only a teacher file takes


class TeacherConfig(ModelConfig):
    """The teacher: a model trained in the study, a model with loaded ``weights`` (``fit:
    false`` to use it as loaded), or a ``file`` used as loaded: a scikit-learn model saved with
    skops, an ONNX model or a ``transformers`` model folder, recognised from its content."""

    name: str = "teacher"
    """The teacher's name in tables and files."""
    fit: bool = True
    """false: use the teacher as loaded (needs weights or file)."""
    file: str | None = None
    """A teacher used as loaded: a skops file, an ONNX file or a transformers model folder."""
    kind: Literal["auto", "skops", "onnx", "transformers"] = "auto"
    """What file holds (auto: read from its content)."""
    output: Literal["logits", "probabilities"] | None = None
    """ONNX: what the output holds (default logits)."""
    output_name: str | None = None
    """ONNX: the output to use (default: the first float output)."""
    trusted: list[str] = []
    """skops: extra types to trust (see the trust model)."""
    folds: int | None = Field(None, ge=0)
    """Tables: out-of-fold teacher outputs on the training rows, from this many folds (null: 5 for a
    scikit-learn teacher the study fits on a table, else 0; 0: off)."""

    @field_validator("trusted")
    @classmethod
    def _trusted(cls, value):
        try:
            return check_trusted(value, "trusted")
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("folds")
    @classmethod
    def _folds(cls, value):
        return value if value is None else check_folds(value)

    @model_validator(mode="after")
    def _loaded(self):
        defaults = {k: f.default for k, f in type(self).model_fields.items()}
        changed = sorted(k for k in ("model", "options", "weights", "freeze", "weights_partial", *FILE_KEYS)
                         if getattr(self, k) != defaults[k])
        if self.file is not None:
            clash = [k for k in changed if k not in FILE_KEYS]
            if clash or (self.fit and "fit" in self.model_fields_set):
                given = clash or ["fit: true"]
                raise at("file", f"a teacher file is used as loaded; it cannot be combined with {', '.join(given)}")
            self.fit = False
        elif not self.fit and self.weights is None:
            raise ValueError("fit: false uses the teacher as loaded, so it needs weights: PATH (or file: PATH)")
        for key in FILE_KEYS:
            if key in changed and self.file is None:
                raise at(key, f"{key}: describes a teacher file; give file: PATH too")
        return self


class DistillConfig(Section):
    """How a scikit-learn student is distilled (:class:`~kdistill.sklearn.DistilledClassifier`)."""

    mode: Literal["soft", "hard"] = "soft"
    """soft: the teacher's probabilities (rows replicated per class, probabilities as sample weights); hard: the
    teacher's labels."""
    temperature: float | None = Field(None, gt=0.0)
    """Temperature of the teacher's probabilities."""
    alpha: float | None = Field(None, ge=0.0, le=1.0)
    """Weight of the teacher against the labels: alpha * teacher + (1 - alpha) * onehot(y)."""
    augment: Literal["munge", "gibbs", "gaussian"] | None = None
    """Synthetic rows the teacher labels."""
    n_synthetic: int | None = Field(None, ge=1)
    """How many synthetic rows."""


class StudentConfig(Section):
    """One student run. ``model`` and ``options`` default to the experiment's ``student``."""

    name: str
    """The student's name in tables and files."""
    model: str | None = None
    """Another model than `student.model` (same forms as teacher.model)."""
    options: dict[str, Any] | None = None
    """Its options (default: `student.options`)."""
    methods: list[MethodConfig] = Field(min_length=1, default_factory=lambda: [
        MethodConfig(name=n, weight=w) for n, w in methods.ALONE])
    """The weighted terms of its objective (default: ce alone, the student trained alone)."""
    distill: DistillConfig | None = None
    """scikit-learn students only: how DistilledClassifier distils it (without it, a kd term distils in soft mode at
    its temperature and ce alone fits plainly)."""
    train: TrainSettings | None = None
    """Training settings for this student only."""

    @model_validator(mode="after")
    def _known_model(self):
        if self.model is not None:
            raise_at(check_model(self.model, self.options or {}))
        return self

    @property
    def distilled(self) -> bool:
        return self.distill is not None or any(methods.build(m.name.split(":")[0], **m.options).needs_teacher
                                               for m in self.methods)

    def objective(self):
        """The objective of the study's spec: the method terms, or for ``distill:`` the
        :class:`~kdistill.sklearn.DistilledClassifier` options (temperature from a kd term)."""
        terms = [m.term() for m in self.methods]
        if self.distill is None:
            return terms
        options = self.distill.model_dump(exclude_none=True)
        kd = next((m for m in self.methods if m.name == "kd"), None)
        if "temperature" not in options and kd is not None:
            options["temperature"] = float(methods.build("kd", **kd.options).temperature)
        return options
