"""Teachers: anything that gives logits for a batch (see :class:`Teacher`), the adapters that
make one from a torch module, a scikit-learn model, an ONNX file, a ``transformers`` model folder
or a callable (:func:`as_teacher`), ensembles, the teacher-output cache, and the policy of which
outputs a split is served (:func:`serve`)."""

from .adapters import CallableTeacher, OnnxTeacher, SklearnTeacher, TorchTeacher
from .base import OUTPUTS, PROB_EPS, Teacher, check_classes, looks_like_probabilities, probabilities_to_logits
from .cache import CachedTeacher, cache_dir, clear_cache, teacher_fingerprint
from .ensemble import EnsembleTeacher
from .files import KINDS, load_teacher_file, teacher_file_kind
from .serving import RememberedTeacher, Serving, serve
from .wrap import as_teacher

__all__ = ["KINDS", "OUTPUTS", "PROB_EPS", "CachedTeacher", "CallableTeacher", "EnsembleTeacher", "OnnxTeacher",
           "RememberedTeacher", "Serving", "SklearnTeacher", "Teacher", "TorchTeacher", "as_teacher", "cache_dir",
           "check_classes", "clear_cache", "load_teacher_file", "looks_like_probabilities",
           "probabilities_to_logits", "serve", "teacher_file_kind", "teacher_fingerprint"]
