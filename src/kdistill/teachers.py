"""Teachers: anything that returns logits for a batch, behind one small protocol.

Adapters cover a torch ``nn.Module``, a fitted scikit-learn classifier or pipeline with
``predict_proba``, an ONNX file (run with onnxruntime), a Python callable, and a weighted
ensemble of any mix of these. Teachers that give probabilities are turned into logits with a
clamped log, ``log(max(p, PROB_EPS))``, so that a probability of exactly 0 stays finite.

A PyTorch teacher is frozen in place: its parameters stop requiring grad, it is put in eval
mode, and its ``train()`` is overridden so that a wrapper's ``.train()`` cannot switch dropout
or batch-norm updates back on. It runs under ``torch.inference_mode()``.

Class order: a teacher knows its classes when it has ``classes_`` (scikit-learn) or is given
``classes=``. :func:`check_classes` compares them with the data's classes and raises on any
difference, including the same classes in another order: outputs are never silently permuted.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

PROB_EPS = 1e-6  # floor of probabilities before the log: log(1e-6) = -13.8
OUTPUTS = ("logits", "probabilities")


class Teacher:
    """Protocol of a teacher: ``logits(x, index)`` for a batch, plus optional class metadata.

    ``for_dataset(ds, augmented)`` returns the teacher to use on that dataset (a cached teacher
    returns a view that reads stored outputs by ``index``); the default is the teacher itself.
    ``augmented=True`` says the loop will randomly transform that dataset's batches, so outputs
    stored for its clean items do not belong to the inputs the teacher will be shown. ``live()``
    is the teacher that runs its model on every batch (needed to tap its features).
    ``classes`` is the class of each output column, in order, when known.
    """

    num_classes: int | None = None
    classes: list | None = None

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def for_dataset(self, dataset: Dataset, augmented: bool = False) -> Teacher:
        return self

    def live(self) -> Teacher:
        """The teacher that actually runs its model on each batch (a cache returns what it wraps)."""
        return self

    def to(self, device) -> Teacher:
        return self


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no grad (stale gradients dropped), eval mode, and ``train()``
    keeps it in eval mode."""
    module.requires_grad_(False)
    for p in module.parameters():
        p.grad = None
    module.eval()
    for m in module.modules():
        # A partial of a module-level function, unlike a bound method, survives pickling.
        m.train = functools.partial(_stay_in_eval, m)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo :func:`freeze`: parameters require grad and ``train()`` works again."""
    for m in module.modules():
        m.__dict__.pop("train", None)
    module.requires_grad_(True)
    return module


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return output


def _set_classes(teacher: Teacher, classes) -> None:
    if classes is not None:
        teacher.classes = _as_list(classes)
        teacher.num_classes = len(teacher.classes)


def _as_list(classes) -> list:
    return classes.tolist() if isinstance(classes, np.ndarray) else list(classes)


def probabilities_to_logits(p: Tensor, source: str = "teacher") -> Tensor:
    """Logits ``log(max(p, PROB_EPS))`` of a batch of probability rows, after checking that
    ``p`` is 2-d, within [0, 1] and that each row sums to 1 (to 1e-3)."""
    if p.ndim != 2:
        raise ValueError(f"{source} returned probabilities of shape {tuple(p.shape)}; expected (batch, classes)")
    sums = p.sum(1)
    if not (torch.isfinite(p).all() and p.min() >= -1e-6 and p.max() <= 1 + 1e-6
            and torch.allclose(sums, torch.ones_like(sums), atol=1e-3)):
        raise ValueError(f"{source} was declared to return probabilities, but its rows are not probability "
                         f"distributions (row sums from {float(sums.min()):.4g} to {float(sums.max()):.4g}, "
                         f"values from {float(p.min()):.4g} to {float(p.max()):.4g}); pass output='logits' "
                         f"if it returns scores")
    return torch.log(p.clamp_min(PROB_EPS))


def _finish(out, output: str, like: Tensor, source: str) -> Tensor:
    """Turn a teacher's raw output into float32 logits on ``like``'s device."""
    out = torch.as_tensor(np.asarray(out) if not isinstance(out, Tensor) else out).float().to(like.device)
    if output == "probabilities":
        return probabilities_to_logits(out, source)
    if out.ndim != 2:
        raise ValueError(f"{source} returned logits of shape {tuple(out.shape)}; expected (batch, classes)")
    return out


class TorchTeacher(Teacher):
    """A frozen ``nn.Module`` teacher; ``output`` says whether the module returns logits or
    probabilities (e.g. it ends with a softmax). Inputs are moved to the module's device and
    logits returned on the input's device."""

    def __init__(self, module: nn.Module, output: str = "logits", classes=None):
        self.module = freeze(module)
        self.output = _check_output(output)
        _set_classes(self, classes)

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        weight = next(iter(self.module.parameters()), None)
        with torch.inference_mode():
            out = self.module(x if weight is None else x.to(weight.device))
        # A normal tensor: inference tensors cannot be saved for the student's backward pass.
        return _finish(out.clone(), self.output, x, "the torch teacher")

    def to(self, device) -> TorchTeacher:
        self.module.to(device)
        return self


