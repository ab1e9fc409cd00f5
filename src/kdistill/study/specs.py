"""Model specs: how a study builds and trains each model, and the specs an experiment file describes."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Experiment, ModelConfig, StudentConfig, TeacherConfig, train_options
from ..engine import TrainConfig
from ..methods import ALONE, build
from ..models import build_model, freeze_layers, importable
from ..models.prune import FromTeacher
from ..models.shapes import shapes_of
from ..teachers import load_teacher_file
from ..weights import load_weights
from . import members
from .members import needs_teacher, seeded, sklearn_options

log = logging.getLogger("kdistill")


@dataclass
class ModelSpec:
    """How to build and train one model of a study.

    ``objective`` is the engine's weighted term list; any term needing a teacher makes the
    model a distilled student. ``hyperparams`` are what the results table shows. ``fit=False``
    uses the model as built (a teacher whose weights were loaded). ``arch`` is the model's
    ``{"model": name, "options": {...}}`` spec for :func:`kdistill.models.build_model`, stored in
    its weights file so that ``kdistill export`` can rebuild it. ``folds`` (teachers only) sets
    the K of out-of-fold outputs (see :mod:`kdistill.teachers.oof`). ``guard`` (the default recipe
    of a bare student) keeps the student alone where distilling made it worse on validation. ``build`` may also return a
    scikit-learn estimator (whose objective may be :class:`~kdistill.sklearn.DistilledClassifier`
    options) or a teacher used as loaded (see :mod:`.members`). Students of one ``family`` (the
    same architecture) are compared with the student alone of that family.
    """

    name: str
    build: Callable[[tuple, int], object]
    objective: list | dict = field(default_factory=lambda: list(ALONE))
    train: dict = field(default_factory=dict)
    hyperparams: dict = field(default_factory=dict)
    fit: bool = True
    arch: dict | None = None
    family: str | None = None
    folds: int | None = None  # a teacher's cross-fitting folds (None: the default for its kind and data)
    guard: bool = False  # a distilled student worse on validation than its student alone is replaced by it
    start: Callable | None = None  # (trained teacher, splits) -> model: a student pruned from the teacher
    categoricals: str = "native"  # how a boosted tree takes a table's categorical columns (kdistill.categoricals)

    def make(self, shape: tuple, k: int, teacher=None, data=None):
        """The model to train: built, or for a student ``start``-ed from the teacher, made from the
        trained ``teacher`` (see :class:`~kdistill.models.prune.FromTeacher`)."""
        return self.build(shape, k) if self.start is None else self.start(teacher, data)

    def arch_of(self, model) -> dict | None:
        """``arch`` as the weights file stores it: a pruned student's layer sizes added as data."""
        if self.arch is None or self.start is None or members.kind_or_none(model) != "torch":
            return self.arch
        return {**self.arch, "shapes": shapes_of(model)}

    @property
    def distilled(self) -> bool:
        """Whether the model learns from the teacher."""
        return needs_teacher(self.objective)


def _builder(model: ModelConfig, where: str, exp: Experiment):
    if isinstance(model, TeacherConfig) and model.file is not None:
        return lambda shape, k: load_teacher_file(exp.path(model.file), model.kind, output=model.output,
                                                  output_name=model.output_name, trusted=model.trusted)

    def build(shape, k):
        with importable(exp.path(".")):
            net = build_model(model.model, model.options, shape, k)
        if model.sklearn:
            return seeded(net)
        if model.weights is not None:
            load_weights(net, exp.path(model.weights), partial=model.weights_partial)
        if model.freeze is not None:
            frozen = freeze_layers(net, model.freeze.modules, model.freeze.first_layers)
            log.info("%s: frozen %s", where, ", ".join(frozen) or "nothing")
        return net

    return build


def _arch(model: ModelConfig) -> dict | None:
    """How ``kdistill export`` rebuilds the model from its weights file (PyTorch models only)."""
    if isinstance(model, TeacherConfig) and model.file is not None or model.sklearn:
        return None
    return {"model": model.model, "options": dict(model.options)}


