"""Results table and plots, written from results and histories into a run folder."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLUMNS = [("name", "model"), ("params", "params"), ("size_mb", "size MB"), ("hyperparams", "hyperparameters"),
           ("accuracy", "test accuracy"), ("macro_f1", "macro-F1"), ("agreement", "agreement"),
           ("kl_to_teacher", "KL(t‖s)"), ("latency_ms", "latency ms/sample"), ("onnx_ms_b1", "ONNX ms b=1"),
           ("onnx_ms_b64", "ONNX ms b=64"), ("onnx_mb", "ONNX MB"), ("speedup", "speedup vs teacher (b=64)")]


def _cell(model: dict, key: str) -> str:
    value = model.get(key)
    if value is None:
        return "–"  # a column this run folder predates
    if key == "hyperparams":
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if key == "params":
        return f"{value:,}"
    if key == "name":
        return value
    std = model.get("std", {}).get(key)
    if key == "speedup":
        return f"{value:.1f}x ± {std:.1f}" if std else f"{value:.1f}x"
    digits = 4 if key in ("latency_ms", "kl_to_teacher", "onnx_ms_b1", "onnx_ms_b64", "onnx_mb") else 3
    return f"{value:.{digits}f} ± {std:.{digits}f}" if std else f"{value:.{digits}f}"


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table."""
    header = [label for _, label in COLUMNS]
    return header, [[_cell(m, key) for key, _ in COLUMNS] for m in results["models"]]


def results_markdown(results: dict) -> str:
    """The comparison table and the verdicts as Markdown."""
    header, rows = table_rows(results)
    n = len(results["seeds"])
    lines = [f"# {results['title']}", "",
             f"Dataset `{results['dataset']}`, test split, {n} seed(s) {results['seeds']}"
             + (" (mean ± std)." if n > 1 else "."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Did distillation help?", ""] + [f"- {c['verdict']}" for c in results["comparisons"]]
    return "\n".join(lines) + "\n"


def plot_curves(history: list[dict], path, title: str) -> None:
    """Accuracy and loss per epoch, train vs validation."""
    epochs = [r["epoch"] + 1 for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for split, style in (("train", "-o"), ("val", "-s")):
            key = f"{split}_{metric}"
            if history and key in history[0]:
                ax.plot(epochs, [r[key] for r in history], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusions(matrices: dict[str, list[list[int]]], classes: list[str], path) -> None:
    """One confusion-matrix panel per model (rows: true class, columns: predicted)."""
    n = len(matrices)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.4 * rows), squeeze=False)
    for ax, (name, cm) in zip(axes.flat, matrices.items()):
        cm = np.asarray(cm)
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=7, rotation=90 if len(classes) > 12 else 0)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_prediction_grid(images, predicted, true, classes: list[str], path, title: str, size: int = 4) -> None:
    """A ``size`` x ``size`` grid of images titled with predicted and true class, green when
    right and red when wrong. ``images`` are (N, C, H, W) arrays in display range."""
    fig, axes = plt.subplots(size, size, figsize=(2.1 * size, 2.3 * size))
    for ax, img, p, t in zip(axes.flat, images, predicted, true):
        img = np.asarray(img)
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(f"pred {classes[p]} / true {classes[t]}", fontsize=8, color="green" if p == t else "red")
        ax.axis("off")
    for ax in list(axes.flat)[len(images):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
