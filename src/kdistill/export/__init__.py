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

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import BUILTIN, Splits, load_dataset, read_source, split_source
from ..files import atomic_write, make_dir
from ..weights import rebuild
from .estimators import PROBA_TOLERANCE, SUPPORTED, estimator_to_onnx, export_estimator
from .int8 import quantize_int8, quantized_layers
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
    from ..config.data import DataConfig

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
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"out {str(out)!r} (kdistill export --out) is a file, not a folder; give a folder for the "
                         f"ONNX files (it is made if missing)")
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
        try:
            report = export(net, tuple(info["input_shape"]), folder / f"{file.stem}.onnx", int8=int8,
                            test=None if data is None else data.test, threads=threads,
                            calibration=None if data is None else data.train)
        except ExportError as exc:
            if not path.is_dir():
                raise
            log.warning("skipping %s: %s", file, exc)  # the other models of the run folder are still exported
            continue
        reports.append({"weights": str(file), **report})
    atomic_write(folder / "export.json", json.dumps(reports, indent=2) + "\n")
    if path.is_dir() and (path / "results.json").is_file() and folder == path / "onnx":
        from ..report import write_report

        write_report(path)
    return reports