class _NumpyTeacher(Teacher):
    """Base of teachers that run on NumPy arrays on the CPU: inputs are sent as float32."""

    output = "logits"
    source = "teacher"

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        array = x.detach().to("cpu", torch.float32).numpy()
        return _finish(self._scores(array), self.output, x, self.source)

    def _scores(self, x: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError


class SklearnTeacher(_NumpyTeacher):
    """A fitted scikit-learn classifier or pipeline with ``predict_proba``. Inputs are
    flattened to ``(batch, features)``; its ``classes_`` give the class order."""

    output = "probabilities"

    def __init__(self, estimator, classes=None):
        from sklearn.utils.validation import check_is_fitted

        if not hasattr(estimator, "predict_proba"):
            raise TypeError(f"{type(estimator).__name__} has no predict_proba; a scikit-learn teacher must give "
                            f"class probabilities (e.g. SVC(probability=True))")
        check_is_fitted(estimator)
        self.estimator = estimator
        self.source = f"the scikit-learn teacher {type(estimator).__name__}"
        own = getattr(estimator, "classes_", None)
        if own is not None and classes is not None and _as_list(own) != _as_list(classes):
            raise ValueError(f"classes={_as_list(classes)} differs from the estimator's classes_ {_as_list(own)}")
        _set_classes(self, own if own is not None else classes)

    def _scores(self, x: np.ndarray):
        return self.estimator.predict_proba(x.reshape(len(x), -1))


class OnnxTeacher(_NumpyTeacher):
    """An ONNX model run with onnxruntime on the CPU.

    The batch is fed to the model's first input in its own shape, as float32 (float64 if the
    model declares a double input). The output
    used is ``output_name``, or else the first floating-point tensor output (a scikit-learn
    model converted with ``zipmap=False`` then gives its probabilities, not its labels).
    """

    def __init__(self, path, output: str = "logits", classes=None, output_name: str | None = None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"ONNX teacher: no file at {self.path!r}")
        self.output = _check_output(output)
        self.source = f"the ONNX teacher {self.path}"
        self.output_name = output_name
        self._session = None
        _set_classes(self, classes)
        self._open()

    def _open(self):
        if self._session is None:
            import onnxruntime as ort

            try:
                self._session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - re-raised with the file named
                raise ValueError(f"{self.path!r} is not a readable ONNX model: {exc}") from exc
            first = self._session.get_inputs()[0]
            self._input = first.name
            self._dtype = np.float64 if first.type == "tensor(double)" else np.float32
            self._output = self._pick_output()
        return self._session

    def _pick_output(self) -> str:
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        if self.output_name is not None:
            if self.output_name not in names:
                raise ValueError(f"output_name={self.output_name!r} is not an output of {self.path}; "
                                 f"outputs: {', '.join(names)}")
            return self.output_name
        for o in outputs:
            if o.type in ("tensor(float)", "tensor(double)", "tensor(float16)"):
                return o.name
        raise ValueError(f"{self.path} has no floating-point tensor output (outputs: "
                         f"{', '.join(f'{o.name}: {o.type}' for o in outputs)}); for a converted scikit-learn "
                         f"model, convert with zipmap=False")

    def _scores(self, x: np.ndarray):
        session = self._open()
        return session.run([self._output], {self._input: x.astype(self._dtype, copy=False)})[0]

    def __getstate__(self):
        # An onnxruntime session cannot be copied or pickled; it is reopened from the path.
        return {**self.__dict__, "_session": None}


class CallableTeacher(_NumpyTeacher):
    """A Python function ``fn(x) -> scores``: ``x`` is a float32 NumPy array of the batch (on
    the CPU), the result an array or tensor of shape ``(batch, classes)``."""

    def __init__(self, fn, output: str, classes=None):
        self.fn = fn
        self.output = _check_output(output)
        self.source = f"the callable teacher {getattr(fn, '__name__', type(fn).__name__)}"
        _set_classes(self, classes)

    def _scores(self, x: np.ndarray):
        out = self.fn(x)
        return out.detach().cpu() if isinstance(out, Tensor) else out


class EnsembleTeacher(Teacher):
    """A weighted ensemble of teachers of any kind.

    Each member's logits are softened at its own temperature, turned into probabilities, and
    averaged with the (normalised) weights. ``logits`` returns the log of that weighted mean
    probability, ``log(max(sum_i w_i softmax(z_i / T_i), PROB_EPS))``, so a softmax of the
    ensemble's logits gives back the mean probability.

    Parameters
    ----------
    teachers : sequence
        Anything :func:`as_teacher` accepts (a callable must be wrapped first, to say its output).
    weights : sequence of float, optional
        Non-negative weights, one per teacher, not all zero; equal weights by default.
    temperatures : sequence of float, optional
        One temperature > 0 per teacher; 1 by default.
    """

    def __init__(self, teachers: Sequence, weights: Sequence[float] | None = None,
                 temperatures: Sequence[float] | None = None):
        self.members = [as_teacher(t) for t in teachers]
        n = len(self.members)
        if n == 0:
            raise ValueError("teachers must hold at least one teacher, got an empty sequence")
        self.weights = _per_member("weights", weights, n, lambda w: w >= 0, ">= 0")
        if sum(self.weights) <= 0:
            raise ValueError(f"weights must not all be zero, got {self.weights}")
        self.temperatures = _per_member("temperatures", temperatures, n, lambda t: t > 0, "> 0")
        _set_classes(self, _common_classes(self.members))

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        total = sum(self.weights)
        mean = 0
        for member, w, temp in zip(self.members, self.weights, self.temperatures):
            mean = mean + (w / total) * F.softmax(member.logits(x, index) / temp, dim=1)
        return torch.log(mean.clamp_min(PROB_EPS))

    def for_dataset(self, dataset: Dataset, augmented: bool = False) -> EnsembleTeacher:
        view = copy.copy(self)
        view.members = [m.for_dataset(dataset, augmented) for m in self.members]
        return view

    def to(self, device) -> EnsembleTeacher:
        for m in self.members:
            m.to(device)
        return self


def _per_member(name: str, values, n: int, ok, allowed: str) -> list[float]:
    if values is None:
        return [1.0] * n
    values = [float(v) for v in values]
    if len(values) != n:
        raise ValueError(f"{name} must have one value per teacher ({n}), got {len(values)}")
    bad = [v for v in values if not (np.isfinite(v) and ok(v))]
    if bad:
        raise ValueError(f"{name} must be finite and {allowed}, got {values}")
    return values


def _common_classes(members: list[Teacher]) -> list | None:
    known = [m.classes for m in members if m.classes is not None]
    for other in known[1:]:
        if other != known[0]:
            raise ValueError(f"the ensemble's teachers disagree on their classes: {known[0]} vs {other}; "
                             f"every member must output the same classes in the same order")
    return known[0] if known else None


def check_classes(teacher_classes, data_classes, where: str = "teacher") -> None:
    """Raise unless the teacher's output columns are the data's classes in the data's order.

    The teacher's classes match when they equal the data's class names (compared as strings),
    or are the class indices ``0 .. K-1`` that the data's labels hold (a teacher fitted on
    encoded labels).
    """
    t = _as_list(teacher_classes)
    d = [str(c) for c in data_classes]
    if [str(c) for c in t] == d or t == list(range(len(d))):
        return
    if sorted(map(str, t)) == sorted(d):
        raise ValueError(f"the {where}'s classes are the data's classes in another order: {where} {t}, data {d}; "
                         f"outputs are not permuted silently: reorder the data's classes or the teacher's outputs")
    raise ValueError(f"the {where}'s classes {t} do not match the data's classes {d}")


def as_teacher(obj, *, output: str | None = None, classes=None) -> Teacher:
    """Wrap ``obj`` as a :class:`Teacher`.

    Parameters
    ----------
    obj : Teacher, torch.nn.Module, scikit-learn estimator, str or path, or callable
        A fitted scikit-learn classifier or pipeline needs ``predict_proba``; a string or path
        names an ``.onnx`` file; a callable gets a float32 NumPy batch.
    output : {"logits", "probabilities"}, optional
        What ``obj`` returns. Required for a callable; ``"logits"`` by default for a module or
        an ONNX file; scikit-learn estimators always give probabilities.
    classes : sequence, optional
        The class of each output column, in order, checked against the data's classes.
        Taken from ``classes_`` for scikit-learn estimators.
    """
    if isinstance(obj, Teacher):
        if output is not None or classes is not None:
            raise ValueError("output= and classes= apply when wrapping a model; this object is already a Teacher")
        return obj
    if isinstance(obj, nn.Module):
        return TorchTeacher(obj, output or "logits", classes)
    if hasattr(obj, "predict_proba") or hasattr(obj, "fit"):
        if output not in (None, "probabilities"):
            raise ValueError(f"a scikit-learn teacher gives probabilities, got output={output!r}")
        return SklearnTeacher(obj, classes)
    if isinstance(obj, (str, os.PathLike)):
        return OnnxTeacher(obj, output or "logits", classes)
    if callable(obj):
        if output is None:
            raise ValueError(f"output is required for a callable teacher: one of {', '.join(OUTPUTS)}")
        return CallableTeacher(obj, output, classes)
    raise TypeError(f"cannot use {type(obj).__name__} as a teacher; expected a torch.nn.Module, a fitted "
                    f"scikit-learn classifier, a path to an ONNX file, a callable or a kdistill Teacher")
