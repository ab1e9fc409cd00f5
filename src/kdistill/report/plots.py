"""Plots as Display objects, in the manner of scikit-learn: built from data, drawn with
``plot(ax=None)`` (a new figure when no axes are given), returning themselves with ``ax_`` and
``figure_`` set. :func:`save_figure` puts several displays side by side into one PNG file.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..files import atomic_write


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only; never needs a display), imported when
    the first figure is drawn: commands that draw none (``validate``, ``--help``) never pay for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _Display:
    def _axes(self, ax, size=(5, 3.8)):
        if ax is None:
            _, ax = _pyplot().subplots(figsize=size)
        self.ax_, self.figure_ = ax, ax.figure
        return ax


class CurvesDisplay(_Display):
    """One metric per epoch (``"accuracy"`` or ``"loss"``), train vs validation, from a history."""

    def __init__(self, history: list[dict], metric: str = "accuracy", best_epoch: int | None = None):
        self.history, self.metric, self.best_epoch = history, metric, best_epoch

    def plot(self, ax=None):
        ax = self._axes(ax)
        epochs = [r["epoch"] + 1 for r in self.history]
        if self.metric == "terms":
            self._terms(ax, epochs)
        for split, style in (("train", "-o"), ("val", "-s")) if self.metric != "terms" else ():
            key = f"{split}_{self.metric}"
            if self.history and key in self.history[0]:
                ax.plot(epochs, [r[key] for r in self.history], style, ms=3, label=split)
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch + 1, color="gray", ls=":", label="epoch kept")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss term (unweighted)" if self.metric == "terms" else self.metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return self

    def _terms(self, ax, epochs) -> None:
        """Each term of the objective (``train_ce``, ``train_kd``...) on train, dashed on val."""
        for key in terms_of(self.history):
            line, = ax.plot(epochs, [r[key] for r in self.history], "-o", ms=3, label=key)
            if f"val_{key[6:]}" in self.history[0]:
                ax.plot(epochs, [r[f"val_{key[6:]}"] for r in self.history], "--", color=line.get_color(),
                        label=f"val_{key[6:]}")


def terms_of(history: list[dict]) -> list[str]:
    """The loss terms a history logs on train (``train_<term>``, not the total or the accuracy)."""
    return [k for k in (history[0] if history else {}) if k.startswith("train_")
            and k not in ("train_loss", "train_accuracy")]


class ConfusionDisplay(_Display):
    """A confusion matrix (rows: true class, columns: predicted) with its counts."""

    def __init__(self, matrix, classes: list[str], title: str = ""):
        self.matrix, self.classes, self.title = np.asarray(matrix), classes, title

    def plot(self, ax=None):
        ax = self._axes(ax, (5, 4.4))
        cm, classes = self.matrix, self.classes
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes, fontsize=7, rotation=90 if len(classes) > 12 else 0)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(self.title, fontsize=10)
        return self


class PredictionGridDisplay(_Display):
    """Images in a ``size`` x ``size`` mosaic, each titled with its predicted and true class
    (green when right, red when wrong). ``images`` are ``(N, C, H, W)`` in display range."""

    def __init__(self, images, predicted, true, classes: list[str], size: int = 4):
        self.images, self.predicted, self.true, self.classes, self.size = images, predicted, true, classes, size

    def plot(self, ax=None):
        ax = self._axes(ax, (2.1 * self.size, 2.3 * self.size))
        images = np.asarray(self.images)[: self.size * self.size]
        n, c, h, w = images.shape
        cols = self.size
        rows = math.ceil(n / cols)
        pad = max(2, h // 8)
        canvas = np.ones((rows * (h + 3 * pad), cols * (w + pad), c), dtype=np.float32)
        for k, img in enumerate(images):
            r, col = divmod(k, cols)
            y0, x0 = r * (h + 3 * pad) + 2 * pad, col * (w + pad)
            if img.min() < 0 or img.max() > 1:  # not in display range: stretch this image to [0, 1]
                img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
            canvas[y0:y0 + h, x0:x0 + w] = np.transpose(img, (1, 2, 0))
            right = self.predicted[k] == self.true[k]
            label = f"pred {self.classes[self.predicted[k]]}\ntrue {self.classes[self.true[k]]}"
            ax.text(x0 + w / 2, y0 - pad / 2, label, ha="center", va="bottom", fontsize=7,
                    color="green" if right else "red")
        ax.imshow(canvas[..., 0] if c == 1 else canvas, cmap="gray" if c == 1 else None, vmin=0, vmax=1)
        ax.axis("off")
        return self


def display_images(images, normalization: dict | None = None) -> np.ndarray:
    """Images ``(N, C, H, W)`` as they were read: the per-channel normalization undone
    (``x * std + mean``, from the splits' ``info["normalization"]``) and clipped to [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    if normalization:
        mean = np.asarray(normalization["mean"], np.float32)[:, None, None]
        std = np.asarray(normalization["std"], np.float32)[:, None, None]
        images = np.clip(images * std + mean, 0.0, 1.0)
    return images


def _log_x(ax, values) -> None:
    """A log x axis labelled with plain numbers (at 1, 2 and 5 of each decade when ``values`` span
    less than 1.5 decades, else at powers of ten), minor ticks unlabelled: matplotlib's own labels
    of minor ticks overlap when the range spans about one decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    narrow = math.log10(max(values) / min(values)) < 1.5
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


class TradeoffDisplay(_Display):
    """Test accuracy against ``size_mb`` or ``latency_ms`` for every model of a results table
    (log scale; a model without that number is left out and named in the title), with error bars
    of one standard deviation of accuracy over seeds."""

    def __init__(self, models: list[dict], x: str = "size_mb"):
        self.models, self.x = models, x

    def plot(self, ax=None):
        ax = self._axes(ax, (5.5, 4.2))
        shown = [m for m in self.models if m.get(self.x) and m.get("accuracy") is not None]
        for m in shown:  # error bars: accuracy's standard deviation over seeds, where there are several (a
            # latency's spread is the machine's noise, and a symmetric bar on a log axis would mislead)
            std = (m.get("std") or {}).get("accuracy")
            ax.errorbar(m[self.x], m["accuracy"], yerr=std or None, fmt="o", ms=7, capsize=3, elinewidth=1)
            ax.annotate(m["name"], (m[self.x], m["accuracy"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if shown:
            _log_x(ax, [m[self.x] for m in shown])
            ax.margins(x=0.25)  # room for the names beside the points
        label = {"size_mb": "size (MB)", "latency_ms": "CPU latency (ms per sample)"}.get(self.x, self.x)
        ax.set_xlabel(label + ", log scale")
        ax.set_ylabel("test accuracy")
        missing = [m["name"] for m in self.models if m not in shown]
        ax.set_title(f"accuracy vs {label}" + (f"\n(no {self.x}: {', '.join(missing)})" if missing else ""),
                     fontsize=9)
        ax.grid(alpha=0.3)
        return self


class CalibrationDisplay(_Display):
    """A reliability diagram: accuracy against mean confidence per confidence bin (bars), the
    diagonal of perfect calibration, and the expected calibration error in the title."""

    def __init__(self, bins: list[dict], name: str = "", ece: float | None = None):
        self.bins, self.name, self.ece = bins, name, ece

    def plot(self, ax=None):
        ax = self._axes(ax, (4, 4))
        width = 1.0 / len(self.bins)
        centers = [(i + 0.5) * width for i in range(len(self.bins))]
        accuracy = [b["accuracy"] or 0.0 for b in self.bins]
        ax.bar(centers, accuracy, width=width * 0.95, color="#4c78a8", edgecolor="black", lw=0.4, label="accuracy")
        gaps = [(c, b["confidence"]) for c, b in zip(centers, self.bins) if b["count"]]
        if gaps:
            ax.scatter(*zip(*gaps), color="#e45756", s=12, zorder=3, label="mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_ylabel("accuracy")
        ece = "" if self.ece is None else f" (ECE {self.ece:.3f})"
        ax.set_title(f"{self.name}{ece}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        return self


class TrialsDisplay(_Display):
    """A sweep's objective per trial (pruned trials at their last report) and the best so far;
    ``baseline`` draws a reference line (e.g. the student alone's validation accuracy)."""

    def __init__(self, rows: list[dict], baseline: float | None = None, label: str = "validation accuracy"):
        self.rows, self.baseline, self.label = rows, baseline, label

    def plot(self, ax=None):
        ax = self._axes(ax, (7, 3.8))
        rows = self.rows
        done = [r for r in rows if r["value"] is not None]
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
            pts = [(r["number"], r["value"]) for r in done if r["state"] == state]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, label=state.lower())
        best, line = float("-inf"), []
        for r in sorted((r for r in done if r["state"] == "COMPLETE"), key=lambda r: r["number"]):
            best = max(best, r["value"])
            line.append((r["number"], best))
        if line:
            line.append((max(r["number"] for r in rows), best))  # carry the best to the last trial
            ax.step(*zip(*line), where="post", color="gray", alpha=0.6, label="best so far")
        if self.baseline is not None:
            ax.axhline(self.baseline, color="black", ls="--", lw=1, label="student alone")
        ax.set_xlabel("trial")
        ax.set_ylabel(self.label)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title("objective per trial")
        return self


class SpaceDisplay(_Display):
    """Where in the search space the good recipes lie: each trial's validation accuracy over one
    searched parameter ``param`` (finished trials as dots coloured by method, pruned ones as grey
    crosses at their last report), with the student alone's trials (``alone``, grey squares, on
    the parameters they share) and its best (``baseline``) as a reference line."""

    def __init__(self, rows: list[dict], param: str, baseline: float | None = None, alone: list[dict] = (),
                 label: str = "validation accuracy"):
        self.rows, self.param, self.baseline, self.alone, self.label = rows, param, baseline, list(alone), label

    def plot(self, ax=None):
        ax = self._axes(ax, (4.6, 3.6))
        have = [r for r in self.rows if self.param in r["params"] and r["value"] is not None]
        values = [r["params"][self.param] for r in have] + [r["params"][self.param] for r in self.alone
                                                             if self.param in r["params"]]
        categories = sorted({str(v) for v in values}) if any(isinstance(v, (str, bool)) for v in values) else None
        x = (lambda v: categories.index(str(v))) if categories else (lambda v: v)
        methods = sorted({r["params"].get("method", "") for r in self.rows})  # one colour per method in every panel
        for i, method in enumerate(methods):
            done = [r for r in have if r["state"] == "COMPLETE" and r["params"].get("method", "") == method]
            if done:
                ax.scatter([x(r["params"][self.param]) for r in done], [r["value"] for r in done],
                           color=_pyplot().cm.tab10(i % 10), edgecolors="black", s=36, label=method or "trials")
        pruned = [r for r in have if r["state"] == "PRUNED"]
        if pruned:
            ax.scatter([x(r["params"][self.param]) for r in pruned], [r["value"] for r in pruned], marker="x",
                       color="gray", label="pruned")
        shared = [r for r in self.alone if self.param in r["params"] and r["value"] is not None]
        if shared:
            ax.scatter([x(r["params"][self.param]) for r in shared], [r["value"] for r in shared], marker="s",
                       color="lightgray", edgecolors="gray", label="student alone")
        if self.baseline is not None:
            ax.axhline(self.baseline, color="black", ls="--", lw=1, label="best alone")
        if categories:
            ax.set_xticks(range(len(categories)), categories)
        elif self.param in ("lr", "steps") and values and min(values) > 0:
            _log_x(ax, values)
        ax.set_xlabel(self.param)
        ax.set_ylabel(self.label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return self


def save_figure(path, displays: list, title: str | None = None, cols: int = 2, panel=(5, 4.2)) -> None:
    """Draw ``displays`` as the panels of one figure (``cols`` per row) and write it to ``path``
    as PNG, atomically."""
    cols = max(1, min(cols, len(displays)))
    rows = math.ceil(len(displays) / cols)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
    for ax, display in zip(axes.flat, displays):
        display.plot(ax=ax)
    for ax in list(axes.flat)[len(displays):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
