"""The one training loop. It trains teachers, students alone and distilled students alike: what
differs is only the objective (a weighted list of method terms) and whether a teacher is given.
Modes (mutual, self-distillation) are uses of this loop, never branches in it.
"""

from __future__ import annotations

import gc
import logging
import math
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import methods as methods_mod
from ..cache import remember
from ..data import Splits, fetch, global_batches
from ..methods.base import Step, Term
from ..taps import FeatureTaps
from ..teachers import Teacher, as_teacher, check_classes
from . import checkpoint
from .callbacks import EarlyStopping, History, ProgressBar, State, call
from .config import TrainConfig, make_optimizer, make_schedule
from .interrupt import Interrupt, Stop, TrainingInterrupted
from .runtime import Runtime

log = logging.getLogger("kdistill")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped before the bad step was applied."""


# --------------------------------------------------------------------------------------------
# One run


# Batches whose predictions wait to be counted together (bounded memory: this many batches of logits).
_PENDING = 16


class _Trainable(nn.Module):
    """The student and the methods' connectors as one module, so DDP averages all their gradients."""

    def __init__(self, model: nn.Module, losses: nn.ModuleList):
        super().__init__()
        self.model, self.losses = model, losses

    def forward(self, x):
        return self.model(x)


class _Run:
    """One call of :func:`fit`: the pieces the loop needs, assembled and checked once."""

    def __init__(self, model, data: Splits, terms: list[Term], teacher: Teacher | None, cfg: TrainConfig,
                 rt: Runtime):
        self.model, self.data, self.terms, self.cfg, self.rt = model, data, terms, cfg, rt
        self.device = rt.device
        tapped = any(t.method.teacher_taps for t in terms)
        if teacher is not None and tapped:
            teacher = teacher.live()  # tapped features need the teacher's layers to run on each batch
        self.teacher = teacher
        self.teachers = {}
        if teacher is not None:
            teacher.to(self.device)
            with rt.main_first():  # a cached teacher is built once, by rank 0, then read by all
                augmented = {id(data.train)} if data.augment is not None else set()
                self.teachers = {id(ds): teacher.for_dataset(ds, augmented=id(ds) in augmented)
                                 for ds in (data.train, data.val) if ds is not None}
            if data.val is not None and data.val is not data.train and not tapped:
                # The frozen teacher's outputs on the unaugmented val split are the same every epoch.
                self.teachers[id(data.val)] = remember(self.teachers[id(data.val)], data.val)
        self.losses = nn.ModuleList([t.method for t in terms]).to(self.device)
        self.taps_s = FeatureTaps(model, [n for t in terms for n in t.method.student_taps])
        self.taps_t = _teacher_taps(teacher, [n for t in terms for n in t.method.teacher_taps])
        self.weights = torch.tensor([t.weight for t in terms], dtype=torch.float32, device=self.device)
        self.forward = model
        self.acc: dict | None = None

    def step(self, ds, x, y, idx, forward) -> Step:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        logits_t, feats_t, feats_s = None, {}, {}
        with self.rt.autocast():  # forward passes only: the losses below see float32
            if self.teacher is not None:
                if self.taps_t.names:
                    with self.taps_t:  # the teacher runs under inference_mode: clone its features
                        logits_t = self.teachers[id(ds)].logits(x, idx)
                    feats_t = {k: v.float() for k, v in self.taps_t.collect(clone=True).items()}
                else:
                    logits_t = self.teachers[id(ds)].logits(x, idx)
                logits_t = _f32(logits_t)
            if self.taps_s.names:
                with self.taps_s:
                    logits_s = forward(x)
                feats_s = {k: v.float() for k, v in self.taps_s.collect().items()}
            else:
                logits_s = forward(x)
        return Step(x=x, y=y, index=idx, logits_s=_f32(logits_s), logits_t=logits_t, feats_s=feats_s,
                    feats_t=feats_t)

    def check_shapes(self) -> None:
        """One dry run on a few training samples, so that size mismatches fail before training."""
        x, y, idx = fetch(self.data.train, torch.arange(min(len(self.data.train), 4)))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for who, forward in (("student", lambda: self.model(x.to(self.device))),
                                     ("teacher", lambda: self.step(self.data.train, x, y, idx, self.model))):
                    step = forward()
        except RuntimeError as exc:
            raise ValueError(f"the {who} cannot run on the data's inputs of shape {tuple(x.shape[1:])}: {exc}; "
                             f"build it for that input shape") from exc
        finally:
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

    def wrap(self) -> None:
        """Under torchrun, train through DDP (after the dry run: connectors exist by then)."""
        if self.rt.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(_Trainable(self.model, self.losses), device_ids=ids)

    def epoch(self, ds, epoch: int, state: State | None, callbacks, interrupt=None, start: int = 0) -> dict:
        """One pass over ``ds``: training when ``state`` is given, else evaluation. Each rank
        takes its share of every global batch; sums are reduced over ranks at the end."""
        train = state is not None
        self.model.train(train)
        self.losses.train(train)
        if start == 0 or self.acc is None:
            self.acc = {"sums": torch.zeros(len(self.terms), device=self.device),
                        "correct": torch.zeros((), device=self.device, dtype=torch.long), "seen": 0}
        self.acc["pending"] = []
        acc, sums, pending = self.acc, self.acc["sums"], self.acc["pending"]
        rank, world, distributed = self.rt.rank, self.rt.world_size, self.rt.distributed
        plan = global_batches(len(ds), self.cfg.batch_size, train, self.cfg.seed * 100_003 + epoch)
        forward = self.forward if train else self.model
        batch_hooks = [cb.on_batch_end for cb in callbacks if hasattr(cb, "on_batch_end")] if train else []
        single = self.terms[0] if len(self.terms) == 1 else None
        with torch.set_grad_enabled(train):
            for b in range(start, len(plan)):
                batch = plan[b]
                if train and batch.shape[0] < 2 * world and len(ds) > 1:
                    continue  # batch norm cannot train on one sample per process; reshuffled next epoch
                shard = batch if world == 1 else batch[rank::world]
                n = shard.shape[0]
                if n == 0:
                    continue  # a last batch smaller than the number of processes
                x, y, idx = fetch(ds, shard)
                if train and self.data.augment is not None:
                    x = self.data.augment(x)  # training batches only; teacher and student see the same view
                step = self.step(ds, x, y, idx, forward)
                if single is not None:  # one term: no stack and no dot in the graph
                    values = single.method(step)
                    loss = values if single.weight == 1.0 else values * single.weight
                else:
                    values = torch.stack([t.method(step) for t in self.terms])
                    loss = torch.dot(self.weights, values)
                bad = not math.isfinite(loss.item())  # one host read: cheaper than isfinite() + bool()
                if distributed:  # every rank stops, or none: a lone rank would leave DDP waiting
                    bad = bool(self.rt.all_sum(torch.tensor([float(bad)], device=self.device)) > 0)
                if bad:
                    self._non_finite(epoch, b, values.detach().reshape(-1))
                if train:
                    if distributed and n * world != batch.shape[0]:
                        # DDP averages the ranks' gradients equally; weight each rank's mean loss by
                        # its share of the batch so every sample counts the same, as in one process.
                        loss = loss * (n * world / batch.shape[0])
                    self._update(loss)
                # Running sums stay on the device: no host sync per batch beyond the finiteness check.
                sums.add_(values.detach(), alpha=n)
                acc["seen"] += n
                pending.append((step.logits_s.detach(), step.y))
                if len(pending) == _PENDING:
                    self._count_correct()
                if train:
                    state.batch = b
                    for hook in batch_hooks:
                        hook(state)
                    if interrupt is not None and interrupt.requested():
                        raise Stop()
        return self._record("train_" if train else "val_")

    def _count_correct(self) -> None:
        """Add the pending batches' correct predictions to the running count: one argmax over
        several batches is cheaper than one per batch (integer counts: the grouping is exact)."""
        pending = self.acc.get("pending")
        if pending:
            logits = torch.cat([p[0] for p in pending])
            labels = torch.cat([p[1] for p in pending])
            self.acc["correct"].add_((logits.argmax(1) == labels).sum())
            pending.clear()

    def _update(self, loss) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def _totals(self) -> Tensor:
        """This epoch's loss sums, correct count and samples seen so far, summed over ranks
        (collective: every rank calls it)."""
        self._count_correct()
        acc = self.acc
        return self.rt.all_sum(torch.cat([acc["sums"], acc["correct"].reshape(1).to(acc["sums"].dtype),
                                          torch.tensor([float(acc["seen"])], device=self.device)]))

    def _record(self, prefix: str) -> dict:
        totals = self._totals().tolist()
        seen = max(totals[-1], 1.0)
        means = [v / seen for v in totals[:len(self.terms)]]
        record = {prefix + "loss": sum(t.weight * m for t, m in zip(self.terms, means)),
                  prefix + "accuracy": totals[len(self.terms)] / seen}
        record.update({prefix + t.name: m for t, m in zip(self.terms, means)})
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

    def reduced_partial(self) -> dict:
        """This epoch's running sums so far, summed over ranks (collective: every rank calls it)."""
        totals = self._totals()
        k = len(self.terms)
        return {"sums": totals[:k].clone(), "correct": totals[k].round().long(), "seen": int(totals[k + 1])}

    def blob(self, position: tuple[int, int], scheduler, callbacks, state: State, partial=None) -> dict:
        """The checkpoint's contents at ``position`` = (epoch, batches of it done); ``partial``
        holds the epoch's sums so far over all ranks when stopped mid-epoch."""
        return {
            "position": list(position), "partial": partial, "stopped": state.stop,
            "model": self.model.state_dict(), "methods": self.losses.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "callbacks": {key: cb.state_dict() for key, cb in checkpoint.stateful(callbacks).items()},
            "history": state.history, "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "config": asdict(self.cfg),
        }

    def restore(self, blob: dict, path: Path, scheduler, callbacks, state: State) -> tuple[int, int]:
        """Load a checkpoint's contents; return its position."""
        try:
            self.model.load_state_dict(blob["model"])
            self.losses.load_state_dict(blob["methods"])
            self.optimizer.load_state_dict(blob["optimizer"])
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"cannot resume from {path}: it does not match this model and objective ({exc})") from exc
        if scheduler is not None and blob["scheduler"] is not None:
            scheduler.load_state_dict(blob["scheduler"])
        if self.scaler is not None and blob["scaler"] is not None:
            self.scaler.load_state_dict(blob["scaler"])
        for key, cb in checkpoint.stateful(callbacks).items():
            if key in blob["callbacks"]:
                cb.load_state_dict(blob["callbacks"][key])
        state.history, state.stop = list(blob["history"]), blob["stopped"]
        torch.set_rng_state(blob["rng"].cpu())
        if blob["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(blob["cuda_rng"].cpu(), self.device)
        if blob["partial"] is not None and self.rt.is_main:  # the saved sums are over all ranks:
            self.acc = dict(blob["partial"])  # rank 0 carries them, the others restart from zero
        return tuple(blob["position"])


def _f32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 (a dtype check is cheaper per step than a no-op ``.float()`` call)."""
    return t if t.dtype == torch.float32 else t.float()


def _teacher_taps(teacher: Teacher | None, names: list[str]) -> FeatureTaps:
    """Taps on the teacher's module; only a live PyTorch teacher can provide features."""
    module = getattr(teacher, "module", None)
    if names and not isinstance(module, nn.Module):
        raise ValueError(f"the objective taps teacher features {sorted(set(names))}, but the teacher "
                         f"({type(teacher).__name__}) has no PyTorch module to tap; feature methods need "
                         f"a torch.nn.Module teacher")
    return FeatureTaps(module, names) if names else FeatureTaps(nn.Module(), [])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# The loop


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

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C, after the current batch, once a checkpoint (with ``checkpoint_dir``) is saved.
    """
    if config is not None and options:
        raise TypeError("give either config= or keyword training options, not both")
    cfg = config if config is not None else TrainConfig.from_kwargs(**options)
    terms = methods_mod.objective(objective)
    needs_teacher = [t.name for t in terms if t.method.needs_teacher]
    if needs_teacher and teacher is None:
        raise ValueError(f"method(s) {needs_teacher} need a teacher, but teacher=None")
    rt = Runtime.create(cfg.device, cfg.precision)
    ckpt = Path(cfg.checkpoint_dir) / checkpoint.CHECKPOINT if cfg.checkpoint_dir else None
    if ckpt is not None and rt.is_main:
        checkpoint.check_writable(ckpt.parent)
    _seed_everything(cfg.seed)
    model.to(rt.device)
    run = _Run(model, data, terms, as_teacher(teacher) if needs_teacher else None, cfg, rt)
    run.check_shapes()
    run.wrap()
    params = list(model.parameters()) + list(run.losses.parameters())
    run.optimizer = make_optimizer([p for p in params if p.requires_grad], cfg)
    run.scaler = rt.grad_scaler()
    scheduler = make_schedule(run.optimizer, cfg)

    callbacks = list(callbacks)
    early = None
    if cfg.patience is not None and data.val is not None:
        early = EarlyStopping(cfg.monitor, cfg.patience, cfg.restore_best)
        callbacks.append(early)
    if not cfg.quiet and rt.is_main and sys.stderr.isatty():
        callbacks.append(ProgressBar())
    if rt.distributed and len(data.train) < 2 * rt.world_size:
        raise ValueError(f"the train split has {len(data.train)} sample(s), too few for {rt.world_size} processes "
                         f"(each needs at least 2 per step); use fewer processes or more data")
    state = State(model=model, config=cfg, batches_per_epoch=math.ceil(len(data.train) / cfg.batch_size))
    start_epoch, start_batch = _resume(ckpt, cfg, run, scheduler, callbacks, state) if ckpt else (0, 0)
    state.epoch = start_epoch if not state.stop else cfg.epochs

    call(callbacks, "on_fit_start", state)
    try:
        with Interrupt(rt) as interrupt:
            for epoch in range(state.epoch, cfg.epochs):
                state.epoch = epoch
                call(callbacks, "on_epoch_start", state)
                t0 = time.perf_counter()
                record = {"epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"]}
                try:
                    record.update(run.epoch(data.train, epoch, state, callbacks, interrupt, start_batch))
                except Stop:
                    _interrupted(ckpt, run, scheduler, callbacks, state)
                start_batch = 0
                if data.val is not None:
                    record.update(run.epoch(data.val, epoch, None, callbacks))
                record["seconds"] = time.perf_counter() - t0
                if scheduler is not None:
                    scheduler.step()
                state.history.append(record)
                if rt.is_main:
                    log.debug("epoch %d/%d %s", epoch + 1, cfg.epochs, " ".join(
                        f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "lr", "seconds")))
                call(callbacks, "on_epoch_end", state)
                if ckpt is not None and rt.is_main:
                    checkpoint.save(ckpt, run.blob((epoch + 1, 0), scheduler, callbacks, state))
                if state.stop:
                    break
    finally:
        call(callbacks, "on_fit_end", state)
        if run.forward is not model:
            # DDP's reducer sits in a reference cycle: collect it now, while the interpreter is
            # alive; collected at exit, gloo aborts the process ("terminate called...").
            run.forward = model
            gc.collect()
    model.eval()
    stopped = state.stop and bool(state.history) and state.history[-1]["epoch"] < cfg.epochs - 1
    return History(state.history, early.best_epoch if early else None, stopped)


def _interrupted(ckpt, run: _Run, scheduler, callbacks, state: State) -> None:
    """Save where Ctrl-C stopped us (mid-epoch, with the sampler position) and raise."""
    done = state.batch + 1
    partial = run.reduced_partial()  # collective: on every rank, before rank 0 saves
    if ckpt is not None and run.rt.is_main:
        checkpoint.save(ckpt, run.blob((state.epoch, done), scheduler, callbacks, state, partial))
    raise TrainingInterrupted(state.epoch + 1, done, ckpt)


def _resume(path: Path, cfg: TrainConfig, run: _Run, scheduler, callbacks, state: State) -> tuple[int, int]:
    """Restore from ``path`` when resuming; refuse to overwrite an earlier run's checkpoint."""
    if not path.exists():
        return 0, 0
    if not cfg.resume:
        raise FileExistsError(
            f"{path} holds a checkpoint from an earlier run; pass resume=True to continue it, "
            f"or choose another checkpoint_dir so it is not overwritten"
        )
    position = run.restore(checkpoint.load(path, run.device), path, scheduler, callbacks, state)
    if run.rt.is_main:
        log.info("resumed from %s at epoch %d, batch %d", path, position[0] + 1, position[1])
    return position
