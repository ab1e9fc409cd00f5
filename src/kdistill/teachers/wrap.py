""":func:`as_teacher`: anything that gives class scores, as a :class:`~kdistill.teachers.Teacher`."""

from __future__ import annotations

import os

from torch import nn

from .adapters import CallableTeacher, OnnxTeacher, SklearnTeacher, TorchTeacher
from .base import OUTPUTS, Teacher
from .files import load_teacher_file


def as_teacher(obj, *, output: str | None = None, classes=None, output_name: str | None = None) -> Teacher:
    """Wrap ``obj`` as a :class:`Teacher`.

    Parameters
    ----------
    obj : Teacher, torch.nn.Module, scikit-learn estimator, str or path, or callable
        A fitted scikit-learn classifier or pipeline needs ``predict_proba``; a string or path
        names an ONNX file, a skops file or a ``transformers`` model folder (recognised from the
        content); a callable gets a float32 NumPy batch.
    output : {"logits", "probabilities"}, optional
        What ``obj`` returns. Required for a callable; ``"logits"`` by default for a module or
        an ONNX file; scikit-learn estimators always give probabilities.
    classes : sequence, optional
        The class of each output column, in order, checked against the data's classes.
        Taken from ``classes_`` for scikit-learn estimators.
    output_name : str, optional
        The output of an ONNX model to use (default: its first floating-point output).

    Returns
    -------
    Teacher
        A frozen teacher whose ``logits(x)`` the training loop and the cache read.
    """
    if output_name is not None and not isinstance(obj, (str, os.PathLike, OnnxTeacher)):
        raise ValueError(f"output_name= names an output of an ONNX model; {type(obj).__name__} is not one")
    if isinstance(obj, Teacher):
        if output is not None or classes is not None or output_name is not None:
            raise ValueError("output=, classes= and output_name= apply when wrapping a model; this object is already "
                             "a Teacher")
        return obj
    if isinstance(obj, nn.Module):
        return TorchTeacher(obj, output or "logits", classes)
    if hasattr(obj, "predict_proba") or hasattr(obj, "fit"):
        if output not in (None, "probabilities"):
            raise ValueError(f"a scikit-learn teacher gives probabilities, got output={output!r}")
        return SklearnTeacher(obj, classes)
    if isinstance(obj, (str, os.PathLike)):
        return load_teacher_file(obj, output=output, classes=classes, output_name=output_name)
    if callable(obj):
        if output is None:
            raise ValueError(f"output is required for a callable teacher: one of {', '.join(OUTPUTS)}")
        return CallableTeacher(obj, output, classes)
    raise TypeError(f"cannot use {type(obj).__name__} as a teacher; expected a torch.nn.Module, a fitted "
                    f"scikit-learn classifier, a path to an ONNX, skops or transformers file, a callable or a "
                    f"kdistill Teacher")
