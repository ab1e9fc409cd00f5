"""Distillation with the scikit-learn contract: :class:`DistilledClassifier`.

The teacher is any kdistill teacher (a scikit-learn classifier, fitted or not, a torch module,
an ONNX file or callable through :func:`kdistill.as_teacher`, an ensemble); the student is a
scikit-learn estimator. Which students support which mode:

=====================  =========================================  ==========================================
student                ``mode="hard"``                            ``mode="soft"``
=====================  =========================================  ==========================================
classifier             fitted on the teacher's labels             rows replicated once per likely class, the
                                                                  teacher's probabilities as sample weights
                                                                  (needs ``fit(..., sample_weight=)``; see
                                                                  :func:`fit_on_teacher`)
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
from sklearn.utils import get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, has_fit_parameter, validate_data

from .data.synthetic import MAKERS
from .teachers import Teacher, as_teacher

MODES = ("hard", "soft")
AUGMENTS = (None, "munge", "gibbs", "gaussian")
SYNTHETIC_PER_SAMPLE = 5  # n_synthetic=None: this many synthetic samples per training sample
CHUNK = 4096  # samples per call of the teacher
MIN_WEIGHT = 1e-3  # soft targets: (row, class) pairs of smaller probability are dropped from the replication


def soft_targets(logits, *, mode: str = "soft", temperature: float = 1.0, labels=None, alpha: float = 1.0):
    """The targets a scikit-learn student learns: the teacher's probabilities at ``temperature``
    (``mode="soft"``) or its one-hot labels (``"hard"``), mixed for labelled rows with the true
    labels: ``alpha * teacher + (1 - alpha) * onehot(y)``; ``labels`` of -1 (unlabelled rows)
    keep the teacher's alone."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    k = logits.shape[1]
    if mode == "hard":
        probs = np.eye(k)[logits.argmax(1).numpy()]
    else:
        probs = F.softmax(logits / temperature, dim=1).numpy()
    if labels is not None and alpha < 1:
        labels = np.asarray(labels)
        own = labels >= 0
        probs[own] = alpha * probs[own] + (1 - alpha) * np.eye(k)[labels[own]]
    return probs


def fit_on_teacher(student, X, probs: np.ndarray):
    """Fit a clone of the scikit-learn ``student`` on ``X`` with the target distributions
    ``probs`` (rows of class probabilities over class indices ``0 .. k - 1``); returns the fitted student.

    A regressor learns the probabilities (multi-output; a single-output one is wrapped in
    ``MultiOutputRegressor``). A classifier learns them as soft labels: each row is replicated
    once per class it gives a probability of at least ``MIN_WEIGHT``, weighted by that
    probability (renormalized over the kept classes, so every row weighs 1), which makes a
    log-loss student (logistic regression, boosted trees) minimise the
    cross-entropy to the targets and a tree's leaves average them. One-hot targets need no
    replication: the student is fitted on the labels.
    """
    student = clone(student)
    if is_regressor(student):
        if not get_tags(student).target_tags.multi_output:
            student = MultiOutputRegressor(student)
        return student.fit(X, probs)
    if np.all((probs == 0) | (probs == 1)):
        return student.fit(X, probs.argmax(1))
    if not has_fit_parameter(student, "sample_weight"):
        raise TypeError(f"mode='soft' with a classifier student needs fit(..., sample_weight=), which "
                        f"{type(student).__name__} lacks; use mode='hard' or a regressor student")
    kept = np.where(probs >= MIN_WEIGHT, probs, 0.0)
    kept /= kept.sum(axis=1, keepdims=True)  # each row still weighs 1 in all
    rows, classes = np.nonzero(kept)
    return student.fit(X[rows], classes, sample_weight=kept[rows, classes])


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
    alpha : float in [0, 1]
        Weight of the teacher in the targets of the training rows: ``alpha * teacher + (1 -
        alpha) * onehot(y)`` (the alpha convention of the whole toolkit); synthetic rows always
        get the teacher's alone. 1 (the default) learns from the teacher only.
    augment : {None, "munge", "gibbs", "gaussian"}
        Adds ``n_synthetic`` samples labelled by the teacher, made by
        :func:`~kdistill.data.synthetic.munge`, :func:`~kdistill.data.synthetic.gibbs` or
        :func:`~kdistill.data.synthetic.jitter` (all features treated as numeric).
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

    def __init__(self, teacher, student, mode="soft", temperature=1.0, alpha=1.0, augment=None, n_synthetic=None,
                 random_state=None):
        self.teacher = teacher
        self.student = student
        self.mode = mode
        self.temperature = temperature
        self.alpha = alpha
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
        position = {c: i for i, c in enumerate(self.classes_.tolist())}
        own = [position[c] for c in y.tolist()] if self.alpha < 1 else [-1] * len(y)
        labels = np.array(own + [-1] * (len(X_all) - len(X)))
        self.student_ = fit_on_teacher(self.student, X_all, soft_targets(
            logits, mode=self.mode, temperature=self.temperature, labels=labels, alpha=self.alpha))
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

    def wrap(self, student, classes, n_features: int) -> DistilledClassifier:
        """This classifier, fitted: around ``student``, a regressor already fitted on the
        teacher's probabilities over ``classes`` (the teacher is not kept)."""
        self.student_, self.classes_, self.n_features_in_ = student, np.asarray(classes), n_features
        self.teacher_ = None
        return self

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 < t < np.inf:
            raise ValueError(f"temperature must be a finite number > 0, got {t!r}")
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0 <= a <= 1:
            raise ValueError(f"alpha must be a number in [0, 1] (the teacher's weight in the targets), got {a!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of None, 'munge', 'gibbs', 'gaussian', got {self.augment!r}")
        n = self.n_synthetic
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"n_synthetic must be None or an integer >= 1, got {n!r}")
        student = self.student
        if not (hasattr(student, "get_params") and hasattr(student, "fit")  # CatBoost is no BaseEstimator
                and (is_classifier(student) or is_regressor(student))):
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
        return MAKERS[self.augment](X, n, random_state=self.random_state)


def _teacher_logits(adapter: Teacher, X: np.ndarray, k: int) -> torch.Tensor:
    """The teacher's logits for ``X`` as float64 (``k`` columns expected), computed on the CPU
    in chunks of ``CHUNK`` samples."""
    with torch.inference_mode():
        logits = torch.cat([adapter.logits(x) for x in torch.tensor(X, dtype=torch.float32).split(CHUNK)])
    if logits.ndim != 2 or logits.shape[1] != k:
        raise ValueError(f"the teacher outputs shape {tuple(logits.shape)} for {len(X)} samples but there are "
                         f"{k} classes; give the teacher's classes with as_teacher(..., classes=)")
    return logits.double()
