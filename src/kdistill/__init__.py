"""kdistill: turn a large, accurate classifier into a small, fast one, and see what it bought.

The public API:

- distillation: :func:`distill`, and the one loop :func:`fit` behind it; the modes
  :func:`mutual`, :func:`born_again`, :func:`self_distill`;
- teachers from anything: :func:`as_teacher`, :class:`EnsembleTeacher`, :class:`CachedTeacher`;
- scikit-learn: :class:`DistilledClassifier` (any teacher into a scikit-learn student);
- data: :func:`load_dataset`, :func:`load_images`, :func:`load_idx`, :func:`load_table`,
  :func:`split_arrays`, :class:`Splits`;
- evaluation and deployment: :func:`evaluate`, :func:`export` (ONNX, int8, latency);
- studies: :func:`compare` (teacher vs students, from Python, into a run folder and report);
  students pruned from the teacher (:class:`FromTeacher`) and :func:`shrink` (the student
  searched under a budget of parameters, MACs, size or latency);
  experiment files: :func:`load_experiment` and :func:`run_experiment` (what ``kdistill run`` does);
- tracking callbacks: :class:`TensorBoard`, :class:`MLflow`;
- model files: :func:`save_weights`, :func:`load_weights`, :func:`save_sklearn`, :func:`load_sklearn`.
"""

import os

from . import losses, methods, models
from .arguments import check_data, check_objective
from .config import load as load_experiment
from .data import ArrayDataset, Splits, load_dataset, load_idx, load_images, load_table, split_arrays
from .engine import EarlyStopping, History, MLflow, NonFiniteLossError, TensorBoard, TrainConfig, fit
from .export import export
from .losses import kd_loss
from .metrics import evaluate, latency_ms
from .models.prune import FromTeacher
from .modes import ModeResult, born_again, mutual, self_distill
from .shrink.search import shrink
from .sklearn import DistilledClassifier
from .study import compare, run_experiment
from .taps import FeatureTaps
from .teachers import CachedTeacher, EnsembleTeacher, Teacher, as_teacher, clear_cache
from .weights import load_sklearn, load_weights, save_sklearn, save_weights

__version__ = "0.1.0"


def distill(teacher, student, data, *, alpha: float = 0.5, temperature: float = losses.TEMPERATURE, objective=None,
            cache=False, **options) -> History:
    """Distil ``teacher`` into ``student``: :func:`fit` with a teacher and a distillation objective.

    Parameters
    ----------
    teacher : object
        Anything :func:`as_teacher` takes: a torch module (frozen in place while it teaches), a
        fitted scikit-learn model, an ONNX, skops or ``transformers`` path, a :class:`Teacher`.
    student : torch.nn.Module
        Trained in place.
    data : Splits
        The splits; their unlabelled inputs, if any, join the distillation terms.
    alpha : float in [0, 1]
        Weight of the distillation term in the default objective
        ``(1 - alpha) * CE(student, labels) + alpha * T^2 KL(teacher || student)``.
    temperature : float > 0
        Its temperature ``T``.
    objective : list, optional
        Replaces the default with any weighted list of terms, as in :func:`fit`, e.g.
        ``[("ce", 0.1), ("kd", 0.9, {"temperature": 4})]``.
    cache : bool or str or Path
        Read the teacher's outputs from the teacher-output cache (computed once per dataset, see
        :class:`CachedTeacher`): ``True`` for the default folder, or a folder.
    **options
        :class:`TrainConfig` fields (``epochs``, ``lr``, ``patience``, ``checkpoint_dir``, ...).

    Returns
    -------
    History
        Per-epoch records; the student ends at its best validation epoch.
    """
    if objective is None:
        objective = methods.kd_objective(alpha, temperature)
    check_objective(objective)
    check_data(data, seeded=False)
    if cache is not False:
        if not isinstance(cache, (bool, str, os.PathLike)):
            raise TypeError(f"cache must be True, False or a folder path, got {cache!r}")
        teacher = CachedTeacher(teacher, cache_dir=None if cache is True else cache)
    return fit(student, data, objective=objective, teacher=teacher, **options)


__all__ = ["ArrayDataset", "CachedTeacher", "DistilledClassifier", "EarlyStopping", "EnsembleTeacher", "FeatureTaps",
           "FromTeacher",
           "History", "MLflow", "ModeResult", "NonFiniteLossError", "Splits", "Teacher", "TensorBoard", "TrainConfig",
           "as_teacher", "born_again", "clear_cache", "compare", "distill", "evaluate", "export", "fit", "kd_loss",
           "latency_ms", "load_dataset", "load_experiment", "load_idx", "load_images", "load_sklearn", "load_table",
           "load_weights", "losses", "methods", "models", "mutual", "run_experiment", "save_sklearn", "save_weights",
           "self_distill", "shrink", "split_arrays"]
