"""Loop state, history and the built-in callbacks (best epoch and early stopping; progress as a
bar on a terminal, a live line in Jupyter, one line per epoch anywhere else).

Callbacks are plain objects with any of ``on_fit_start``, ``on_epoch_start``, ``on_batch_end``,
``on_epoch_end`` and ``on_fit_end``, each called with the :class:`State`. A callback with
``state_dict``/``load_state_dict`` is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from dataclasses import dataclass, field

from torch import nn


@dataclass
class State:
    """What callbacks see: the model, the config, progress and the history so far.

    ``batch`` is the index of the last batch completed in the current epoch. Set ``stop`` to
    end training after the current epoch.
    """

    model: nn.Module
    config: object
    epoch: int = 0
    batch: int = -1
    batches_per_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    stop: bool = False


@dataclass
class History:
    """Per-epoch records of a finished run; ``best_epoch`` is the epoch whose weights the model
    holds at the end (the best on validation by ``monitor``; ``None`` without a validation split)."""

    epochs: list[dict]
    best_epoch: int | None = None
    stopped_early: bool = False


def call(callbacks, hook: str, state: State) -> None:
    """Call ``hook`` on every callback that has it."""
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)


class BestEpoch:
    """Track the best epoch by ``monitor`` and keep its weights; at the end of the fit restore them
    (``restore_best``), so the model a fit returns is its best epoch on validation, not its last.
    With ``patience``, also stop once ``monitor`` has not improved for that many epochs.

    ``*_accuracy`` is maximized; every other history metric is a loss (``val_loss`` or one term
    such as ``val_kd``) and is minimized. The engine adds one whenever there is a validation split.
    """

    def __init__(self, monitor: str = "val_accuracy", patience: int | None = None, restore_best: bool = True):
        self.monitor, self.patience, self.restore_best = monitor, patience, restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict | None = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.monitor.endswith("accuracy") else value < self.best

    def on_epoch_end(self, state: State) -> None:
        record = state.history[-1]
        if self.monitor not in record:
            raise ValueError(
                f"the best epoch is chosen by {self.monitor!r} (monitor), which the history does not have; "
                f"available: {', '.join(k for k in record if k not in ('epoch', 'seconds'))}"
            )
        value = record[self.monitor]
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                state.stop = True

    def on_fit_end(self, state: State) -> None:
        if self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_weights": self.best_weights}

    def load_state_dict(self, sd: dict) -> None:
        self.best, self.best_epoch, self.wait = sd["best"], sd["best_epoch"], sd["wait"]
        self.best_weights = sd["best_weights"]


class EarlyStopping(BestEpoch):
    """:class:`BestEpoch` that stops after ``patience`` epochs without improvement."""

    def __init__(self, monitor: str = "val_accuracy", patience: int = 5, restore_best: bool = True):
        super().__init__(monitor, patience, restore_best)


class ProgressBar:
    """A rich progress bar over batches, shown only on an interactive terminal."""

    def __init__(self, description: str | None = None):
        self.description = description or _LABEL.get() or "training"
        self._progress = None

    def on_fit_start(self, state: State) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(), transient=True)
        self._progress.start()
        total = state.config.epochs * state.batches_per_epoch
        self._task = self._progress.add_task(self.description, total=total, metrics="",
                                             completed=state.epoch * state.batches_per_epoch)

    def on_batch_end(self, state: State) -> None:
        self._progress.advance(self._task)

    def on_epoch_end(self, state: State) -> None:
        r = state.history[-1]
        shown = " ".join(f"{k}={r[k]:.3f}" for k in ("train_loss", "val_accuracy") if k in r)
        self._progress.update(self._task, metrics=f"epoch {r['epoch'] + 1} {shown}")

    def on_fit_end(self, state: State) -> None:
        if self._progress is not None:
            self._progress.stop()


_LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("kdistill_progress_label", default=None)


@contextlib.contextmanager
def progress_label(text: str):
    """Progress of every fit inside this block names what trains (e.g. ``"kd T6, seed 0"``): a
    study trains many models, and a bare ``epoch 3/40`` line does not say which."""
    token = _LABEL.set(text)
    try:
        yield
    finally:
        _LABEL.reset(token)


def _epoch_line(state: State) -> str:
    r = state.history[-1]
    shown = " ".join(f"{k}={r[k]:.4f}" for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy") if k in r)
    label = _LABEL.get()
    return (f"{label}: " if label else "") + f"epoch {r['epoch'] + 1}/{state.config.epochs} {shown} " \
        f"({r.get('seconds', 0.0):.1f} s)"


class EpochLog:
    """One plain line per epoch (losses, accuracies, seconds) on ``stream`` (standard error by
    default): progress where no bar can be drawn, e.g. in a log file, CI or under nohup."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_epoch_end(self, state: State) -> None:
        stream = self.stream or sys.stderr
        stream.write(_epoch_line(state) + "\n")
        stream.flush()


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where a terminal progress bar cannot be drawn)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class NotebookProgress:
    """A progress line in a Jupyter notebook, updated in place after every epoch (a bar of the
    epochs done and the latest metrics). ``display`` is IPython's ``display`` by default."""

    def __init__(self, display=None, width: int = 20):
        self.display, self.width = display, width
        self._handle = None

    def on_fit_start(self, state: State) -> None:
        display = self.display
        if display is None:
            from IPython.display import display
        self._handle = display(f"{_LABEL.get() or 'training'}: epoch {state.epoch}/{state.config.epochs}",
                               display_id=True)

    def on_epoch_end(self, state: State) -> None:
        done = (state.history[-1]["epoch"] + 1) / state.config.epochs
        bar = "#" * round(done * self.width) + "." * (self.width - round(done * self.width))
        if self._handle is not None:
            self._handle.update(f"[{bar}] {_epoch_line(state)}")
