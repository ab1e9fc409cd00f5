"""Training settings: every value is checked when a :class:`TrainConfig` is made."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .runtime import PRECISIONS

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")


@dataclass
class TrainConfig:
    """Settings of one training run. Every value is checked when the config is made."""

    epochs: int = 20
    batch_size: int = 64  # the global batch: shared out between processes under torchrun
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
    device: str = "cpu"  # "auto" picks CUDA when available
    precision: str = "32"  # "bf16" autocast (CPU or GPU), "fp16" autocast + grad scaler (GPU)

    def __post_init__(self):
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
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


def make_schedule(optimizer, cfg: TrainConfig):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None
