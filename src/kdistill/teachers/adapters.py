"""Teacher adapters: a torch module, a fitted scikit-learn classifier, an ONNX file, a callable
(:func:`~kdistill.teachers.as_teacher` picks the right one; :mod:`.hf` adds transformers models)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

from ..boundary import library_error
from ..models import freeze
from .base import Teacher, as_list, check_output, finish_logits, set_classes


class TorchTeacher(Teacher):
    """A frozen ``nn.Module`` teacher; ``output`` says whether the module returns logits or
    probabilities (e.g. it ends with a softmax). Inputs are moved to the module's device and
    logits returned on the input's device."""

    def __init__(self, module: nn.Module, output: str = "logits", classes=None):
        self.module = freeze(module)
        self.output = check_output(output)
        set_classes(self, classes)

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        weight = next(iter(self.module.parameters()), None)
        with torch.inference_mode():
            out = self.module(x if weight is None else x.to(weight.device))
        # A normal tensor: inference tensors cannot be saved for the student's backward pass.
        return finish_logits(out.clone(), self.output, x, "the torch teacher", self)

    def to(self, device) -> TorchTeacher:
        self.module.to(device)
        return self


class _NumpyTeacher(Teacher):
    """Base of teachers that run on NumPy arrays on the CPU: inputs are sent as float32."""

    output = "logits"
    source = "teacher"

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        array = x.detach().to("cpu", torch.float32).numpy()
        return finish_logits(self._scores(array), self.output, x, self.source, self)

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
        if own is not None and classes is not None and as_list(own) != as_list(classes):
            raise ValueError(f"classes={as_list(classes)} differs from the estimator's classes_ {as_list(own)}")
        set_classes(self, own if own is not None else classes)

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
        self.output = check_output(output)
        self.source = f"the ONNX teacher {self.path}"
        self.output_name = output_name
        self._session = None
        set_classes(self, classes)
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
        try:
            return session.run([self._output], {self._input: x.astype(self._dtype, copy=False)})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors, translated at the boundary
            raise library_error(f"the ONNX teacher {self.path}", exc, f"the ONNX teacher {self.path} cannot run on a "
                                f"batch of shape {tuple(x.shape)}: {self._mismatch(x)}") from exc

    def _mismatch(self, x: np.ndarray) -> str:
        """What the model's declared input expects that the batch is not."""
        declared = list(self._session.get_inputs()[0].shape)
        fixed = [d if isinstance(d, int) else None for d in declared]
        if len(fixed) != x.ndim:
            return (f"its input {self._input!r} has {len(fixed)} axes {declared}, the data's batches have {x.ndim}; "
                    f"give data of the shape the model was exported for")
        if fixed[0] is not None and fixed[0] != x.shape[0]:
            return (f"its batch size is fixed at {fixed[0]} (input {self._input!r} of shape {declared}); export it "
                    f"again with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={{'input': {{0: "
                    f"'batch'}}}}))")
        wrong = [(i, d, x.shape[i]) for i, d in enumerate(fixed[1:], 1) if d is not None and d != x.shape[i]]
        if wrong:
            i, d, n = wrong[0]
            return (f"its input {self._input!r} expects {d} values on axis {i} (shape {declared}), the data has {n}; "
                    f"the teacher was made for other inputs (features, image size or channels)")
        return "onnxruntime refused it; check that the model was exported for this data"

    def __getstate__(self):
        # An onnxruntime session cannot be copied or pickled; it is reopened from the path.
        return {**self.__dict__, "_session": None}


class CallableTeacher(_NumpyTeacher):
    """A Python function ``fn(x) -> scores``: ``x`` is a float32 NumPy array of the batch (on
    the CPU), the result an array or tensor of shape ``(batch, classes)``."""

    def __init__(self, fn, output: str, classes=None):
        self.fn = fn
        self.output = check_output(output)
        self.source = f"the callable teacher {getattr(fn, '__name__', type(fn).__name__)}"
        set_classes(self, classes)

    def _scores(self, x: np.ndarray):
        out = self.fn(x)
        return out.detach().cpu() if isinstance(out, Tensor) else out
