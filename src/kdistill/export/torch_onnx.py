"""PyTorch to ONNX: export with a dynamic batch axis, reference logits in the ONNX file's own
arithmetic, and the parity of the two.

The legacy TorchScript exporter (``dynamo=False``) is used on purpose: it handles the zoo's
plain modules exactly and needs no ``onnxscript`` dependency.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import batches
from ..files import atomic_write
from .runtime import ExportError

# max |logit difference| allowed between PyTorch and float32 ONNX, per unit of the largest |logit| above 1
PARITY_TOLERANCE = 1e-4


def export_onnx(model: nn.Module, input_shape, path, opset: int = 17) -> Path:
    """Export ``model`` (in eval mode) to ONNX with input ``input`` and output ``logits``,
    both with a dynamic batch axis, and check the file with ``onnx.checker``."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    dummy = torch.zeros(2, *input_shape, device=_device(model))

    def write(tmp: Path) -> None:  # atomically: a link at ``path`` is replaced, never written through
        to_onnx(model, dummy, str(tmp), opset)
        onnx.checker.check_model(str(tmp))

    try:
        return atomic_write(path, write)
    except (RuntimeError, onnx.checker.ValidationError) as exc:  # an operation the exporter cannot convert
        raise ExportError(f"{type(model).__name__} ({path.name})", exc) from exc


def to_onnx(model: nn.Module, dummy: torch.Tensor, target, opset: int = 17) -> None:
    """The export itself, to a path or a file object (raises the exporter's own errors)."""
    with warnings.catch_warnings(), _quiet_output():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, (dummy,), target, dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


@contextlib.contextmanager
def _quiet_output():
    """Standard output and error silenced at the file-descriptor level: on a failure the
    exporter prints its whole graph from C++, before the one-line error kdistill reports."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            try:
                yield
            finally:
                for fd, copy_ in zip((1, 2), saved):
                    os.dup2(copy_, fd)
    finally:
        for copy_ in saved:
            os.close(copy_)


def check_exportable(model: nn.Module, input_shape, what: str) -> None:
    """Export ``model`` to ONNX in memory (nothing written), as a run will after training.

    Raises
    ------
    ExportError
        Naming ``what`` and the operation the exporter cannot convert.
    """
    import onnx

    buffer = io.BytesIO()
    was_training = model.training
    try:
        to_onnx(model.eval(), torch.zeros(2, *input_shape, device=_device(model)), buffer)
        onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    except (RuntimeError, onnx.checker.ValidationError) as exc:
        raise ExportError(what, exc) from exc
    finally:
        model.train(was_training)


def _device(model: nn.Module):
    return next(iter(model.parameters()), torch.empty(0)).device


def onnx_logits(sess, dataset: Dataset, batch_size: int = 256) -> np.ndarray:
    """Logits of every sample of ``dataset``, in order."""
    return np.concatenate([sess.run(None, {"input": x.numpy()})[0] for x, _, _ in batches(dataset, batch_size)])


def reference_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """``model``'s logits on ``x`` in the ONNX file's own arithmetic: float32 on the CPU (a GPU
    computes convolutions in TF32 by default, off by up to 1e-3)."""
    model.eval()
    if _device(model).type != "cpu":
        model = copy.deepcopy(model).cpu()
    with torch.inference_mode():
        return model(x).float().numpy()


def parity(ref: np.ndarray, sess, x: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference between the reference logits ``ref`` (:func:`reference_logits`)
    and the ONNX session's on ``x``, run as one batch and sample by sample (which exercises the
    dynamic batch axis), and the largest absolute reference logit (float32 rounding grows with it)."""
    whole = sess.run(None, {"input": x.numpy()})[0]
    single = np.concatenate([sess.run(None, {"input": x[i:i + 1].numpy()})[0] for i in range(min(len(x), 8))])
    return float(max(np.abs(whole - ref).max(), np.abs(single - ref[:len(single)]).max())), float(np.abs(ref).max())
