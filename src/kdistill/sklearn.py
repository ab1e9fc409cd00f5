"""Distillation with the scikit-learn contract: :class:`DistilledClassifier`.

The teacher is any kdistill teacher (a scikit-learn classifier, fitted or not, a torch module,
an ONNX file or callable through :func:`kdistill.as_teacher`, an ensemble); the student is a
scikit-learn estimator. Which students support which mode:

=====================  =========================================  ==========================================
student                ``mode="hard"``                            ``mode="soft"``
=====================  =========================================  ==========================================
classifier             fitted on the teacher's labels             data replicated once per class, the
                                                                  teacher's probabilities as sample weights
                                                                  (needs ``fit(..., sample_weight=)``)
regressor              fitted on one-hot teacher labels           fitted on the teacher's probabilities
                                                                  (multi-output; single-output regressors
                                                                  are wrapped in ``MultiOutputRegressor``)
=====================  =========================================  ==========================================
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, has_fit_parameter, validate_data

from .teachers import Teacher, as_teacher

MODES = ("hard", "soft")
AUGMENTS = (None, "munge", "gaussian")
SYNTHETIC_PER_SAMPLE = 5  # n_synthetic=None: this many synthetic samples per training sample
CHUNK = 4096  # samples per call of the teacher
GAUSSIAN_SCALE = 0.1  # augment="gaussian": noise standard deviation, as a share of each feature's


def munge(X, n_synthetic: int, *, p: float = 0.5, s: float = 1.0, random_state=None) -> np.ndarray:
    """Synthetic samples by MUNGE (Buciluǎ, Caruana & Niculescu-Mizil, "Model Compression",
    KDD 2006), for continuous features.

    Each pass copies the data; for every example ``e`` of the copy and its nearest neighbour
    ``e'`` (Euclidean, on features scaled to unit variance), each feature ``a`` is, with
    probability ``p``, redrawn for both: ``sd = |e_a - e'_a| / s``, ``e_a ~ N(e'_a, sd)``,
    ``e'_a ~ N(e_a, sd)`` (the old ``e_a``). Passes repeat until ``n_synthetic`` samples exist;
    the last pass is subsampled. The paper also swaps nominal features; all features here are
    treated as continuous.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        At least 2 samples.
    n_synthetic : int
        Number of samples to return.
    p : float in [0, 1]
        Probability of changing each feature of a pair.
    s : float > 0
        Local-variance divisor: larger values stay closer to the neighbour's value.
    random_state : int, RandomState or None
    """
    X = np.asarray(X, dtype=float)
    if len(X) < 2:
        raise ValueError(f"munge needs at least 2 samples to find neighbours, got n_samples = {len(X)}")
    if not 0 <= p <= 1 or not s > 0:
        raise ValueError(f"munge needs p in [0, 1] and s > 0, got p={p!r}, s={s!r}")
    rng = check_random_state(random_state)
    scale = X.std(axis=0)
    scaled = X / np.where(scale > 0, scale, 1.0)
    neighbour = NearestNeighbors(n_neighbors=2).fit(scaled).kneighbors(scaled, return_distance=False)[:, 1]
    passes = []
    for _ in range(-(-n_synthetic // len(X))):
        passes.append(_munge_pass(X.copy(), neighbour, p, s, rng))
    out = np.concatenate(passes)
    return out[rng.choice(len(out), n_synthetic, replace=False)] if len(out) > n_synthetic else out


def _munge_pass(T: np.ndarray, neighbour: np.ndarray, p: float, s: float, rng) -> np.ndarray:
    for i, j in enumerate(neighbour):
        change = rng.random_sample(T.shape[1]) < p
        old_i, old_j = T[i, change], T[j, change]
        sd = np.abs(old_i - old_j) / s
        T[i, change] = rng.normal(old_j, sd)
        T[j, change] = rng.normal(old_i, sd)
    return T


def jitter(X, n_synthetic: int, *, scale: float = GAUSSIAN_SCALE, random_state=None) -> np.ndarray:
    """``n_synthetic`` copies of random rows of ``X`` with Gaussian noise of standard deviation
    ``scale`` times each feature's standard deviation."""
    X = np.asarray(X, dtype=float)
    rng = check_random_state(random_state)
    rows = X[rng.randint(len(X), size=n_synthetic)]
    return rows + rng.normal(size=rows.shape) * scale * X.std(axis=0)


