"""Checks of an experiment's models before any training: each is built and run once on real data.

``kdistill validate`` and ``kdistill run`` (before the teacher trains) build the teacher and
every student as the study will, on the device its settings name, and take one dry training
step on a few real samples through the engine's own :class:`~kdistill.engine.Trainer`: model
options, weights files and frozen layers, the input shape, one logit per class, the layer names
feature methods tap and their connectors, and the device and precision. So a run never fails
after the teacher has trained on something such a check could see.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from ..config import Experiment
from ..data import Splits
from ..engine import Runtime, TrainConfig, Trainer
from ..export import ExportError, check_exportable
from ..methods import objective
from ..teachers import as_teacher
from . import members
from .specs import ModelSpec, student_spec, teacher_spec

log = logging.getLogger("kdistill")


def check_models(exp: Experiment, data: Splits) -> list[str]:
    """Build the teacher and every student of ``exp`` for ``data`` and take one dry step with
    each (students with the teacher); returns one line per model (name, parameters, device).

    Raises
    ------
    ValueError
        Naming the model (by its place in the file and its name) and what failed.
    """
    teacher = teacher_spec(exp)
    where = "teacher" if exp.teacher.file is None else f"teacher file {str(exp.path(exp.teacher.file))!r}"
    model_t = _check(teacher, where, data, None)
    if exp.teacher.file is not None:
        teacher_batch(model_t, where, data)
    lines, exported = [_line(teacher, model_t)], set()
    for i, s in enumerate(exp.students):
        spec = student_spec(exp, s)
        model = _check(spec, f"students.{i} ({s.name!r})", data, model_t)
        lines.append(_line(spec, model))
        if spec.family not in exported:  # one export per architecture
            exported.add(spec.family)
            problem = export_problem(model, data.input_shape, f"students.{i} ({s.name!r})")
            lines[-1] += f" (warning: {problem}; its ONNX columns will be empty)" if problem else ""
    return lines


def export_problem(model, input_shape, what: str) -> str | None:
    """Why the PyTorch ``model`` cannot be exported to ONNX (warned about, once: the run trains
    it and leaves its ONNX columns empty), or ``None``."""
    if members.kind(model) != "torch":
        return None
    try:
        check_exportable(model, input_shape, what)
    except ExportError as exc:
        log.warning("%s; the run trains it and leaves its ONNX columns empty", exc)
        return str(exc)
    return None


def _named(where: str, exc: BaseException) -> ValueError:
    """``exc`` as a ``ValueError`` that names the teacher file of ``where`` (once)."""
    path = where.split("'")[1] if where.count("'") >= 2 else where
    return ValueError(str(exc) if path in str(exc) else f"{where}: {exc}")


def teacher_batch(teacher, where: str, data: Splits) -> None:
    """One batch of real inputs through a teacher file: its input shape and batch size, and one
    output per class."""
    n = min(4, len(data.train))
    x = torch.stack([data.train[i][0] for i in range(n)])
    try:
        out = as_teacher(teacher).logits(x)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise _named(where, exc) from exc
    if tuple(out.shape) != (n, data.num_classes):
        raise ValueError(f"{where}: gives outputs of shape {tuple(out.shape)} for a batch of {n}, not one score per "
                         f"class ({data.num_classes} classes: {data.classes[:10]})")


def _line(spec: ModelSpec, model) -> str:
    if members.kind(model) != "torch":
        return f"{spec.name}: {type(getattr(model, 'estimator', model)).__name__}, on cpu"
    device = next(iter(model.parameters()), torch.empty(0)).device
    return f"{spec.name}: {spec.arch['model'] if spec.arch else 'model'}, " \
           f"{sum(p.numel() for p in model.parameters()):,} parameters, on {device}"


def _check(spec: ModelSpec, where: str, data: Splits, teacher) -> torch.nn.Module:
    """``spec``'s model, built and run through one dry step; errors name ``where``."""
    cfg = TrainConfig(**{**spec.train, "seed": 0, "quiet": True})
    rt = _runtime(cfg, where)
    torch.manual_seed(0)
    try:
        model = spec.make(data.input_shape, data.num_classes, teacher, data)
    except (ValueError, TypeError, RuntimeError) as exc:
        if spec.start is not None:
            raise ValueError(f"{where}: cannot prune the teacher into this student: {exc}") from exc
        if spec.arch is None and where.startswith("teacher file"):  # a file, not a model with options
            raise _named(where, exc) from exc
        arch = spec.arch or {}
        raise ValueError(f"{where}: cannot build model {arch.get('model')!r} with options {arch.get('options')} "
                         f"for inputs of shape {data.input_shape} and {data.num_classes} classes: {exc}") from exc
    if members.kind(model) != "torch":
        return model  # a scikit-learn model or a teacher used as loaded: nothing the engine runs
    try:
        Trainer(model.to(rt.device), data, objective(spec.objective),
                _dry_teacher(teacher, data) if spec.distilled else None, cfg, rt)
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return model


def _dry_teacher(teacher, data: Splits):
    """The teacher of a student's dry step; a scikit-learn teacher the study has yet to fit is
    stood in for by uniform logits (the step checks the student's side)."""
    if members.kind(teacher) == "sklearn":
        try:
            return as_teacher(teacher)
        except NotFittedError:
            k = data.num_classes
            return as_teacher(lambda x: np.zeros((len(x), k), np.float32), output="logits")
    return as_teacher(teacher)


def _runtime(cfg: TrainConfig, where: str) -> Runtime:
    """The model's device and precision, checked here; one process, even under torchrun (the
    dry step must not take part in collective operations)."""
    try:
        rt = Runtime.create(cfg.device, cfg.precision)
    except RuntimeError as exc:
        raise ValueError(f"{where}: train.device {cfg.device!r} is not a device torch knows ({exc}); use cpu, cuda, "
                         f"cuda:N, mps or auto") from exc
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    kind = rt.device.type
    backend = getattr(torch.backends, kind, None) if kind == "mps" else getattr(torch, kind, None)
    available = kind == "cpu" or (hasattr(backend, "is_available") and backend.is_available())
    if not available:
        raise ValueError(f"{where}: train.device {cfg.device!r} is not available on this machine; use cpu, or auto "
                         f"(CUDA when present)")
    if kind == "cuda" and (rt.device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{where}: train.device {cfg.device!r} is not available on this machine (it has "
                         f"{torch.cuda.device_count()} CUDA device(s): cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return dataclasses.replace(rt, rank=0, world_size=1)
