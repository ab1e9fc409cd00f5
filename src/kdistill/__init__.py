"""kdistill: turn a large, accurate classifier into a small, fast one, and see what it bought."""

import os

from . import methods, models
from .cache import CachedTeacher, clear_cache
from .data import ArrayDataset, Splits, load_dataset, split_arrays
from .engine import EarlyStopping, History, NonFiniteLossError, TrainConfig, fit
from .losses import kd_loss
from .metrics import evaluate, latency_ms
from .modes import ModeResult, born_again, mutual, self_distill
from .serialize import load_sklearn, load_weights, save_sklearn, save_weights
from .taps import FeatureTaps
from .teachers import EnsembleTeacher, Teacher, as_teacher

__version__ = "0.1.0"


def train(model, data, **options) -> History:
    """Train ``model`` on labels alone (cross-entropy). ``options`` are :class:`TrainConfig` fields."""
    return fit(model, data, objective=[("ce", 1.0)], **options)


def distill(teacher, student, data, *, alpha: float = 0.5, temperature: float = 4.0, methods=None,
            cache=False, **options) -> History:
    """Distil ``teacher`` into ``student``.

    The default objective is ``(1 - alpha) * CE(student, labels) + alpha * kd_loss(T)`` where
    ``kd_loss`` is T²·KL(teacher ‖ student) at temperature ``T``. ``methods`` replaces it with
    any weighted list of terms, e.g. ``[("ce", 0.1), ("kd", 0.9, {"temperature": 4})]``.
    ``cache`` reads the teacher's outputs from the teacher-output cache (computed once per
    dataset, see :class:`CachedTeacher`): ``True`` for the default folder, or a folder path.
    ``options`` are :class:`TrainConfig` fields (epochs, lr, patience, checkpoint_dir, ...).
    """
    from .losses import check_alpha, check_temperature

    if methods is None:
        alpha, temperature = check_alpha(alpha), check_temperature(temperature)
        methods = [("ce", 1.0 - alpha), ("kd", alpha, {"temperature": temperature})]
    if cache is not False:
        if not isinstance(cache, (bool, str, os.PathLike)):
            raise TypeError(f"cache must be True, False or a folder path, got {cache!r}")
        teacher = CachedTeacher(teacher, cache_dir=None if cache is True else cache)
    return fit(student, data, objective=methods, teacher=teacher, **options)


__all__ = ["ArrayDataset", "CachedTeacher", "EarlyStopping", "EnsembleTeacher", "FeatureTaps", "History",
           "ModeResult", "NonFiniteLossError", "Splits", "Teacher", "TrainConfig", "as_teacher", "born_again",
           "clear_cache", "distill", "evaluate", "fit", "kd_loss", "latency_ms", "load_dataset", "load_sklearn",
           "load_weights", "methods", "models", "mutual", "save_sklearn", "save_weights", "self_distill",
           "split_arrays", "train"]
