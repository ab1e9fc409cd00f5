"""The one training loop. It trains teachers, students alone and distilled students alike: what
differs is only the objective (a weighted list of method terms) and whether a teacher is given.
Modes (mutual, self-distillation) are uses of this loop, never branches in it.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import methods
from ..arguments import check_data, check_objective
from ..data import Splits
from ..teachers import as_teacher
from . import checkpoint
from .callbacks import BestEpoch, EpochLog, History, NotebookProgress, ProgressBar, State, call, in_notebook
from .config import TrainConfig
from .interrupt import Interrupt, Stop, TrainingInterrupted
from .runtime import Runtime
from .trainer import Trainer

log = logging.getLogger("kdistill")


def fit(model: nn.Module, data: Splits, *, objective=methods.ALONE, teacher=None, callbacks=(),
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
        weighted sum of the terms, each of which is also logged on its own. Default: cross-entropy
        on the labels alone.
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

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C, after the current batch, once a checkpoint (with ``checkpoint_dir``) is saved.
    """
    if config is not None and options:
        raise TypeError("give either config= or keyword training options, not both")
    check_data(data, seeded=False)
    check_objective(objective)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__} (a scikit-learn student: "
                        f"kdistill.DistilledClassifier)")
    cfg = config if config is not None else TrainConfig.from_kwargs(**options)
    terms = methods.objective(objective)
    needs_teacher = [t.name for t in terms if t.method.needs_teacher]
    if needs_teacher and teacher is None:
        raise ValueError(f"method(s) {needs_teacher} need a teacher, but teacher=None")
    rt = Runtime.create(cfg.device, cfg.precision)
    if rt.distributed and len(data.train) < 2 * rt.world_size:
        raise ValueError(f"the train split has {len(data.train)} sample(s), too few for {rt.world_size} processes "
                         f"(each needs at least 2 per step); use fewer processes or more data")
    ckpt = Path(cfg.checkpoint_dir) / checkpoint.CHECKPOINT if cfg.checkpoint_dir else None
    if ckpt is not None and ckpt.exists() and not cfg.resume:  # a run again: the earlier checkpoint is kept
        cfg = dataclasses.replace(cfg, checkpoint_dir=str(_free_folder(ckpt.parent)))
        log.warning("%s holds a checkpoint from an earlier run, which is kept: this run checkpoints into %s (pass "
                    "resume=True to continue the earlier one instead)", ckpt.parent, cfg.checkpoint_dir)
        ckpt = Path(cfg.checkpoint_dir) / checkpoint.CHECKPOINT
    if ckpt is not None and rt.is_main:
        checkpoint.check_writable(ckpt.parent)
    _seed_everything(cfg.seed)
    model.to(rt.device)
    trainer = Trainer(model, data, terms, as_teacher(teacher) if needs_teacher else None, cfg, rt)
    cfg = trainer.cfg  # its epochs are those the step budget reaches into
    callbacks, best = _callbacks(callbacks, cfg, data, rt)
    state = State(model=model, config=cfg, batches_per_epoch=trainer.steps_per_epoch)
    start_epoch, start_batch = _resume(ckpt, cfg, trainer, callbacks, state) if ckpt else (0, 0)
    state.epoch = start_epoch if not state.stop else cfg.epochs

    call(callbacks, "on_fit_start", state)
    try:
        with Interrupt(rt) as interrupt:
            for epoch in range(state.epoch, cfg.epochs):
                state.epoch = epoch
                call(callbacks, "on_epoch_start", state)
                t0 = time.perf_counter()
                record = {"epoch": epoch, "lr": trainer.optimizer.param_groups[0]["lr"]}
                try:
                    record.update(trainer.epoch(trainer.train_set, epoch, callbacks, state, interrupt, start_batch))
                except Stop:
                    _interrupted(ckpt, trainer, callbacks, state)
                start_batch = 0
                if data.val is not None:
                    record.update(trainer.epoch(data.val, epoch))
                record["seconds"] = time.perf_counter() - t0
                if trainer.scheduler is not None and not trainer.per_step:
                    trainer.scheduler.step()
                _end_epoch(record, trainer, ckpt, callbacks, state)
                if state.stop:
                    break
    finally:
        call(callbacks, "on_fit_end", state)
        if trainer.forward is not model:
            # DDP's reducer sits in a reference cycle: collect it now, while the interpreter is
            # alive; collected at exit, gloo aborts the process ("terminate called...").
            trainer.forward = model
            gc.collect()
    model.eval()
    stopped = state.stop and bool(state.history) and state.history[-1]["epoch"] < cfg.epochs - 1
    return History(state.history, best.best_epoch if best else None, stopped)


def _callbacks(given, cfg: TrainConfig, data: Splits, rt: Runtime) -> tuple[list, BestEpoch | None]:
    """The user's callbacks, the best-epoch tracker (with a val split: the model ends at its best
    epoch; with ``patience`` it also stops early) and progress (unless ``quiet``): a bar on an
    interactive terminal, a live line in a Jupyter notebook, one line per epoch anywhere else."""
    callbacks, best = list(given), None
    if data.val is not None:
        best = BestEpoch(cfg.monitor, cfg.patience, cfg.restore_best)
        callbacks.append(best)
    if not cfg.quiet and rt.is_main:
        callbacks.append(ProgressBar() if sys.stderr.isatty() else NotebookProgress() if in_notebook() else EpochLog())
    return callbacks, best


def _end_epoch(record: dict, trainer: Trainer, ckpt, callbacks, state: State) -> None:
    """Log the epoch, hand it to the callbacks, and checkpoint."""
    state.history.append(record)
    rt = trainer.rt
    if rt.is_main:
        log.debug("epoch %d/%d %s", record["epoch"] + 1, trainer.cfg.epochs, " ".join(
            f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "lr", "seconds")))
    call(callbacks, "on_epoch_end", state)
    if ckpt is not None and rt.is_main:
        checkpoint.save(ckpt, checkpoint.contents(trainer, (record["epoch"] + 1, 0), callbacks, state))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _interrupted(ckpt, trainer: Trainer, callbacks, state: State) -> None:
    """Save where Ctrl-C stopped us (mid-epoch, with the sampler position) and raise."""
    done = state.batch + 1
    partial = trainer.sums.state_dict(trainer.rt)  # collective: on every rank, before rank 0 saves
    if ckpt is not None and trainer.rt.is_main:
        checkpoint.save(ckpt, checkpoint.contents(trainer, (state.epoch, done), callbacks, state, partial))
    raise TrainingInterrupted(state.epoch + 1, done, ckpt)


def _free_folder(folder: Path) -> Path:
    """``folder-2``, ``folder-3``, ...: the first that holds no checkpoint."""
    n = 2
    while (folder.with_name(f"{folder.name}-{n}") / checkpoint.CHECKPOINT).exists():
        n += 1
    return folder.with_name(f"{folder.name}-{n}")


def _resume(path: Path, cfg: TrainConfig, trainer: Trainer, callbacks, state: State) -> tuple[int, int]:
    """Restore from ``path`` when resuming (a new run's checkpoint folder holds none: see :func:`fit`)."""
    if not path.exists():
        return 0, 0
    blob = checkpoint.load(path, trainer.device, cfg.epochs, state.batches_per_epoch)
    position = checkpoint.restore(trainer, blob, path, callbacks, state)
    if trainer.rt.is_main:
        log.info("resumed from %s at epoch %d, batch %d", path, position[0] + 1, position[1])
    return position
