"""The teacher-output cache's one pass, at the speed of the fastest engine here: a PyTorch
teacher on the CPU is exported (in memory) to ONNX and run by ONNX Runtime, which measured about
3x faster than eager PyTorch for a CNN teacher on one thread (``benchmarks/shrink.py --part
cache``). Its outputs must match PyTorch's on the first rows of the first batch (to 1e-4 of their scale, far below
the float16 rounding of the cache), else PyTorch runs as before; a module the exporter cannot
convert runs on PyTorch too. A float32 cache (``dtype="float32"``) is always built by PyTorch, so
that it serves the live teacher's outputs bit for bit."""

from __future__ import annotations

import io
import logging
import warnings

import torch
from torch import Tensor

from .adapters import TorchTeacher
from .base import finish_logits

log = logging.getLogger("kdistill")
TOLERANCE = 1e-4


def onnx_runner(teacher, x: Tensor):
    """``x -> logits`` by ONNX Runtime for a CPU :class:`TorchTeacher`, checked on the batch ``x``
    against PyTorch; ``None`` where it cannot be used (then the teacher runs as it is)."""
    if type(teacher) is not TorchTeacher or x.device.type != "cpu":
        return None
    weight = next(iter(teacher.module.parameters()), None)
    if weight is None or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    try:
        import onnxruntime as ort

        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(teacher.module, (x[:2].float(),), buffer, dynamo=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch would use
        options.log_severity_level = 3
        sess = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any exporter or runtime failure: PyTorch runs instead
        log.debug("teacher cache: ONNX Runtime not used (%s)", str(exc).splitlines()[0][:200] if str(exc) else exc)
        return None

    def run(batch: Tensor) -> Tensor:
        out = torch.from_numpy(sess.run(None, {"input": batch.float().numpy()})[0])
        return finish_logits(out, teacher.output, batch, "the torch teacher", teacher)

    reference, fast = teacher.logits(x[:16]), run(x[:16])
    scale = max(1.0, float(reference.abs().max()))
    if not torch.allclose(reference, fast, atol=TOLERANCE * scale, rtol=0):
        log.debug("teacher cache: ONNX Runtime's outputs differ from PyTorch's; PyTorch runs")
        return None
    return run
