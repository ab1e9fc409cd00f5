"""The training engine: one loop (:func:`fit`), its callbacks, checkpoints and runtime."""

from .callbacks import EarlyStopping, History, ProgressBar, State
from .checkpoint import CHECKPOINT
from .loop import (OPTIMIZERS, SCHEDULES, NonFiniteLossError, TrainConfig, TrainingInterrupted, batches, fetch, fit,
                   global_batches)
from .runtime import PRECISIONS, Runtime

__all__ = ["CHECKPOINT", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "EarlyStopping", "History", "NonFiniteLossError",
           "ProgressBar", "Runtime", "State", "TrainConfig", "TrainingInterrupted", "batches", "fetch", "fit",
           "global_batches"]
