"""The training engine: one loop (:func:`fit`), the training step (:class:`Trainer`), its
settings, callbacks, checkpoints, Ctrl-C handling and runtime (device, precision,
torch.distributed)."""

from .callbacks import BestEpoch, EarlyStopping, History, ProgressBar, State
from .checkpoint import CHECKPOINT
from .config import OPTIMIZERS, SCHEDULES, TrainConfig
from .interrupt import TrainingInterrupted
from .loop import fit
from .runtime import PRECISIONS, Runtime
from .trainer import NonFiniteLossError, Trainer

__all__ = ["CHECKPOINT", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "BestEpoch", "EarlyStopping", "History",
           "NonFiniteLossError", "ProgressBar", "Runtime", "State", "TrainConfig", "Trainer", "TrainingInterrupted",
           "fit"]
