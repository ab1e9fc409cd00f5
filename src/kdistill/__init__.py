"""kdistill: turn a large, accurate classifier into a small, fast one, and see what it bought.

The public API:

- distillation: :func:`distill`, and the one loop :func:`fit` behind it; the modes
  :func:`mutual`, :func:`born_again`, :func:`self_distill`;
- teachers from anything: :func:`as_teacher`, :class:`EnsembleTeacher`, :class:`CachedTeacher`;
- scikit-learn: :class:`DistilledClassifier` (any teacher into a scikit-learn student),
  :class:`NativeCategoricals` (a boosted tree on a table's categorical columns as categories);
- data: :func:`load_dataset`, :func:`load_images`, :func:`load_idx`, :func:`load_table`,
  :func:`split_arrays`, :class:`Splits`;
- evaluation and deployment: :func:`evaluate`, :func:`export` (ONNX, int8, latency), :func:`load` (a
  run's recommended or named student, ready to predict) and :func:`load_onnx` (its ONNX Runtime session);
- studies: :func:`compare` (teacher vs students, from Python, into a run folder and report);
  students pruned from the teacher (:class:`FromTeacher`) and :func:`shrink` (the student
  searched under a budget of parameters, MACs, size or latency);
  experiment files: :func:`load_experiment` and :func:`run_experiment` (what ``kdistill run`` does);
- tracking callbacks: :class:`TensorBoard`, :class:`MLflow`;
- model files: :func:`save_weights`, :func:`load_weights`, :func:`save_sklearn`, :func:`load_sklearn`.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names for type checkers and the API reference (griffe reads these statically)
    from . import losses, methods, models
    from .arguments import check_data, check_objective  # noqa: F401
    from .categoricals import NativeCategoricals
    from .config import load as load_experiment
    from .data import ArrayDataset, Splits, load_dataset, load_idx, load_images, load_table, split_arrays
    from .distillation import distill
    from .engine import EarlyStopping, History, MLflow, NonFiniteLossError, TensorBoard, TrainConfig, fit
    from .export import export
    from .export.deploy import load, load_onnx
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

# Public name -> the module that defines it. Nothing is imported until a name is first used, so
# that ``kdistill --help`` and ``--version`` start without torch, scikit-learn or onnx (PEP 562).
_WHERE = {
    "losses": None, "methods": None, "models": None,
    "check_data": "arguments", "check_objective": "arguments",
    "load_experiment": ("config", "load"),
    "ArrayDataset": "data", "Splits": "data", "load_dataset": "data", "load_idx": "data", "load_images": "data",
    "load_table": "data", "split_arrays": "data",
    "EarlyStopping": "engine", "History": "engine", "MLflow": "engine", "NonFiniteLossError": "engine",
    "TensorBoard": "engine", "TrainConfig": "engine", "fit": "engine",
    "distill": "distillation",
    "export": "export",
    "load": ("export.deploy", "load"), "load_onnx": ("export.deploy", "load_onnx"),
    "kd_loss": "losses",
    "evaluate": "metrics", "latency_ms": "metrics",
    "ModeResult": "modes", "born_again": "modes", "mutual": "modes", "self_distill": "modes",
    "DistilledClassifier": "sklearn", "NativeCategoricals": "categoricals",
    "compare": "study", "run_experiment": "study",
    "FeatureTaps": "taps",
    "FromTeacher": ("models.prune", "FromTeacher"), "shrink": ("shrink.search", "shrink"),
    "CachedTeacher": "teachers", "EnsembleTeacher": "teachers", "Teacher": "teachers", "as_teacher": "teachers",
    "clear_cache": "teachers",
    "load_sklearn": "weights", "load_weights": "weights", "save_sklearn": "weights", "save_weights": "weights",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'kdistill' has no attribute {name!r}")
    where = _WHERE[name]
    if where is None:
        return importlib.import_module(f".{name}", __name__)
    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    if name not in ("export", "shrink"):  # also packages of that name (callable modules)
        globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = ["ArrayDataset", "CachedTeacher", "DistilledClassifier", "EarlyStopping", "EnsembleTeacher", "FeatureTaps",
           "FromTeacher", "NativeCategoricals",
           "History", "MLflow", "ModeResult", "NonFiniteLossError", "Splits", "Teacher", "TensorBoard", "TrainConfig",
           "as_teacher", "born_again", "clear_cache", "compare", "distill", "evaluate", "export", "fit", "kd_loss",
           "latency_ms", "load_dataset", "load_experiment", "load_idx", "load_images", "load_sklearn", "load_table",
           "load", "load_onnx",
           "load_weights", "losses", "methods", "models", "mutual", "run_experiment", "save_sklearn", "save_weights",
           "self_distill", "shrink", "split_arrays", "FromTeacher"]
