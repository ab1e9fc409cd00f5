"""What every exported model shares: an onnxruntime CPU session, the latency measurement, and
the error raised when an exported model is not faithful to the original."""

from __future__ import annotations

import re
import statistics
import time

import numpy as np

from ..boundary import BoundaryError, first_line

BATCH_SIZES = (1, 64)


class ParityError(ValueError):
    """The exported model's outputs differ from the original model's by more than the tolerance."""


class ExportError(BoundaryError):
    """The ONNX exporter (or checker) refused a model: ``model`` names it, ``operation`` the
    operation it could not convert (``None`` when its message names none)."""

    def __init__(self, model: str, exc: BaseException):
        found = re.search(r"operator '([^']+)'", str(exc))
        self.model, self.operation = model, found.group(1) if found else None
        what = f"the operation {self.operation} is not supported by the ONNX exporter" if self.operation \
            else f"the ONNX exporter failed ({first_line(exc)})"
        super().__init__(f"{model} cannot be exported to ONNX: {what}; replace it in the model to deploy it with "
                         f"ONNX (the trained weights are kept)")


def session(path, threads: int | None = None):
    """An onnxruntime CPU inference session of ``path`` (or of a serialized model, as bytes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def latency(sess, input_shape, batch_sizes=BATCH_SIZES, repeats: int = 50, warmup: int = 5) -> dict:
    """onnxruntime latency per batch in milliseconds: p50 and p95 over ``repeats`` timed runs of
    random inputs, for each batch size; ``warmup`` runs before them are not timed."""
    out = {}
    for b in batch_sizes:
        x = np.random.default_rng(0).standard_normal((b, *input_shape)).astype(np.float32)
        times = []
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            sess.run(None, {"input": x})
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
        q = statistics.quantiles(times, n=20, method="inclusive")
        out[f"batch{b}"] = {"p50_ms": statistics.median(times), "p95_ms": q[18]}
    return out