class DistilledClassifier(ClassifierMixin, BaseEstimator):
    """A scikit-learn student trained to imitate a teacher.

    Parameters
    ----------
    teacher : object
        A scikit-learn classifier (an unfitted one is cloned and fitted on ``(X, y)``, a fitted
        one is used as it is), or anything :func:`kdistill.as_teacher` accepts; a torch teacher
        runs on the CPU, on float32 inputs of shape ``(n_samples, n_features)``. Note that
        :func:`sklearn.base.clone` (used by ``GridSearchCV`` and ``cross_val_score``) unfits a
        scikit-learn teacher; pass ``as_teacher(fitted)`` to keep it fitted through clones.
    student : scikit-learn estimator
        A classifier or regressor; see the module docstring for which mode each supports.
    mode : {"soft", "hard"}
        ``"hard"`` fits the student on the teacher's predicted labels (relabelling);
        ``"soft"`` on its probabilities, softened at ``temperature``.
    temperature : float > 0
        Softening of the teacher's probabilities in soft mode: ``softmax(log p / T)``.
        ``predict_proba`` undoes it (``q ** T``, renormalised), so it estimates the teacher's
        own probabilities.
    augment : {None, "munge", "gaussian"}
        Adds ``n_synthetic`` samples labelled by the teacher: :func:`munge`, or :func:`jitter`
        (Gaussian noise of ``GAUSSIAN_SCALE`` feature standard deviations).
    n_synthetic : int, optional
        Number of synthetic samples when ``augment`` is set; ``SYNTHETIC_PER_SAMPLE`` per
        training sample by default.
    random_state : int, RandomState or None
        Seed of the augmentation.

    Attributes
    ----------
    teacher_ : object
        The fitted teacher.
    student_ : estimator
        The fitted student.
    classes_ : ndarray
        Class labels: the teacher's ``classes`` when it knows them, else the sorted labels of ``y``.
    fidelity_ : float
        Share of training samples on which the student's label equals the teacher's.
    n_features_in_ : int
    """

    def __init__(self, teacher, student, mode="soft", temperature=1.0, augment=None, n_synthetic=None,
                 random_state=None):
        self.teacher = teacher
        self.student = student
        self.mode = mode
        self.temperature = temperature
        self.augment = augment
        self.n_synthetic = n_synthetic
        self.random_state = random_state

    def fit(self, X, y):
        """Fit the teacher if needed, label (augmented) data with it and fit the student.

        Returns
        -------
        self : DistilledClassifier
        """
        self._check_params()
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.teacher_ = self._fitted_teacher(X, y)
        adapter = as_teacher(self.teacher_)
        self.classes_ = self._classes(adapter, y)
        X_all = np.concatenate([X, self._synthetic(X)]) if self.augment else X
        logits = _teacher_logits(adapter, X_all, len(self.classes_))
        self.student_ = self._fit_student(X_all, logits)
        self.fidelity_ = float(np.mean(self.predict(X) == self.classes_[logits[:len(X)].argmax(1).numpy()]))
        return self

    def predict_proba(self, X):
        """Class probabilities of the student, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if is_classifier(self.student_):
            q = np.zeros((len(X), len(self.classes_)))
            q[:, self.student_.classes_] = self.student_.predict_proba(X)
        else:
            q = np.clip(np.asarray(self.student_.predict(X), dtype=float).reshape(len(X), -1), 0, None)
        if self.mode == "soft":
            q = q ** float(self.temperature)
        sums = q.sum(axis=1, keepdims=True)
        return np.where(sums > 0, q / np.where(sums > 0, sums, 1.0), 1.0 / len(self.classes_))

    def predict(self, X):
        """Labels from ``classes_``: the most probable class of the student."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 < t < np.inf:
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of None, 'munge', 'gaussian', got {self.augment!r}")
        n = self.n_synthetic
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"n_synthetic must be None or an integer >= 1, got {n!r}")
        student = self.student
        if not (isinstance(student, BaseEstimator) and (is_classifier(student) or is_regressor(student))):
            raise TypeError(f"student must be a scikit-learn classifier or regressor, got {type(student).__name__}")

    def _fitted_teacher(self, X, y):
        teacher = self.teacher
        if isinstance(teacher, Teacher) or not hasattr(teacher, "fit"):
            return teacher
        try:
            check_is_fitted(teacher)
            return teacher
        except NotFittedError:
            return clone(teacher).fit(X, y)

    @staticmethod
    def _classes(adapter: Teacher, y) -> np.ndarray:
        labels = np.unique(y)
        if adapter.classes is None:
            return labels
        unknown = [c for c in labels.tolist() if c not in adapter.classes]
        if unknown:
            raise ValueError(f"y holds labels {unknown} that the teacher does not know; "
                             f"its classes are {adapter.classes}")
        return np.asarray(adapter.classes)

    def _synthetic(self, X) -> np.ndarray:
        n = self.n_synthetic if self.n_synthetic is not None else SYNTHETIC_PER_SAMPLE * len(X)
        make = munge if self.augment == "munge" else jitter
        return make(X, n, random_state=self.random_state)

    def _fit_student(self, X, logits: torch.Tensor):
        k = logits.shape[1]
        student = clone(self.student)
        if self.mode == "hard":
            probs = np.eye(k)[logits.argmax(1).numpy()]
        else:
            probs = F.softmax(logits / self.temperature, dim=1).numpy()
        if is_regressor(student):
            if not get_tags(student).target_tags.multi_output:
                student = MultiOutputRegressor(student)
            return student.fit(X, probs)
        if self.mode == "hard":
            return student.fit(X, probs.argmax(1))
        if not has_fit_parameter(student, "sample_weight"):
            raise TypeError(f"mode='soft' with a classifier student needs fit(..., sample_weight=), which "
                            f"{type(student).__name__} lacks; use mode='hard' or a regressor student")
        return student.fit(np.tile(X, (k, 1)), np.repeat(np.arange(k), len(X)), sample_weight=probs.T.ravel())


def _teacher_logits(adapter: Teacher, X: np.ndarray, k: int) -> torch.Tensor:
    """The teacher's logits for ``X`` as float64 (``k`` columns expected), computed on the CPU
    in chunks of ``CHUNK`` samples."""
    with torch.inference_mode():
        logits = torch.cat([adapter.logits(x) for x in torch.tensor(X, dtype=torch.float32).split(CHUNK)])
    if logits.ndim != 2 or logits.shape[1] != k:
        raise ValueError(f"the teacher outputs shape {tuple(logits.shape)} for {len(X)} samples but there are "
                         f"{k} classes; give the teacher's classes with as_teacher(..., classes=)")
    return logits.double()
