"""Deployment numbers: ONNX export with a dynamic batch axis, a parity check against the original
model, onnxruntime latency and file size, and optional int8 quantization.

- PyTorch models: :func:`export` (one model) and :func:`export_weights` (a run folder's weights
  files), here; the conversion itself is in :mod:`.torch_onnx`, int8 quantization (static where
  the model has convolutions and calibration data is at hand, dynamic otherwise) in :mod:`.int8`.
- scikit-learn, LightGBM, XGBoost and CatBoost classifiers: :func:`export_estimator`
  (:mod:`.estimators`).

:func:`export` and the checks it calls live in this module, so that its parity check is found
(and can be replaced in a test) as ``kdistill.export._check_parity``.
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .estimators import PROBA_TOLERANCE, SUPPORTED, estimator_to_onnx, export_estimator
from .int8 import quantize_int8, quantized_layers
from .runs import export_weights
from .runtime import BATCH_SIZES, ExportError, ParityError, latency, session
from .torch_onnx import PARITY_TOLERANCE, check_exportable, export_onnx, onnx_logits, parity, reference_logits

__all__ = ["BATCH_SIZES", "INT8_ACCURACY_TOLERANCE", "PARITY_TOLERANCE", "PROBA_TOLERANCE", "SUPPORTED", "ExportError",
           "ParityError", "check_exportable",
           "estimator_to_onnx", "export", "export_estimator", "export_onnx", "export_weights", "latency",
           "onnx_logits", "parity", "quantize_int8", "quantized_layers", "reference_logits", "session"]

log = logging.getLogger("kdistill")

INT8_ACCURACY_TOLERANCE = 0.02  # test accuracy an int8 model may lose before a warning


def _accuracy(sess, dataset: Dataset) -> float:
    y = getattr(dataset, "y", None)
    labels = y.numpy() if isinstance(y, torch.Tensor) else np.array([int(dataset[i][1]) for i in range(len(dataset))])
    return float((onnx_logits(sess, dataset).argmax(1) == labels).mean())


def _check_parity(diff: float, tolerance: float, scale: float, path: Path) -> None:
    """Float32 rounding differs between PyTorch and onnxruntime by a share of the logits' size, so
    the tolerance scales with the largest |logit| once that exceeds 1."""
    allowed = tolerance * max(1.0, scale)
    if not diff < allowed:
        raise ParityError(f"{path}: the ONNX model's logits differ from PyTorch's by up to {diff:.3g}, "
                          f"above the tolerance {allowed:g} ({tolerance:g} x max(1, largest |logit| {scale:.3g})); "
                          f"the export is not faithful")


def export(model: nn.Module, input_shape, path, *, int8: bool = False, test: Dataset | None = None,
           tolerance: float = PARITY_TOLERANCE, threads: int | None = None, repeats: int = 50,
           calibration: Dataset | None = None) -> dict:
    """Export ``model`` to ONNX and measure it for deployment.

    Parameters
    ----------
    model : nn.Module
        The trained model (PyTorch); it is put in eval mode.
    input_shape : tuple of int
        Shape of one sample, without the batch axis.
    path : str or Path
        The ``.onnx`` file to write; with ``int8`` also ``<stem>.int8.onnx`` beside it.
    int8 : bool
        Also write an int8 quantized model (see :func:`quantize_int8`), with its own latency and
        size, the layers quantized, and its test accuracy next to the float32 model's when
        ``test`` is given.
    test : Dataset, optional
        Inputs of the parity check (the first 64 samples; random inputs otherwise) and the split
        on which accuracy is measured.
    tolerance : float
        Largest allowed absolute logit difference between PyTorch and the float32 ONNX model.
    threads : int, optional
        onnxruntime intra-op threads (default: its own choice).
    repeats : int
        Timed runs per batch size.
    calibration : Dataset, optional
        Training samples (the first 256 are used) that calibrate static int8 quantization of
        convolutions; without them convolutions stay float32.

    Returns
    -------
    dict
        ``path``, ``size_mb``, ``parity_max_abs_diff``, ``latency`` (``batch1``/``batch64`` with
        ``p50_ms``/``p95_ms``), ``accuracy`` (when ``test`` is given) and ``int8`` (the same
        keys for the quantized file, parity measured against PyTorch, plus ``quantized``: the
        layers computed in int8, and ``method``: ``"static"`` or ``"dynamic"``, when ``int8``).

    Raises
    ------
    ParityError
        If the float32 ONNX model's logits differ from PyTorch's by ``tolerance`` or more.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise ValueError(f"repeats must be an integer >= 2 (p50 and p95 need several timings), got {repeats!r}")
    if not 0 <= tolerance < float("inf"):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    path = export_onnx(model, input_shape, path)
    x = torch.stack([test[i][0] for i in range(min(len(test), 64))]) if test is not None \
        else torch.randn(64, *input_shape, generator=torch.Generator().manual_seed(0))
    ref = reference_logits(model, x)  # once: the float32 and the int8 file are both checked against it
    report = _measure(path, ref, x, input_shape, test, threads, repeats)
    _check_parity(report["parity_max_abs_diff"], tolerance, report["logit_scale"], path)
    if int8:
        samples = None if calibration is None else torch.stack(
            [calibration[i][0] for i in range(min(len(calibration), 256))]).numpy()
        q = quantize_int8(path, path.with_name(path.stem + ".int8.onnx"), samples)
        report["int8"] = _measure(q, ref, x, input_shape, test, threads, repeats)
        layers = quantized_layers(q)
        static = any(n.endswith("(Conv)") for n in layers)  # a convolution fed by DequantizeLinear (QDQ)
        report["int8"].update(quantized=layers, method="static" if static else "dynamic")
        if test is not None and report["accuracy"] - report["int8"]["accuracy"] > INT8_ACCURACY_TOLERANCE:
            log.warning("%s: int8 quantization lost %.3f test accuracy (%.3f -> %.3f)", q,
                        report["accuracy"] - report["int8"]["accuracy"], report["accuracy"],
                        report["int8"]["accuracy"])
    return report


def _measure(path: Path, ref, x, input_shape, test, threads, repeats) -> dict:
    sess = session(path, threads)
    diff, scale = parity(ref, sess, x)
    out = {"path": str(path), "size_mb": path.stat().st_size / 1e6, "parity_max_abs_diff": diff, "logit_scale": scale,
           "latency": latency(sess, input_shape, repeats=repeats)}
    if test is not None:
        out["accuracy"] = _accuracy(sess, test)
    return out


class _CallableModule(types.ModuleType):
    """``kdistill.export`` names both this package and its function :func:`export`: Python binds a
    package's submodule to the package's attribute when the submodule is first imported, so the
    module itself calls :func:`export`, and ``kdistill.export(model, shape, path)`` works either way."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
