"""Out-of-fold teacher outputs: a teacher never grades its own homework.

A forest or a boosted ensemble fits its training rows almost perfectly, so its probabilities on
them are the labels again and carry no dark knowledge. When kdistill trains the teacher, the
labelled training rows are instead served *out-of-fold* outputs: the train split is cut into
K stratified folds, a copy of the teacher is fitted on the other K - 1 folds, and each row gets
the outputs of the copy that never saw it (cross-fitting). Every other row (validation, test,
unlabelled or synthetic inputs) gets the full teacher's outputs.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from torch import Tensor
from torch.utils.data import Dataset

from ..data.fingerprint import hash_tensor
from .base import Teacher
from .cache import teacher_fingerprint
from .wrap import as_teacher

log = logging.getLogger("kdistill")

FOLDS = 5  # default K when kdistill fits a scikit-learn teacher on a table


def check_folds(folds) -> int:
    """``folds`` as an int: 0 (no cross-fitting) or at least 2."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0 or folds == 1:
        raise ValueError(f"teacher folds must be 0 (use the full teacher's outputs on its training rows) or an "
                         f"integer >= 2 (K-fold out-of-fold outputs), got {folds!r}")
    return folds


def cross_fit(estimator, x: np.ndarray, y: np.ndarray, folds: int, seed: int, num_classes: int) -> Tensor:
    """Out-of-fold logits of every row of ``(x, y)``: ``folds`` clones of the scikit-learn
    ``estimator`` (unfitted), each fitted on the other folds and run on its own. Class columns
    are the indices ``0 .. num_classes - 1`` (a class missing from a fold's training part gets
    probability 0 there)."""
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ValueError(f"teacher folds = {folds} needs at least {folds} training rows of every class, but the "
                         f"rarest class has {counts.min()}; lower teacher folds or set it to 0")
    out = torch.empty((len(y), num_classes))
    for part, (fit_rows, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)):
        model = clone(estimator)
        params = model.get_params()  # a wrapper's (NativeCategoricals) booster seeds as estimator__random_state
        key = next((k for k in ("random_state", "estimator__random_state") if k in params), None)
        if key is not None:
            model.set_params(**{key: seed + part})
        model.fit(x[fit_rows], y[fit_rows])
        adapter = as_teacher(model)
        adapter.classes, adapter.num_classes = None, None  # columns placed by class index below
        z = torch.full((len(held), num_classes), float(np.log(1e-6)))
        z[:, torch.as_tensor(np.asarray(model.classes_).astype(int))] = adapter.logits(
            torch.as_tensor(x[held], dtype=torch.float32))
        out[torch.as_tensor(held)] = z
    return out


class OutOfFoldTeacher(Teacher):
    """``teacher`` (the one fitted on all training rows), serving ``oof`` logits instead on the
    labelled training rows ``train`` (rows ``0 .. len(train) - 1`` of a training set whose first
    rows are ``train``, such as ``train`` followed by unlabelled inputs).

    The training rows are recognised by content, not identity: a dataset's first ``len(train)``
    inputs must equal ``train``'s exactly. Any other dataset gets the full teacher.
    """

    def __init__(self, teacher, train: Dataset, oof: Tensor, folds: int):
        self.teacher, self.train_x, self.oof, self.folds = as_teacher(teacher), train.x, oof, folds
        self.num_classes, self.classes = self.teacher.num_classes, self.teacher.classes

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        return self.teacher.logits(x, index)

    def to(self, device) -> OutOfFoldTeacher:
        self.teacher.to(device)
        return self

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"oof\n{self.folds}\n{teacher_fingerprint(self.teacher)}".encode())
        hash_tensor(h, self.oof)
        return h.hexdigest()

    def for_dataset(self, dataset: Dataset, augmented: bool = False) -> Teacher:
        x = getattr(dataset, "x", None)
        n = len(self.train_x)
        if augmented or x is None or len(x) < n or not torch.equal(x[:n], self.train_x):
            return self.teacher.for_dataset(dataset, augmented)
        return _Patched(self.teacher, self.oof)


class _Patched(Teacher):
    """The full teacher, with rows whose index is below ``len(oof)`` served from ``oof``."""

    def __init__(self, teacher: Teacher, oof: Tensor):
        self.teacher, self.oof = teacher, oof
        self.num_classes, self.classes = teacher.num_classes, teacher.classes

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        if index is None:
            raise ValueError("out-of-fold teacher outputs are read by dataset index, but index=None was given")
        index = index.cpu()
        own = index < len(self.oof)
        if bool(own.all()):
            return self.oof[index].to(x.device)
        z = self.teacher.logits(x, index).clone()
        if bool(own.any()):
            z[own.to(z.device)] = self.oof[index[own]].to(z.device, z.dtype)
        return z
