"""Deployment numbers: ONNX export with a dynamic batch axis, a parity check against PyTorch,
onnxruntime latency and file size, and optional int8 dynamic quantization.

The legacy TorchScript exporter (``dynamo=False``) is used on purpose: it handles the zoo's
plain modules exactly and needs no ``onnxscript`` dependency.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .data import BUILTIN, batches, load_dataset
from .files import atomic_write, make_dir
from .weights import rebuild

log = logging.getLogger("kdistill")

PARITY_TOLERANCE = 1e-4  # max |logit difference| allowed between PyTorch and float32 ONNX, per unit of the largest |logit| above 1
INT8_ACCURACY_TOLERANCE = 0.02  # test accuracy an int8 model may lose before a warning
BATCH_SIZES = (1, 64)


class ParityError(ValueError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


def export_onnx(model: nn.Module, input_shape, path, opset: int = 17) -> Path:
    """Export ``model`` (in eval mode) to ONNX with input ``input`` and output ``logits``,
    both with a dynamic batch axis, and check the file with ``onnx.checker``."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    dummy = torch.zeros(2, *input_shape, device=_device(model))

    def write(tmp: Path) -> None:  # atomically: a link at ``path`` is replaced, never written through
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        onnx.checker.check_model(str(tmp))

    return atomic_write(path, write)


def _device(model: nn.Module):
    return next(iter(model.parameters()), torch.empty(0)).device


def session(path, threads: int | None = None):
    """An onnxruntime CPU inference session of ``path``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(sess, dataset: Dataset, batch_size: int = 256) -> np.ndarray:
    """Logits of every sample of ``dataset``, in order."""
    return np.concatenate([sess.run(None, {"input": x.numpy()})[0] for x, _, _ in batches(dataset, batch_size)])


def parity(model: nn.Module, sess, x: torch.Tensor) -> tuple[float, float]:
    """Largest absolute logit difference between ``model`` and the ONNX session on ``x``, run as
    one batch and sample by sample (which exercises the dynamic batch axis), and the largest
    absolute logit of ``model`` there (float32 rounding grows with it)."""
    model.eval()
    with torch.inference_mode():
        ref = model(x.to(_device(model))).float().cpu().numpy()
    whole = sess.run(None, {"input": x.numpy()})[0]
    single = np.concatenate([sess.run(None, {"input": x[i:i + 1].numpy()})[0] for i in range(min(len(x), 8))])
    return float(max(np.abs(whole - ref).max(), np.abs(single - ref[:len(single)]).max())), float(np.abs(ref).max())


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


def quantize_int8(path, out) -> Path:
    """int8 dynamic quantization of an ONNX file's dense layers (``MatMul``/``Gemm``: weights
    int8, activations quantized at run time).

    Convolutions stay float32: onnxruntime's CPU kernel for dynamically quantized convolutions
    (``ConvInteger``) runs many times slower than float32; static quantization with calibration
    data is the tool for them.
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # onnxruntime.quantization logs every tensor on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
            atomic_write(out, lambda tmp: quantize_dynamic(str(prepared), str(tmp), weight_type=QuantType.QInt8,
                                                           op_types_to_quantize=["MatMul", "Gemm"]))
    finally:
        logging.disable(previous)
    return Path(out)


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
           tolerance: float = PARITY_TOLERANCE, threads: int | None = None, repeats: int = 50) -> dict:
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
        Also write an int8 dynamically quantized model, with its own latency and size, and its
        test accuracy next to the float32 model's when ``test`` is given.
    test : Dataset, optional
        Inputs of the parity check (the first 64 samples; random inputs otherwise) and the split
        on which accuracy is measured.
    tolerance : float
        Largest allowed absolute logit difference between PyTorch and the float32 ONNX model.
    threads : int, optional
        onnxruntime intra-op threads (default: its own choice).
    repeats : int
        Timed runs per batch size.

    Returns
    -------
    dict
        ``path``, ``size_mb``, ``parity_max_abs_diff``, ``latency`` (``batch1``/``batch64`` with
        ``p50_ms``/``p95_ms``), ``accuracy`` (when ``test`` is given) and ``int8`` (the same
        keys for the quantized file, parity measured against PyTorch, when ``int8``).

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
    report = _measure(path, model, x, input_shape, test, threads, repeats)
    _check_parity(report["parity_max_abs_diff"], tolerance, report["logit_scale"], path)
    if int8:
        q = quantize_int8(path, path.with_name(path.stem + ".int8.onnx"))
        report["int8"] = _measure(q, model, x, input_shape, test, threads, repeats)
        if test is not None and report["accuracy"] - report["int8"]["accuracy"] > INT8_ACCURACY_TOLERANCE:
            log.warning("%s: int8 quantization lost %.3f test accuracy (%.3f -> %.3f)", q,
                        report["accuracy"] - report["int8"]["accuracy"], report["accuracy"],
                        report["int8"]["accuracy"])
    return report


def _measure(path: Path, model, x, input_shape, test, threads, repeats) -> dict:
    sess = session(path, threads)
    diff, scale = parity(model, sess, x)
    out = {"path": str(path), "size_mb": path.stat().st_size / 1e6, "parity_max_abs_diff": diff, "logit_scale": scale,
           "latency": latency(sess, input_shape, repeats=repeats)}
    if test is not None:
        out["accuracy"] = _accuracy(sess, test)
    return out


def _test_split(info: dict, where) -> Dataset | None:
    """The test split recorded in ``info`` if it is a built-in dataset that reloads identically."""
    split = info.get("split") if isinstance(info.get("split"), dict) else {}
    if info.get("dataset") in BUILTIN and type(split.get("seed")) is int:
        try:
            data = load_dataset(info["dataset"], seed=split["seed"], train_fraction=split.get("train_fraction", 1.0))
        except (TypeError, ValueError) as exc:  # a changed file: the split it records cannot be made
            log.warning("%s: the split its metadata records cannot be made (%s)", where, exc)
            return None
        if split.get("sizes") in (None, [len(data.train), len(data.val or []), len(data.test or [])]):
            return data.test
    log.warning("%s: its test split cannot be rebuilt here, so accuracy is not measured", where)
    return None


def export_weights(path, out=None, *, int8: bool = False, threads: int | None = None,
                   model: str | None = None) -> list[dict]:
    """Export a run folder's weights (every ``weights/*.safetensors``) or one weights file.

    ONNX files go to ``out`` (default ``RUN_DIR/onnx`` for a run folder, else beside the weights
    file), with ``export.json`` holding every report (see :func:`export`). Accuracy is measured
    on the test split when the weights record a built-in dataset. Models are rebuilt from the
    files' metadata, which may only name a zoo model; ``model`` (``"package.module:factory"``)
    names the factory of any other architecture (see :func:`kdistill.weights.rebuild`).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted((path / "weights").glob("*.safetensors"))
        if not files:
            raise ValueError(f"{path} is a folder without weights/*.safetensors; give a run folder or a weights file")
        folder = Path(out) if out else make_dir(path / "onnx", inside=path)
    elif path.suffix == ".safetensors" and path.is_file():
        files, folder = [path], Path(out) if out else path.parent
    else:
        raise ValueError(f"{path} is neither a run folder nor a .safetensors weights file")
    reports = []
    for file in files:
        net, info = rebuild(file, factory=model)
        report = export(net, tuple(info["input_shape"]), folder / f"{file.stem}.onnx", int8=int8,
                        test=_test_split(info, file), threads=threads)
        reports.append({"weights": str(file), **report})
    atomic_write(folder / "export.json", json.dumps(reports, indent=2) + "\n")
    return reports
