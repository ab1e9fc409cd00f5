"""One call of :func:`~kdistill.engine.fit`: the pieces the loop needs, assembled and checked once,
and the training step.

The step is the whole of distillation as the engine sees it: the teacher's outputs (served as
:mod:`kdistill.teachers.serving` decides) and the tapped features, the student's forward pass,
the weighted sum of the method terms, backward and the optimizer step. Devices, precision and
distribution are the :class:`~kdistill.engine.runtime.Runtime`'s business.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..data import Splits, epoch_plan, fetch
from ..methods import Step, Term
from ..taps import FeatureTaps
from ..teachers import Teacher, check_classes, serve
from .config import TrainConfig, make_optimizer, make_schedule, within_steps
from .interrupt import Stop
from .runtime import Runtime
from .sums import EpochSums


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; training stopped before the bad step was applied."""


class _Trainable(nn.Module):
    """The student and the methods' connectors as one module, so DDP averages all their gradients."""

    def __init__(self, model: nn.Module, losses: nn.ModuleList):
        super().__init__()
        self.model, self.losses = model, losses

    def forward(self, x):
        return self.model(x)


class Trainer:
    """Model, objective, served teacher outputs, taps, optimizer and runtime of one fit.

    Building it serves the teacher, runs one dry step (so that size mismatches fail before
    training and connectors get their shapes), wraps the model for DDP under torchrun, and makes
    the optimizer, gradient scaler and learning-rate schedule.
    """

    def __init__(self, model: nn.Module, data: Splits, terms: list[Term], teacher: Teacher | None,
                 cfg: TrainConfig, rt: Runtime):
        self.model, self.data, self.terms, self.cfg, self.rt = model, data, terms, cfg, rt
        self.device = rt.device
        self.names, self.weight_list = [t.name for t in terms], [t.weight for t in terms]
        self.weights = torch.tensor(self.weight_list, dtype=torch.float32, device=self.device)
        self.train_set = data.training(distilled=teacher is not None and cfg.unlabeled, views=cfg.views)
        tapped = any(t.method.teacher_taps for t in terms)
        self.serving = (serve(teacher, data, self.train_set, tapped=tapped, device=self.device, once=rt.main_first)
                        if teacher is not None else None)
        self.losses = nn.ModuleList([t.method for t in terms]).to(self.device)
        self.taps_s = FeatureTaps(model, [n for t in terms for n in t.method.student_taps])
        self.taps_t = _teacher_taps(self.serving, [n for t in terms for n in t.method.teacher_taps])
        self.forward = model
        self._check_shapes()
        if rt.distributed:  # after the dry run: connectors exist by then
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(_Trainable(model, self.losses), device_ids=ids)
        params = [p for p in [*model.parameters(), *self.losses.parameters()] if p.requires_grad]
        self.optimizer = make_optimizer(params, cfg)
        self.scaler = rt.grad_scaler()
        self.steps_per_epoch = len(epoch_plan(self.train_set, cfg.batch_size, True, cfg.seed, cfg.labeled_share))
        self.cfg = cfg = within_steps(cfg, self.steps_per_epoch)
        self.scheduler, self.per_step = make_schedule(self.optimizer, cfg, self.steps_per_epoch)
        self.sums: EpochSums | None = None

    # ----------------------------------------------------------------------------------------
    # The step

    def step(self, ds, x: Tensor, y: Tensor, idx: Tensor, forward, targets: Tensor | None = None) -> Step:
        """Forward passes of one batch: the teacher's outputs and features, then the student's."""
        logits_t, feats_t, feats_s = None, {}, {}
        with self.rt.autocast():  # forward passes only: the losses below see float32
            if self.serving is not None:
                with self.taps_t:  # the teacher runs under inference_mode: its features are cloned
                    logits_t = _f32(self.serving.logits(ds, x, idx))
                feats_t = self.taps_t.collect(clone=True, dtype=torch.float32)
            with self.taps_s:
                logits_s = _f32(forward(x))
            feats_s = self.taps_s.collect(dtype=torch.float32)
        return Step(x=x, y=y, index=idx, logits_s=logits_s, logits_t=logits_t, feats_s=feats_s, feats_t=feats_t,
                    targets=targets)

    def objective(self, step: Step) -> tuple[Tensor, Tensor]:
        """The value of each term and their weighted sum (one term: no stack or dot in the graph)."""
        if len(self.terms) == 1:
            value = self.terms[0].method(step)
            return value, value if self.weight_list[0] == 1.0 else value * self.weight_list[0]
        values = torch.stack([t.method(step) for t in self.terms])
        return values, torch.dot(self.weights, values)

    def epoch(self, ds, epoch: int, callbacks=(), state=None, interrupt=None, start: int = 0) -> dict:
        """One pass over ``ds``: training when ``state`` is given, else evaluation."""
        train = state is not None
        self.model.train(train)
        self.losses.train(train)
        if start == 0 or self.sums is None:
            self.sums = EpochSums(len(self.terms), self.device)
        hooks = [cb.on_batch_end for cb in callbacks if hasattr(cb, "on_batch_end")]
        with torch.set_grad_enabled(train):
            for b, (x, y, idx, targets, share) in self.batches(ds, epoch, train, start):
                step = self.step(ds, x, y, idx, self.forward if train else self.model, targets)
                values, loss = self.objective(step)
                if self.rt.any(not math.isfinite(loss.item())):  # one host read per step
                    self._non_finite(epoch, b, values.detach().reshape(-1))
                if train:
                    self.rt.update(loss if share == 1.0 else loss * share, self.optimizer, self.scaler)
                    if self.per_step:
                        self.scheduler.step()
                self.sums.add(values, step.logits_s, step.y)
                if train:
                    state.batch = b
                    for hook in hooks:
                        hook(state)
                    if interrupt is not None and interrupt.requested():
                        raise Stop()
        return self.sums.record("train_" if train else "val_", self.names, self.weight_list, self.rt)

    def batches(self, ds, epoch: int, train: bool, start: int = 0):
        """``(b, (x, y, index, targets, share))`` for this process's part of each global batch from
        ``start``, on the device, augmented when training; ``targets`` are mixed labels (fixed views
        that mix samples), else ``None``; ``share`` weights the loss (see ``Runtime.share``)."""
        plan = epoch_plan(ds, self.cfg.batch_size, train, self.cfg.seed * 100_003 + epoch,
                          self.cfg.labeled_share if train else None)
        world, end = self.rt.world_size, len(plan)
        if train and self.cfg.max_steps is not None:  # the step budget ends within this epoch
            end = min(end, self.cfg.max_steps - epoch * self.steps_per_epoch)
        for b in range(start, end):
            batch = plan[b]
            if train and batch.shape[0] < 2 * world and len(ds) > 1:
                continue  # batch norm cannot train on one sample per process; reshuffled next epoch
            shard = self.rt.shard(batch)
            if shard.shape[0] == 0:
                continue  # a last batch smaller than the number of processes
            x, y, idx = fetch(ds, shard)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if train and self.data.augment is not None:
                x = self.data.augment(x)  # training batches only; teacher and student see the same view
            targets = ds.targets(idx, self.data.num_classes) if hasattr(ds, "targets") else None
            yield b, (x, y, idx, None if targets is None else targets.to(self.device),
                      self.rt.share(shard.shape[0], batch.shape[0]))

    # ----------------------------------------------------------------------------------------
    # Checks

    def _check_shapes(self) -> None:
        """One dry step on a few training samples, so that size mismatches fail before training."""
        x, y, idx = fetch(self.train_set, torch.arange(min(len(self.train_set), 4)))
        x, y = x.to(self.device), y.to(self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for who, run in (("student", lambda: self.model(x)),
                                 ("teacher", lambda: self.step(self.train_set, x, y, idx, self.model))):
                    step = run()
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
        if self.serving is not None and self.serving.teacher.classes is not None:
            check_classes(self.serving.teacher.classes, self.data.classes)
        for term in self.terms:
            _dry_term(term, step)

    def _non_finite(self, epoch: int, batch: int, values) -> None:
        parts = ", ".join(f"{name}={float(v):.4g}" for name, v in zip(self.names, values))
        kept = (f"the last good checkpoint (end of epoch {epoch}) is kept in {self.cfg.checkpoint_dir}"
                if self.cfg.checkpoint_dir and epoch > 0 else "no checkpoint was written")
        raise NonFiniteLossError(
            f"the loss became non-finite at epoch {epoch + 1}, batch {batch + 1} ({parts}); training stopped "
            f"before applying that step and {kept}. Lower the learning rate, check the inputs for NaN/inf, "
            f"or check the teacher's outputs."
        )


def _dry_term(term, step) -> None:
    """Shape a method's connectors and run it once, so that layers it cannot pair fail before
    training with both layers and their output shapes named, not a bare torch error."""
    pairs = list(zip(term.method.student_taps, term.method.teacher_taps))
    if not pairs:
        term.method.setup(step)
        return
    try:
        term.method.setup(step)
        with torch.no_grad():
            term.method(step)
    except (RuntimeError, ValueError) as exc:
        def shape(t):
            return "not tapped" if t is None else f"output {tuple(t.shape[1:])}"

        named = "; ".join(f"student layer {s!r} ({shape(step.feats_s.get(s))}) with teacher layer {t!r} "
                          f"({shape(step.feats_t.get(t))})" for s, t in pairs)
        raise ValueError(f"method {term.name!r} cannot pair {named}: {exc}; choose layers whose outputs it can "
                         f"compare (`kdistill layers` lists every layer's output shape and suggests pairs)") from exc


def _f32(t: Tensor) -> Tensor:
    """``t`` as float32 (a dtype check is cheaper per step than a no-op ``.float()`` call)."""
    return t if t.dtype == torch.float32 else t.float()


def _teacher_taps(serving, names: list[str]) -> FeatureTaps:
    """Taps on the teacher's module; only a live PyTorch teacher can provide features."""
    if not names:
        return FeatureTaps(nn.Module(), [])
    module = getattr(serving.teacher, "module", None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"the objective taps teacher features {sorted(set(names))}, but the teacher "
                         f"({type(serving.teacher).__name__}) has no PyTorch module to tap; feature methods need "
                         f"a torch.nn.Module teacher")
    return FeatureTaps(module, names)
