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
from ..models.prune import FromTeacher
from ..teachers.oof import check_folds
from ..weights import check_trusted
from .section import Section, at, checked, raise_at
from .shrink import ShrinkConfig


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
        return checked(check_trusted, value, "trusted")

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


class FromTeacherConfig(Section):
    """A student that starts as the trained teacher, structurally pruned (Torch-Pruning): ``prune``
    is the share of the teacher's parameters (``target: macs``: multiply-accumulates) removed;
    ``weights: fresh`` trains the same pruned architecture from new weights."""

    prune: float = Field(0.9, gt=0.0, lt=1.0)
    """Share of the teacher's parameters (or MACs) removed: 0.9 keeps a tenth."""
    importance: Literal["magnitude", "taylor"] = "magnitude"
    """Which channels go: the smallest by L2 norm, or by first-order Taylor estimate on training batches."""
    iterative_steps: int = Field(1, ge=1, le=100)
    """Steps in which the share is reached, importance measured anew after each."""
    target: Literal["params", "macs"] = "params"
    """What `prune` is a share of: parameters or multiply-accumulates."""
    weights: Literal["inherit", "fresh"] = "inherit"
    """inherit: the teacher's surviving weights; fresh: the same pruned architecture from new weights."""
    allocation: Literal["uniform", "global"] = "uniform"
    """uniform: every layer loses the same share of its channels; global: the channels of all layers are ranked
    together, so layers whose channels matter less lose more (one may keep as little as one channel)."""
    reconstruct: bool = False
    """true: refit each pruned layer by least squares to the teacher's outputs on a few training batches, for a student
    used with little or no training (after an epoch of training it made no measured difference)."""

    def spec(self) -> FromTeacher:
        return FromTeacher(**self.model_dump())


class StudentModelConfig(ModelConfig):
    """The experiment's default ``student``: a model, or ``from_teacher`` (the teacher pruned)."""

    from_teacher: FromTeacherConfig | None = None
    """Every student that names no model is the trained teacher, pruned."""
    shrink: ShrinkConfig | None = None
    """The search of `kdistill shrink`: the budget, the family (default: this model), how the student is chosen."""

    @model_validator(mode="after")
    def _one_kind(self):
        given = sorted(k for k in ("model", "options", "weights", "freeze") if k in self.model_fields_set)
        if self.from_teacher is not None and given:
            raise at("from_teacher", f"a student from_teacher is the teacher pruned; it takes no {', '.join(given)}")
        if self.shrink is not None and (self.from_teacher is not None or {"weights", "freeze"} & set(given)):
            other = "from_teacher" if self.from_teacher is not None else ", ".join(sorted({"weights", "freeze"}
                                                                                       & set(given)))
            raise at("shrink", f"student.shrink searches the student (model and options, if given, are the family "
                               f"it scales); it takes no {other}")
        if self.shrink is not None and self.shrink.choose == "smallest" and self.shrink.tolerance is None:
            raise at("shrink.tolerance", "choose: smallest needs a tolerance: the accuracy points the student may "
                                         "lose against the teacher, e.g. 0.01")
        return self


class StudentConfig(Section):
    """One student run. ``model`` and ``options`` default to the experiment's ``student``;
    ``from_teacher`` makes it the trained teacher, pruned."""

    name: str
    """The student's name in tables and files."""
    model: str | None = None
    """Another model than `student.model` (same forms as teacher.model)."""
    options: dict[str, Any] | None = None
    """Its options (default: `student.options`)."""
    from_teacher: FromTeacherConfig | None = None
    """This student is the trained teacher, structurally pruned (instead of a model)."""
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
        if self.from_teacher is not None and (self.model is not None or self.options is not None):
            raise at("from_teacher", "a student from_teacher is the teacher pruned; it takes no model or options")
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
