"""The one training loop. It trains teachers, students alone and distilled students alike: what
differs is only the objective (a weighted list of method terms) and whether a teacher is given.

Callbacks are plain objects with any of ``on_fit_start``, ``on_epoch_start``, ``on_batch_end``,
``on_epoch_end`` and ``on_fit_end``, each called with the :class:`State`. A callback with
``state_dict``/``load_state_dict`` is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import methods as methods_mod
from .data import ArrayDataset, Splits
from .methods.base import Step, Term
from .taps import FeatureTaps
from .teachers import Teacher, as_teacher, check_classes

log = logging.getLogger("kdistill")

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
CHECKPOINT = "last.pt"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped before the bad step was applied."""


@dataclass
class TrainConfig:
    """Settings of one training run. Every value is checked when the config is made."""

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    schedule: str = "none"
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: decay factor
    seed: int = 0
    patience: int | None = None  # early stopping after this many epochs without improvement
    monitor: str = "val_accuracy"
    restore_best: bool = True
    checkpoint_dir: str | None = None
    resume: bool = False
    quiet: bool = False
    device: str = "cpu"

    def __post_init__(self):
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("step_size", self.step_size)
        if self.patience is not None:
            _positive_int("patience", self.patience)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        for name in ("lr", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("weight_decay", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.monitor.startswith(("val_", "train_")):
            raise ValueError(f"monitor must name a history metric such as 'val_accuracy' or 'val_loss', got {self.monitor!r}")

    @classmethod
    def from_kwargs(cls, **kwargs) -> TrainConfig:
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}; allowed: {', '.join(allowed)}")
        return cls(**kwargs)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass
class State:
    """What callbacks see: the model, the config, progress and the history so far."""

    model: nn.Module
    config: TrainConfig
    epoch: int = 0
    batch: int = 0
    batches_per_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    stop: bool = False


@dataclass
class History:
    """Per-epoch records of a finished run."""

    epochs: list[dict]
    best_epoch: int | None = None
    stopped_early: bool = False

    def to_jsonl(self, path) -> None:
        import json

        Path(path).write_text("".join(json.dumps(r) + "\n" for r in self.epochs))


# --------------------------------------------------------------------------------------------
# Callbacks


class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the
    best weights at the end. ``*_loss`` metrics are minimized, all others maximized."""

    def __init__(self, monitor: str = "val_accuracy", patience: int = 5, restore_best: bool = True):
        self.monitor, self.patience, self.restore_best = monitor, patience, restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict | None = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.monitor.endswith("loss") else value > self.best

    def on_epoch_end(self, state: State) -> None:
        record = state.history[-1]
        if self.monitor not in record:
            raise ValueError(
                f"early stopping monitors {self.monitor!r}, which the history does not have; "
                f"available: {', '.join(k for k in record if k not in ('epoch', 'seconds'))}"
            )
        value = record[self.monitor]
        if self._better(value):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                state.stop = True

    def on_fit_end(self, state: State) -> None:
        if self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_weights": self.best_weights}

    def load_state_dict(self, sd: dict) -> None:
        self.best, self.best_epoch, self.wait, self.best_weights = sd["best"], sd["best_epoch"], sd["wait"], sd["best_weights"]


class ProgressBar:
    """A rich progress bar over batches, shown only on an interactive terminal."""

    def __init__(self, description: str = "training"):
        self.description = description
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
        self._progress.stop()


# --------------------------------------------------------------------------------------------
# The loop


def batches(dataset: Dataset, batch_size: int, shuffle: bool, seed: int):
    """Yield ``(x, y, index)`` batches. In-memory datasets are sliced directly (no worker or
    collate overhead); others go through a ``DataLoader``. Shuffling is seeded per call."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(dataset, ArrayDataset):
        n = len(dataset)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield dataset.x[idx], dataset.y[idx], idx
    else:
        yield from DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_optimizer(params, cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_schedule(optimizer, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


class _Run:
    """One call of :func:`fit`: the pieces the loop needs, assembled and checked once."""

    def __init__(self, model, data: Splits, terms: list[Term], teacher: Teacher | None, cfg: TrainConfig):
        self.model, self.data, self.terms, self.cfg = model, data, terms, cfg
        self.device = torch.device(cfg.device)
        self.teacher = teacher
        self.teachers = {}
        if teacher is not None:
            teacher.to(self.device)
            self.teachers = {id(ds): teacher.for_dataset(ds) for ds in (data.train, data.val) if ds is not None}
        self.losses = nn.ModuleList([t.method for t in terms]).to(self.device)
        self.taps_s = FeatureTaps(model, [n for t in terms for n in t.method.student_taps])
        self.taps_t = _teacher_taps(teacher, [n for t in terms for n in t.method.teacher_taps])
        self.weights = torch.tensor([t.weight for t in terms], dtype=torch.float32, device=self.device)

    def step(self, ds, x, y, idx) -> Step:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        logits_t, feats_t = None, {}
        if self.teacher is not None:
            with self.taps_t:  # the teacher runs under inference_mode: clone its features
                logits_t = self.teachers[id(ds)].logits(x, idx)
            feats_t = self.taps_t.collect(clone=True)
        with self.taps_s:
            logits_s = self.model(x)
        return Step(x=x, y=y, index=idx, logits_s=logits_s, logits_t=logits_t,
                    feats_s=self.taps_s.collect(), feats_t=feats_t)

    def check_shapes(self) -> None:
        """One dry run on a few training samples, so that size mismatches fail before training."""
        x, y, idx = next(batches(self.data.train, min(len(self.data.train), 4), False, 0))
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            step = self.step(self.data.train, x, y, idx)
        self.model.train(was_training)
        k = self.data.num_classes
        out_s = tuple(step.logits_s.shape)
        if len(out_s) != 2 or out_s[1] != k:
            raise ValueError(f"the student outputs shape {out_s} per batch but the data has {k} classes; "
                             f"its last layer must output {k} logits")
        if step.logits_t is not None and tuple(step.logits_t.shape) != out_s:
            raise ValueError(f"the teacher outputs {tuple(step.logits_t.shape)[1:]} per sample and the student "
                             f"{out_s[1:]}; both must output {k} logits, one per class")
        if getattr(self.teacher, "classes", None) is not None:
            check_classes(self.teacher.classes, self.data.classes)
        for term in self.terms:
            term.method.setup(step)

    def epoch(self, ds, epoch: int, state: State | None, callbacks) -> dict:
        """Run one pass over ``ds``: training when ``state`` is given, else evaluation."""
        train = state is not None
        self.model.train(train)
        self.losses.train(train)
        sums = torch.zeros(len(self.terms), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        with torch.set_grad_enabled(train):
            for b, (x, y, idx) in enumerate(batches(ds, self.cfg.batch_size, train, self.cfg.seed * 100_003 + epoch)):
                if train and len(y) == 1 and len(ds) > 1:
                    continue  # batch norm cannot train on one sample; it is shuffled in next epoch
                if train and self.data.augment is not None:
                    x = self.data.augment(x)  # training batches only; teacher and student see the same view
                step = self.step(ds, x, y, idx)
                values = torch.stack([t.method(step) for t in self.terms])
                loss = torch.dot(self.weights, values.float())
                if not torch.isfinite(loss):
                    self._non_finite(epoch, b, values.detach())
                if train:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    state.batch = b
                    _call(callbacks, "on_batch_end", state)
                # Running sums stay on the device: no host sync per batch beyond the finiteness check.
                sums.add_(values.detach(), alpha=len(y))
                correct.add_((step.logits_s.detach().argmax(1) == step.y).sum())
                seen += len(y)
        means = sums / max(seen, 1)
        prefix = "train_" if train else "val_"
        record = {prefix + "loss": float(torch.dot(self.weights, means.float())),
                  prefix + "accuracy": int(correct) / max(seen, 1)}
        record.update({prefix + t.name: v for t, v in zip(self.terms, means.tolist())})
        return record

    def _non_finite(self, epoch: int, batch: int, values) -> None:
        parts = ", ".join(f"{t.name}={float(v):.4g}" for t, v in zip(self.terms, values))
        kept = (f"the last good checkpoint (end of epoch {epoch}) is kept in {self.cfg.checkpoint_dir}"
                if self.cfg.checkpoint_dir and epoch > 0 else "no checkpoint was written")
        raise NonFiniteLossError(
            f"the loss became non-finite at epoch {epoch + 1}, batch {batch + 1} ({parts}); training stopped "
            f"before applying that step and {kept}. Lower the learning rate, check the inputs for NaN/inf, "
            f"or check the teacher's outputs."
        )


def _teacher_taps(teacher: Teacher | None, names: list[str]) -> FeatureTaps:
    """Taps on the teacher's module; only a live PyTorch teacher can provide features."""
    module = getattr(teacher, "module", None)
    if names and not isinstance(module, nn.Module):
        raise ValueError(f"the objective taps teacher features {sorted(set(names))}, but the teacher "
                         f"({type(teacher).__name__}) has no PyTorch module to tap; feature methods need "
                         f"a torch.nn.Module teacher")
    return FeatureTaps(module, names) if names else FeatureTaps(nn.Module(), [])


def fit(model: nn.Module, data: Splits, *, objective=(("ce", 1.0),), teacher=None, callbacks=(),
        config: TrainConfig | None = None, **options) -> History:
    """Train ``model`` on ``data.train`` with a weighted objective, validating on ``data.val``.

    Parameters
    ----------
    model : nn.Module
        The model to train (a teacher, or a student).
    data : Splits
        ``train`` is required; ``val`` is evaluated each epoch when present.
    objective : sequence
        ``[(method_name, weight[, options]), ...]`` or ``Method`` instances; the loss is the
        weighted sum of the terms, each of which is also logged on its own.
    teacher : nn.Module or Teacher, optional
        Required when a term needs a teacher; frozen for the run.
    callbacks : sequence
        Objects with optional ``on_*`` methods.
    config : TrainConfig, optional
        Settings; or give them as keyword ``options`` (``epochs=10, lr=3e-3, ...``).

    Returns
    -------
    History
        One record per epoch: ``train_loss``, ``train_accuracy``, ``train_<term>`` and the
        ``val_`` counterparts, ``lr`` and ``seconds``.
    """
    cfg = config if config is not None else TrainConfig.from_kwargs(**options)
    if config is not None and options:
        raise TypeError("give either config= or keyword training options, not both")
    terms = methods_mod.objective(objective)
    needs_teacher = [t.name for t in terms if t.method.needs_teacher]
    if needs_teacher and teacher is None:
        raise ValueError(f"method(s) {needs_teacher} need a teacher, but teacher=None")
    _seed_everything(cfg.seed)
    model.to(cfg.device)
    run = _Run(model, data, terms, as_teacher(teacher) if needs_teacher else None, cfg)
    run.check_shapes()
    params = list(model.parameters()) + list(run.losses.parameters())
    run.optimizer = _make_optimizer([p for p in params if p.requires_grad], cfg)
    scheduler = _make_schedule(run.optimizer, cfg)

    callbacks = list(callbacks)
    early = None
    if cfg.patience is not None and data.val is not None:
        early = EarlyStopping(cfg.monitor, cfg.patience, cfg.restore_best)
        callbacks.append(early)
    if not cfg.quiet and sys.stderr.isatty():
        callbacks.append(ProgressBar())
    n_batches = math.ceil(len(data.train) / cfg.batch_size)
    state = State(model=model, config=cfg, batches_per_epoch=n_batches)
    ckpt = Path(cfg.checkpoint_dir) / CHECKPOINT if cfg.checkpoint_dir else None
    start = _resume(ckpt, cfg, run, scheduler, callbacks, state) if ckpt else 0
    state.epoch = start

    _call(callbacks, "on_fit_start", state)
    try:
        for epoch in range(start, cfg.epochs):
            state.epoch = epoch
            _call(callbacks, "on_epoch_start", state)
            t0 = time.perf_counter()
            record = {"epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"]}
            record.update(run.epoch(data.train, epoch, state, callbacks))
            if data.val is not None:
                record.update(run.epoch(data.val, epoch, None, callbacks))
            record["seconds"] = time.perf_counter() - t0
            if scheduler is not None:
                scheduler.step()
            state.history.append(record)
            log.debug("epoch %d/%d %s", epoch + 1, cfg.epochs,
                     " ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "lr", "seconds")))
            _call(callbacks, "on_epoch_end", state)
            if ckpt is not None:
                _save_checkpoint(ckpt, epoch, run, scheduler, callbacks, state)
            if state.stop:
                break
    finally:
        _call(callbacks, "on_fit_end", state)
    model.eval()
    stopped = state.stop and bool(state.history) and state.history[-1]["epoch"] < cfg.epochs - 1
    return History(state.history, early.best_epoch if early else None, stopped)


def _call(callbacks, hook: str, state: State) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(state)


def _stateful(callbacks) -> dict:
    """Callbacks with saved state, keyed by class name (and rank among same-named ones), so that
    adding or removing other callbacks between a run and its resume cannot mismatch them."""
    keyed, seen = {}, {}
    for cb in callbacks:
        if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
            name = type(cb).__qualname__
            keyed[f"{name}:{seen.get(name, 0)}"] = cb
            seen[name] = seen.get(name, 0) + 1
    return keyed


def _save_checkpoint(path: Path, epoch: int, run: _Run, scheduler, callbacks, state: State) -> None:
    """Write the checkpoint atomically: a temporary file in the same folder, then a rename."""
    blob = {
        "epoch": epoch,
        "model": run.model.state_dict(),
        "methods": run.losses.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "callbacks": {key: cb.state_dict() for key, cb in _stateful(callbacks).items()},
        "history": state.history,
        "rng": torch.get_rng_state(),
        "config": asdict(run.cfg),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def _resume(path: Path, cfg: TrainConfig, run: _Run, scheduler, callbacks, state: State) -> int:
    """Restore from ``path`` when resuming; refuse to overwrite an earlier run's checkpoint."""
    if not path.exists():
        return 0
    if not cfg.resume:
        raise FileExistsError(
            f"{path} holds a checkpoint from an earlier run; pass resume=True to continue it, "
            f"or choose another checkpoint_dir so it is not overwritten"
        )
    try:
        blob = torch.load(path, map_location=run.device, weights_only=True)
        run.model.load_state_dict(blob["model"])
        run.losses.load_state_dict(blob["methods"])
        run.optimizer.load_state_dict(blob["optimizer"])
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"cannot resume from {path}: it does not match this model and objective ({exc})") from exc
    if scheduler is not None and blob["scheduler"] is not None:
        scheduler.load_state_dict(blob["scheduler"])
    for key, cb in _stateful(callbacks).items():
        if key in blob["callbacks"]:
            cb.load_state_dict(blob["callbacks"][key])
    state.history = list(blob["history"])
    torch.set_rng_state(blob["rng"])
    log.info("resumed from %s after epoch %d", path, blob["epoch"] + 1)
    return blob["epoch"] + 1
