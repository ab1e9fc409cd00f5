"""Evaluation: accuracy, macro-F1, per-class report, fidelity to the teacher, CPU latency."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix, f1_score
from torch import Tensor, nn
from torch.utils.data import Dataset

from .data import batches
from .teachers import Teacher, as_teacher


def predict_logits(model, dataset: Dataset, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Logits and labels of ``dataset`` in order. ``model`` is an ``nn.Module`` (run in eval
    mode under ``inference_mode``) or a :class:`Teacher`."""
    source = model.for_dataset(dataset) if isinstance(model, Teacher) else None
    if source is None:
        model.eval()
        device = next(iter(model.parameters()), torch.empty(0)).device
    outs, labels = [], []
    with torch.inference_mode():
        for x, y, idx in batches(dataset, batch_size, shuffle=False, seed=0):
            outs.append(source.logits(x, idx) if source is not None else model(x.to(device)).cpu())
            labels.append(y)
    return torch.cat(outs).float().cpu(), torch.cat(labels)


def classification_metrics(logits: Tensor, labels: Tensor, classes: list[str]) -> dict:
    """Accuracy, macro-F1, confusion matrix and the per-class report (precision, recall, F1, support)."""
    pred = logits.argmax(1).numpy()
    y = labels.numpy()
    ids = list(range(len(classes)))
    report = classification_report(y, pred, labels=ids, target_names=classes, output_dict=True, zero_division=0)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=ids, average="macro", zero_division=0)),
        "per_class": {c: {k: float(v) for k, v in report[c].items()} for c in classes},
        "confusion": confusion_matrix(y, pred, labels=ids).tolist(),
    }


def fidelity(logits_s: Tensor, logits_t: Tensor) -> dict:
    """Top-1 agreement with the teacher and mean KL(teacher || student) at temperature 1 (nats)."""
    agreement = float((logits_s.argmax(1) == logits_t.argmax(1)).float().mean())
    kl = F.kl_div(F.log_softmax(logits_s, 1), F.log_softmax(logits_t, 1), reduction="batchmean", log_target=True)
    return {"agreement": agreement, "kl_to_teacher": float(kl)}


def evaluate(model: nn.Module, dataset: Dataset, classes: list[str], teacher=None) -> dict:
    """Classification metrics of ``model`` on ``dataset``, plus fidelity to ``teacher`` if given.

    Parameters
    ----------
    model : torch.nn.Module
        The model, run in eval mode on the CPU.
    dataset : Dataset
        Items ``(x, y, index)``, e.g. ``data.test``.
    classes : list of str
        The class names.
    teacher : Teacher or torch.nn.Module, optional
        Anything :func:`kdistill.as_teacher` takes; adds ``agreement`` and ``kl_to_teacher``.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``per_class``, ``ece`` and its ``calibration`` bins, and with a
        teacher ``agreement`` (top-1) and ``kl_to_teacher`` (KL(teacher || model) at T=1, nats).
    """
    logits, labels = predict_logits(model, dataset)
    out = classification_metrics(logits, labels, classes)
    if teacher is not None:
        logits_t, _ = predict_logits(as_teacher(teacher), dataset)
        out.update(fidelity(logits, logits_t))
    return out


def latency_ms(model: nn.Module, input_shape, batch_size: int = 32, repeats: int = 30, warmup: int = 5) -> float:
    """CPU latency per sample in milliseconds: the median over ``repeats`` timed batches of
    ``batch_size`` random inputs, divided by the batch size (warm-up batches excluded)."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    x = torch.randn(batch_size, *input_shape, device=device)
    return median_ms(lambda: model(x), repeats, warmup) / batch_size


def median_ms(call, repeats: int, warmup: int) -> float:
    """Median wall time of ``call()`` in milliseconds over ``repeats`` timed calls, after
    ``warmup`` untimed ones (under ``torch.inference_mode``)."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            call()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def calibration(logits: Tensor, labels: Tensor, bins: int = 15) -> dict:
    """Expected calibration error and the reliability diagram's bins (Guo et al., "On Calibration
    of Modern Neural Networks", ICML 2017): the top-1 confidences ``max softmax`` are put into
    ``bins`` equal-width bins over [0, 1]; ``ece = sum_b (n_b / N) |accuracy_b - confidence_b|``.

    Returns ``ece`` and, per bin, its ``count``, mean ``confidence`` and ``accuracy`` (``None``
    for an empty bin)."""
    probs = F.softmax(logits.float(), dim=1)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).float()
    which = torch.clamp((confidence * bins).long(), max=bins - 1)
    ece, rows = 0.0, []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n:
            acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
            ece += n / len(labels) * abs(acc - conf)
        rows.append({"count": n, "confidence": conf if n else None, "accuracy": acc if n else None})
    return {"ece": ece, "bins": rows}
