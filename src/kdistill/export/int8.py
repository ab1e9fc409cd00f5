"""int8 quantization of an ONNX file with onnxruntime: static (calibrated on training samples)
where the model has convolutions and calibration data is at hand, dynamic (dense layers only)
otherwise; and which layers of a file compute in int8."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ..files import atomic_write


def quantize_int8(path, out, calibration: np.ndarray | None = None) -> Path:
    """int8 quantization of an ONNX file. Returns the path of the quantized file.

    With ``calibration`` (training inputs, float32, samples first) and convolutions in the
    model: static quantization (QDQ format: int8 weights per channel, uint8 activations whose
    ranges are calibrated on those samples) of convolutions and dense layers, which onnxruntime
    runs with integer kernels. Otherwise dynamic quantization of the dense layers only
    (``MatMul``/``Gemm``: weights int8, activations quantized at run time): onnxruntime's CPU
    kernel for dynamically quantized convolutions (``ConvInteger``) runs many times slower than
    float32, so convolutions then stay float32. :func:`quantized_layers` names what was quantized.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self, x):
            self.batches = iter([{"input": b} for b in np.array_split(x, max(1, len(x) // 32))])

        def get_next(self):
            return next(self.batches, None)

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # onnxruntime.quantization logs every tensor on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
            if calibration is not None and _has_conv(prepared):
                reader = _Reader(np.asarray(calibration, np.float32))
                atomic_write(out, lambda tmp: quantize_static(
                    str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"]))
            else:
                atomic_write(out, lambda tmp: quantize_dynamic(str(prepared), str(tmp), weight_type=QuantType.QInt8,
                                                               op_types_to_quantize=["MatMul", "Gemm"]))
    finally:
        logging.disable(previous)
    return Path(out)


def _has_conv(path) -> bool:
    import onnx

    return any(n.op_type == "Conv" for n in onnx.load(str(path)).graph.node)


_INTEGER_OPS = {"MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeMatMul"}


def quantized_layers(path) -> list[str]:
    """The layers of an ONNX file that compute in int8, as ``"name (op)"``: integer operators,
    and convolutions or dense layers fed by ``DequantizeLinear`` (QDQ format)."""
    import onnx

    nodes = onnx.load(str(path)).graph.node
    dequantized = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    return [f"{n.name or n.output[0]} ({n.op_type})" for n in nodes
            if n.op_type in _INTEGER_OPS or (n.op_type in ("Conv", "Gemm", "MatMul")
                                              and any(i in dequantized for i in n.input))]
