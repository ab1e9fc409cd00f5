"""Teachers: anything that gives logits for a batch (see :class:`Teacher`), the adapters that
make one from a torch module, a scikit-learn model, an ONNX file or a callable
(:func:`as_teacher`), ensembles, the teacher-output cache, and the policy of which outputs a
split is served (:func:`serve`)."""

from .adapters import CallableTeacher, OnnxTeacher, SklearnTeacher, TorchTeacher, as_teacher
from .base import OUTPUTS, PROB_EPS, Teacher, check_classes, probabilities_to_logits
from .cache import CachedTeacher, cache_dir, clear_cache
from .ensemble import EnsembleTeacher
from .serving import RememberedTeacher, Serving, serve

__all__ = ["OUTPUTS", "PROB_EPS", "CachedTeacher", "CallableTeacher", "EnsembleTeacher", "OnnxTeacher",
           "RememberedTeacher", "Serving", "SklearnTeacher", "Teacher", "TorchTeacher", "as_teacher", "cache_dir",
           "check_classes", "clear_cache", "probabilities_to_logits", "serve"]
