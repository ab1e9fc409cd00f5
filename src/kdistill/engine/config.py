"""Training settings: every value is checked when a :class:`TrainConfig` is made."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from .runtime import PRECISIONS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step", "warmup-cosine")


@dataclass
class TrainConfig:
    """Settings of one training run. Every value is checked when the config is made.

    Each field's docstring below is its documentation (the docs' training options and the experiment
    file's ``train`` section are generated from them: :func:`field_docs`)."""

    epochs: int = 20
    """Epoch budget (early stopping may end sooner)."""
    max_steps: int | None = None
    """Optimizer-step budget: training ends after this many steps, the last epoch cut short, or after epochs,
    whichever comes first (null: epochs alone). Schedules span the steps actually taken."""
    batch_size: int = 64
    """The global batch: shared out between processes under torchrun."""
    optimizer: str = "adam"
    """adam, adamw or sgd (with momentum)."""
    lr: float = 1e-3
    """Learning rate."""
    weight_decay: float = 0.0
    """Weight decay of the optimizer."""
    momentum: float = 0.9
    """sgd only."""
    schedule: str = "none"
    """none, cosine or step (changed each epoch), or warmup-cosine: a linear rise over the first warmup share of all
    optimizer steps, then a cosine decay to 0, changed each step."""
    step_size: int = 10
    """step schedule: epochs between decays."""
    gamma: float = 0.1
    """step schedule: the decay factor."""
    warmup: float = 0.05
    """warmup-cosine: the share of all optimizer steps spent rising linearly to lr."""
    seed: int = 0
    """Seeds Python, NumPy and torch, and the per-epoch shuffling."""
    unlabeled: bool = True
    """A distilled model trains on the data's unlabelled inputs too (false: labelled samples only)."""
    views: bool = True
    """Train on the data's fixed views when it has them (false: on the samples as they are)."""
    labeled_share: float | None = None
    """With unlabelled inputs (a distilled model only): the share of labelled samples in every batch; null shuffles
    labelled and unlabelled samples together."""
    patience: int | None = None
    """Stop after this many epochs without improvement of monitor."""
    monitor: str = "val_accuracy"
    """The history metric the best epoch is chosen by (a *_loss is minimized)."""
    restore_best: bool = True
    """End at the best epoch on validation, whether or not early stopping is on (false: keep the last epoch)."""
    checkpoint_dir: str | None = None
    """A folder for last.pt, written atomically every epoch; an existing checkpoint is never overwritten without
    resume."""
    resume: bool = False
    """Continue from the checkpoint in checkpoint_dir."""
    quiet: bool = False
    """No progress bar or per-epoch lines."""
    device: str = "cpu"
    """Any torch device; auto picks CUDA when available (one GPU per process under torchrun)."""
    precision: str = "32"
    """32; bf16: bfloat16 autocast (CPU or GPU); fp16: float16 autocast with a gradient scaler (GPU only)."""

    def __post_init__(self):
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        _positive_int("step_size", self.step_size)
        if self.patience is not None:
            _positive_int("patience", self.patience)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("precision", self.precision, PRECISIONS)
        for name in ("lr", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if self.labeled_share is not None and not (isinstance(self.labeled_share, (int, float))
                                                   and 0 < self.labeled_share < 1):
            raise ValueError(f"labeled_share must lie in (0, 1) (a share of each batch), got {self.labeled_share!r}")
        if not (isinstance(self.warmup, (int, float)) and 0 <= self.warmup < 1):
            raise ValueError(f"warmup must be a share of the optimizer steps in [0, 1), got {self.warmup!r}")
        for name in ("weight_decay", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.monitor.startswith(("val_", "train_")):
            raise ValueError(f"monitor must name a history metric such as 'val_accuracy' or 'val_loss', "
                             f"got {self.monitor!r}")

    @classmethod
    def from_kwargs(cls, **kwargs) -> TrainConfig:
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise TypeError(f"unknown training option(s) {unknown}; allowed: {', '.join(allowed)}")
        return cls(**kwargs)


def field_docs(cls=None) -> dict[str, str]:
    """The docstring of each field of a dataclass (``TrainConfig`` by default), read from its source."""
    import ast
    import inspect

    cls = cls or TrainConfig
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def make_optimizer(params, cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The optimizer steps of a run of ``steps_per_epoch`` steps an epoch: its epochs' steps, or
    ``max_steps`` when that is fewer."""
    steps = cfg.epochs * steps_per_epoch
    return steps if cfg.max_steps is None else min(steps, cfg.max_steps)


def step_budget(steps: int, steps_per_epoch: int) -> dict:
    """The training options of a budget of exactly ``steps`` optimizer steps over epochs of
    ``steps_per_epoch``: the epochs those steps reach into and ``max_steps``, the last epoch cut short."""
    return {"epochs": -(-steps // max(1, steps_per_epoch)), "max_steps": steps}


def within_steps(cfg: TrainConfig, steps_per_epoch: int) -> TrainConfig:
    """``cfg`` with its epochs cut to those that ``max_steps`` reaches into (the last of them
    perhaps cut short), so progress, checkpoints and schedules count the epochs that run."""
    if cfg.max_steps is None:
        return cfg
    return replace(cfg, epochs=min(cfg.epochs, -(-cfg.max_steps // max(1, steps_per_epoch))))


def make_schedule(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The learning-rate schedule and whether it is stepped after every optimizer step (else
    after every epoch); ``(None, False)`` for a constant learning rate. ``cfg``'s epochs are those
    that run (see :func:`within_steps`)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs), False
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), False
    if cfg.schedule == "warmup-cosine":
        factor = WarmupCosine(total_steps(cfg, steps_per_epoch), cfg.warmup)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    return None, False


class WarmupCosine:
    """Learning-rate factor at optimizer step ``s`` of ``total``: a linear rise over the first
    ``warmup`` share of the steps, then a cosine decay to 0 (the schedule of patient distillation,
    Beyer et al., CVPR 2022)."""

    def __init__(self, total: int, warmup: float):
        self.total = max(1, total)
        self.warm = min(self.total - 1, round(warmup * self.total)) if warmup > 0 else 0

    def __call__(self, s: int) -> float:
        if s < self.warm:
            return (s + 1) / self.warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - self.warm) / max(1, self.total - self.warm))))
