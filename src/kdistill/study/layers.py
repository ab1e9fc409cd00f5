"""``kdistill layers``: every layer of the teacher and the students of an experiment (or of one
model) with its output shape and parameter count, and suggested pairs for feature methods."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .. import config
from ..boundary import translated
from ..data import read_source
from ..models import build_model, importable
from ..taps import layer_table, suggest_pairs
from ..weights import rebuild
from .experiment import load_splits
from .specs import student_spec, teacher_spec


def model_layers(target, input_shape=None, num_classes: int | None = None, options: dict | None = None) -> dict:
    """Layer tables of ``target``: an experiment file (its data gives the input shape), a weights
    file written by a study, or a model (``cnn``, ``mynets:factory``) with ``input_shape`` and
    ``num_classes``. Returns ``{"input_shape", "models": {name: rows}, "pairs": {student: pairs}}``."""
    path = Path(str(target))
    if path.suffix in (".yaml", ".yml"):
        return _experiment_layers(path)
    if path.suffix == ".safetensors":
        model, info = rebuild(path)
        shape = tuple(info["input_shape"])
        return {"input_shape": shape, "models": {path.stem: layer_table(model, shape)}, "pairs": {}}
    if input_shape is None or num_classes is None:
        raise ValueError(f"{target!r} is a model: give --input-shape (e.g. 3,32,32) and --classes; or give an "
                         f"experiment file (.yaml) or a weights file (.safetensors)")
    with importable("."), translated(f"model {str(target)!r}", "fix the factory, or check that it takes "
                                                                "(input_shape, num_classes, **options)",
                                                    keep=(ValueError, TypeError, OSError, MemoryError)):
        model = build_model(str(target), options or {}, input_shape, num_classes)
    if not isinstance(model, nn.Module):
        raise ValueError(f"{target!r} is a scikit-learn estimator; it has no layers")
    return {"input_shape": tuple(input_shape), "models": {str(target): _table(str(target), model, input_shape)},
            "pairs": {}}


def _table(name: str, model: nn.Module, shape) -> list[dict]:
    """The layer table of one model, a failed forward pass on inputs of ``shape`` named (too large
    to allocate: a ``MemoryError``)."""
    with translated(f"model {name!r} on inputs of shape {tuple(shape)}",
                    "check --input-shape (one sample, without the batch axis, e.g. 3,32,32)", keep=(MemoryError,)):
        return layer_table(model, shape)


def _experiment_layers(path: Path) -> dict:
    exp = config.load(path)
    data = load_splits(exp, exp.seeds[0], read_source(exp.data, exp.path))
    shape, k = data.input_shape, data.num_classes
    built = teacher_spec(exp).build(shape, k)
    teacher = _module(built)
    models, seen = {}, set()
    if teacher is not None:
        models[exp.teacher.name] = layer_table(teacher, shape)
    pairs = {}
    for s in exp.students:
        spec = student_spec(exp, s)
        student = None if spec.family in seen else _module(spec.make(shape, k, built, data))
        seen.add(spec.family)
        if student is not None:
            models[s.name] = layer_table(student, shape)
            if teacher is not None:
                pairs[s.name] = suggest_pairs(models[s.name], models[exp.teacher.name])
    return {"input_shape": shape, "models": models, "pairs": pairs}


def _module(model) -> nn.Module | None:
    """The PyTorch module of a model (a transformers teacher's too); None for others."""
    module = model if isinstance(model, nn.Module) else getattr(model, "module", None)
    return module if isinstance(module, nn.Module) else None
