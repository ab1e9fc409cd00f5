"""Teachers: anything that returns logits for a batch, behind one small protocol.

Adapters cover a torch ``nn.Module``, a fitted scikit-learn classifier or pipeline with
``predict_proba``, an ONNX file (run with onnxruntime), a Python callable, and a weighted
ensemble of any mix of these. Teachers that give probabilities are turned into logits with a
clamped log, ``log(max(p, PROB_EPS))``, so that a probability of exactly 0 stays finite.

A PyTorch teacher is frozen in place: its parameters stop requiring grad, it is put in eval
mode, and its ``train()`` is overridden so that a wrapper's ``.train()`` cannot switch dropout
or batch-norm updates back on. It runs under ``torch.inference_mode()``.

Class order: a teacher knows its classes when it has ``classes_`` (scikit-learn) or is given
``classes=``. :func:`check_classes` compares them with the data's classes and raises on any
difference, including the same classes in another order: outputs are never silently permuted.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

log = logging.getLogger("kdistill")

PROB_EPS = 1e-6  # floor of probabilities before the log: log(1e-6) = -13.8
OUTPUTS = ("logits", "probabilities")


class Teacher:
    """Protocol of a teacher: ``logits(x, index)`` for a batch, plus optional class metadata.

    ``for_dataset(ds, augmented)`` returns the teacher to use on that dataset (a cached teacher
    returns a view that reads stored outputs by ``index``); the default is the teacher itself.
    ``augmented=True`` says the loop will randomly transform that dataset's batches, so outputs
    stored for its clean items do not belong to the inputs the teacher will be shown. ``live()``
    is the teacher that runs its model on every batch (needed to tap its features).
    ``classes`` is the class of each output column, in order, when known.
    """

    num_classes: int | None = None
    classes: list | None = None
    stored = False  # True when outputs are read from storage rather than computed

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def for_dataset(self, dataset: Dataset, augmented: bool = False) -> Teacher:
        return self

    def live(self) -> Teacher:
        """The teacher that actually runs its model on each batch (a cache returns what it wraps)."""
        return self

    def to(self, device) -> Teacher:
        return self


def check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return output


def set_classes(teacher: Teacher, classes) -> None:
    if classes is not None:
        teacher.classes = as_list(classes)
        teacher.num_classes = len(teacher.classes)


def as_list(classes) -> list:
    return classes.tolist() if isinstance(classes, np.ndarray) else list(classes)


def probabilities_to_logits(p: Tensor, source: str = "teacher") -> Tensor:
    """Logits ``log(max(p, PROB_EPS))`` of a batch of probability rows, after checking that
    ``p`` is 2-d, within [0, 1] and that each row sums to 1 (to 1e-3)."""
    if p.ndim != 2:
        raise ValueError(f"{source} returned probabilities of shape {tuple(p.shape)}; expected (batch, classes)")
    sums = p.sum(1)
    if not (torch.isfinite(p).all() and p.min() >= -1e-6 and p.max() <= 1 + 1e-6
            and torch.allclose(sums, torch.ones_like(sums), atol=1e-3)):
        raise ValueError(f"{source} was declared to return probabilities, but its rows are not probability "
                         f"distributions (row sums from {float(sums.min()):.4g} to {float(sums.max()):.4g}, "
                         f"values from {float(p.min()):.4g} to {float(p.max()):.4g}); pass output='logits' "
                         f"if it returns scores")
    return torch.log(p.clamp_min(PROB_EPS))


def finish_logits(out, output: str, like: Tensor, source: str, teacher: Teacher | None = None) -> Tensor:
    """Turn a teacher's raw output into float32 logits on ``like``'s device; outputs declared as
    logits that look like probabilities are named in a warning (``teacher``'s first batch is checked)."""
    out = torch.as_tensor(np.asarray(out) if not isinstance(out, Tensor) else out).float().to(like.device)
    if output == "probabilities":
        return probabilities_to_logits(out, source)
    if out.ndim != 2:
        raise ValueError(f"{source} returned logits of shape {tuple(out.shape)}; expected (batch, classes)")
    if teacher is not None and not getattr(teacher, "_checked_output", False):  # the first batch only: no
        teacher._checked_output = True  # host syncs on every training batch of a live teacher
        if looks_like_probabilities(out):
            log.warning("%s was declared to return logits, but its rows look like probabilities (non-negative, "
                        "each summing to 1); used as logits they flatten the teacher's distribution: pass "
                        "output='probabilities' (output: probabilities in an experiment file) if they are", source)
    return out


def looks_like_probabilities(out: Tensor) -> bool:
    """Whether every row of a (batch, classes) output is non-negative and sums to 1 (to 1e-3):
    probabilities, not logits (a batch of one row of logits rarely does, several never)."""
    if out.ndim != 2 or out.shape[1] < 2 or not len(out) or not torch.isfinite(out).all():
        return False
    sums = out.sum(1)
    return bool(out.min() >= 0 and torch.allclose(sums, torch.ones_like(sums), atol=1e-3))


def check_classes(teacher_classes, data_classes, where: str = "teacher") -> None:
    """Raise unless the teacher's output columns are the data's classes in the data's order.

    The teacher's classes match when they equal the data's class names (compared as strings),
    or are the class indices ``0 .. K-1`` that the data's labels hold (a teacher fitted on
    encoded labels).
    """
    t = as_list(teacher_classes)
    d = [str(c) for c in data_classes]
    if [str(c) for c in t] == d or t == list(range(len(d))):
        return
    if sorted(map(str, t)) == sorted(d):
        raise ValueError(f"the {where}'s classes are the data's classes in another order: {where} {t}, data {d}; "
                         f"outputs are not permuted silently: reorder the data's classes or the teacher's outputs")
    raise ValueError(f"the {where}'s classes {t} do not match the data's classes {d}")
