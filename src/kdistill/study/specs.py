"""Model specs: how a study builds and trains each model, and the specs an experiment file describes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..config import Experiment, ModelConfig, StudentConfig, train_options
from ..engine import TrainConfig
from ..methods import ALONE, build
from ..models import build_model, freeze_layers
from ..weights import load_weights

log = logging.getLogger("kdistill")


@dataclass
class ModelSpec:
    """How to build and train one model of a study.

    ``objective`` is the engine's weighted term list; any term needing a teacher makes the
    model a distilled student. ``hyperparams`` are what the results table shows. ``fit=False``
    uses the model as built (a teacher whose weights were loaded). ``arch`` is the model's
    ``{"model": name, "options": {...}}`` spec for :func:`kdistill.models.build_model`, stored in
    its weights file so that ``kdistill export`` can rebuild it.
    """

    name: str
    build: Callable[[tuple, int], torch.nn.Module]
    objective: list = field(default_factory=lambda: list(ALONE))
    train: dict = field(default_factory=dict)
    hyperparams: dict = field(default_factory=dict)
    fit: bool = True
    arch: dict | None = None


def _builder(model: ModelConfig, where: str, exp: Experiment):
    def build(shape, k):
        net = build_model(model.model, model.options, shape, k)
        if model.weights is not None:
            load_weights(net, exp.path(model.weights), partial=model.weights_partial)
        if model.freeze is not None:
            frozen = freeze_layers(net, model.freeze.modules, model.freeze.first_layers)
            log.info("%s: frozen %s", where, ", ".join(frozen) or "nothing")
        return net

    return build


def _arch(model: ModelConfig) -> dict:
    """How ``kdistill export`` rebuilds the model from its weights file."""
    return {"model": model.model, "options": dict(model.options)}


def _hyperparams(student: StudentConfig | None, train: dict, options: dict, data=None) -> dict:
    """What the results table shows of a model: its size options, its objective, the inputs it
    trained on (unlabelled ones, fixed views) and its budget."""
    shown = {k: v for k, v in options.items() if k in ("channels", "hidden")}
    cfg = TrainConfig(**train)
    if student is not None:
        terms = {m.name: m for m in student.methods}
        if set(terms) == {"ce", "kd"} and abs(terms["ce"].weight + terms["kd"].weight - 1) < 1e-9:
            shown["alpha"] = terms["kd"].weight
            shown["T"] = build("kd", **terms["kd"].options).temperature
        elif student.distilled:
            shown["objective"] = " + ".join(f"{m.weight:g}·{m.name}" for m in student.methods)
        if student.distilled and cfg.unlabeled and (data.unlabeled is not None or data.unlabeled_rest):
            shown["inputs"] = "labelled + unlabelled"
    if data is not None and data.augment is not None and data.augment.views and cfg.views:
        shown["views"] = data.augment.views
    return {**shown, "epochs": cfg.epochs, "lr": cfg.lr}


def teacher_spec(exp: Experiment) -> ModelSpec:
    """The teacher of the experiment as a study model spec."""
    t = exp.teacher
    train = train_options(exp.train, t.train)
    return ModelSpec(t.name, _builder(t, t.name, exp), train=train, fit=t.fit, arch=_arch(t),
                     hyperparams=_hyperparams(None, train, t.options, exp.data) if t.fit else {"weights": t.weights})


def student_spec(exp: Experiment, s: StudentConfig, objective=None, **train_changes) -> ModelSpec:
    """Student ``s`` as a study model spec; ``objective`` and ``train_changes`` override the file's."""
    model = exp.student_model(s)
    train = {**train_options(exp.train, model.train, s.train), **train_changes}
    return ModelSpec(s.name, _builder(model, s.name, exp), objective=objective or [m.term() for m in s.methods],
                     train=train, hyperparams=_hyperparams(s, train, model.options, exp.data), arch=_arch(model))