def _hyperparams(student: StudentConfig | None, train: dict, options: dict, data=None, sklearn: bool = False) -> dict:
    """What the results table shows of a model: its size options, its objective, the inputs it
    trained on (unlabelled ones, fixed views) and its budget; a scikit-learn model's options and
    DistilledClassifier settings."""
    if sklearn:
        shown = dict(options)
        if student is not None and student.distilled:
            shown.update(sklearn_options(student.objective()))
        return shown
    shown = {k: v for k, v in options.items() if k in ("channels", "hidden")}
    cfg = TrainConfig(**train)
    if student is not None:
        shown.update(objective_shown([(m.name, m.weight, m.options) for m in student.methods], student.distilled))
        if student.distilled and cfg.unlabeled and (data.unlabeled is not None or data.unlabeled_rest):
            shown["inputs"] = "labelled + unlabelled"
        if student.distilled and cfg.labeled_share is not None:  # as compare's table shows it
            shown["labeled_share"] = cfg.labeled_share
    if data is not None and data.augment is not None and data.augment.views and cfg.views:
        shown["views"] = data.augment.views
    return {**shown, **budget_shown(cfg)}


def budget_shown(cfg: TrainConfig) -> dict:
    """The training budget a results table shows: the epochs, the step budget where one is set (it
    may end training before the epochs do) and the learning rate."""
    steps = {"max_steps": cfg.max_steps} if cfg.max_steps is not None else {}
    return {"epochs": cfg.epochs, **steps, "lr": cfg.lr}


def _categoricals(exp: Experiment) -> str:
    return exp.data.table.categoricals if exp.data.table is not None else "native"


def teacher_spec(exp: Experiment) -> ModelSpec:
    """The teacher of the experiment as a study model spec."""
    t = exp.teacher
    train = train_options(exp.train, t.train)
    loaded = {"file": t.file} if t.file is not None else {"weights": t.weights}
    return ModelSpec(t.name, _builder(t, t.name, exp), train=train, fit=t.fit, arch=_arch(t), folds=t.folds,
                     categoricals=_categoricals(exp),
                     hyperparams=(_hyperparams(None, train, t.options, exp.data, t.file is None and t.sklearn)
                                  if t.fit else loaded))


def student_spec(exp: Experiment, s: StudentConfig, objective=None, **train_changes) -> ModelSpec:
    """Student ``s`` as a study model spec; ``objective`` and ``train_changes`` override the file's.
    A student ``from_teacher`` is the trained teacher pruned (its architecture, its weights
    inherited or fresh), of the family of its pruned architecture."""
    model = exp.student_model(s)
    train = {**train_options(exp.train, model.train, s.train), **train_changes}
    spec = ModelSpec(s.name, _builder(model, s.name, exp), objective=objective or s.objective(), train=train,
                     categoricals=_categoricals(exp),
                     hyperparams=_hyperparams(s, train, model.options, exp.data, model.sklearn), arch=_arch(model),
                     family=json.dumps({"model": model.model, "options": model.options}, sort_keys=True, default=str))
    pruned = exp.from_teacher(s)
    if pruned is None:
        return spec
    return from_teacher_spec(spec, pruned, _arch(exp.teacher))


def from_teacher_spec(spec: ModelSpec, pruned: FromTeacher, teacher_arch: dict | None) -> ModelSpec:
    """``spec`` made a student pruned from the trained teacher (``teacher_arch``: how its weights
    file names the original architecture)."""
    def no_build(shape, k):
        raise ValueError(f"{spec.name!r} is pruned from the trained teacher, so it is made from it, not built")

    shown = {"prune": pruned.prune, "importance": pruned.importance, "steps": pruned.iterative_steps,
             "weights": pruned.weights, **({"allocation": pruned.allocation} if pruned.allocation != "uniform" else {}),
             **({"reconstruct": True} if pruned.reconstruct and pruned.weights == "inherit" else {})}
    hyper = {**shown, **{k: v for k, v in spec.hyperparams.items() if k not in ("channels", "hidden")}}
    return dataclasses.replace(spec, build=no_build, start=pruned.start, arch=teacher_arch, hyperparams=hyper,
                               family=f"{json.dumps(teacher_arch, sort_keys=True, default=str)} {pruned.family}")


def objective_shown(terms, distilled: bool) -> dict:
    """How the table shows an objective of ``(name, weight[, options])`` terms: alpha and T of a
    ce + kd objective, else the weighted terms of one that distils, else nothing."""
    by_name = {t[0]: (t[1], t[2] if len(t) > 2 else {}) for t in terms}
    if set(by_name) == {"ce", "kd"} and abs(by_name["ce"][0] + by_name["kd"][0] - 1) < 1e-9:
        return {"alpha": by_name["kd"][0], "T": build("kd", **by_name["kd"][1]).temperature}
    return {"objective": " + ".join(f"{t[1]:g}·{t[0]}" for t in terms)} if distilled else {}
