"""The training engine: one loop (:func:`fit`), the training step (:class:`Trainer`), its
settings, callbacks (early stopping, progress, TensorBoard and MLflow tracking), checkpoints,
Ctrl-C handling and runtime (device, precision, torch.distributed)."""

from .callbacks import BestEpoch, EarlyStopping, EpochLog, History, NotebookProgress, ProgressBar, State, in_notebook
from .checkpoint import CHECKPOINT
from .config import OPTIMIZERS, SCHEDULES, TrainConfig
from .interrupt import TrainingInterrupted
from .loop import fit
from .runtime import PRECISIONS, Runtime
from .tracking import MLflow, TensorBoard
from .trainer import NonFiniteLossError, Trainer

__all__ = ["CHECKPOINT", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "BestEpoch", "EarlyStopping", "EpochLog", "History",
           "MLflow", "NonFiniteLossError", "NotebookProgress", "ProgressBar", "Runtime", "State", "TensorBoard",
           "TrainConfig", "Trainer", "TrainingInterrupted", "fit", "in_notebook"]
