"""Deployment numbers: ONNX export with a dynamic batch axis, a parity check against PyTorch,
onnxruntime latency and file size, and optional int8 quantization: static (calibrated on
training samples) where the model has convolutions and calibration data is at hand, dynamic
(dense layers only) otherwise.

The legacy TorchScript exporter (``dynamo=False``) is used on purpose: it handles the zoo's
plain modules exactly and needs no ``onnxscript`` dependency.
"""

from __future__ import annotations

import copy
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

from .data import BUILTIN, Splits, batches, load_dataset, read_source, split_source
from .files import atomic_write, make_dir
from .weights import rebuild

log = logging.getLogger("kdistill")

# max |logit difference| allowed between PyTorch and float32 ONNX, per unit of the largest |logit| above 1
PARITY_TOLERANCE = 1e-4
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


def _splits(info: dict, file: Path) -> Splits | None:
    """The splits a weights file was trained on, rebuilt when they reload identically: from the
    ``data`` section of the run folder's ``config.json`` (its paths made absolute by the run; only
    that section is read, so nothing in the folder decides what is imported), or from a built-in
    dataset's name; ``None`` (with a warning) when neither is possible."""
    split = info.get("split") if isinstance(info.get("split"), dict) else {}
    config_file = file.parent.parent / "config.json"
    candidates = []
    if type(split.get("seed")) is int and config_file.is_file():
        candidates.append(lambda: _from_config(json.loads(config_file.read_text()), file.parent.parent, split))
    if info.get("dataset") in BUILTIN and type(split.get("seed")) is int:
        candidates.append(lambda: load_dataset(info["dataset"], seed=split["seed"],
                                               train_fraction=split.get("train_fraction", 1.0)))
    for make in candidates:
        try:
            data = make()
        except (TypeError, ValueError, OSError, KeyError) as exc:  # a changed file: the split cannot be made
            log.warning("%s: its data cannot be read again (%s)", file, str(exc).splitlines()[0])
            continue
        if data is not None and split.get("sizes") in (None, [len(data.train), len(data.val or []),
                                                                len(data.test or [])]):
            return data
    log.warning("%s: its test split cannot be rebuilt here, so accuracy is not measured", file)
    return None


def _from_config(raw: dict, run: Path, split: dict) -> Splits | None:
    """The splits of an experiment's ``data`` section for the recorded seed (None for a folder
    written by ``kdistill.compare``, whose data lives in Python)."""
    from .config.data import DataConfig

    if not isinstance(raw.get("data"), dict):
        return None
    d = DataConfig.model_validate(raw["data"])
    return split_source(read_source(d, lambda value: Path(value) if Path(value).is_absolute() else run / value),
                        seed=split["seed"], val_size=d.val_size, test_size=d.test_size,
                        train_fraction=d.train_fraction)


def export_weights(path, out=None, *, int8: bool = False, threads: int | None = None,
                   model: str | None = None) -> list[dict]:
    """Export a run folder's weights (every ``weights/*.safetensors``) or one weights file.

    ONNX files go to ``out`` (default ``RUN_DIR/onnx`` for a run folder, else beside the weights
    file), with ``export.json`` holding every report (see :func:`export`). Accuracy is measured
    on the test split, and int8 quantization calibrated on training samples, whenever the data
    can be rebuilt: from the run folder's ``config.json`` (any data source of an experiment
    file) or a built-in dataset's name. A run folder's report is rebuilt with the numbers.
    Models are rebuilt from the files' metadata, which may only name a zoo model; ``model``
    (``"package.module:factory"``) names the factory of any other architecture (see
    :func:`kdistill.weights.rebuild`).
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
    reports, rebuilt = [], {}
    for file in files:
        try:
            net, info = rebuild(file, factory=model)
        except ValueError as exc:
            if not path.is_dir():
                raise
            log.warning("skipping %s: %s", file, exc)  # e.g. a model kdistill.compare got from Python
            continue
        key = json.dumps([str(file.parent.parent), info.get("dataset"), str(info.get("split"))])
        if key not in rebuilt:  # read once per split
            rebuilt[key] = _splits(info, file)
        data = rebuilt[key]
        report = export(net, tuple(info["input_shape"]), folder / f"{file.stem}.onnx", int8=int8,
                        test=None if data is None else data.test, threads=threads,
                        calibration=None if data is None else data.train)
        reports.append({"weights": str(file), **report})
    atomic_write(folder / "export.json", json.dumps(reports, indent=2) + "\n")
    if path.is_dir() and (path / "results.json").is_file() and folder == path / "onnx":
        from .report import write_report

        write_report(path)
    return reports
