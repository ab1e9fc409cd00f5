"""A weighted ensemble of teachers of any kind."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .base import PROB_EPS, Teacher, set_classes
from .wrap import as_teacher


class EnsembleTeacher(Teacher):
    """A weighted ensemble of teachers of any kind.

    Each member's logits are softened at its own temperature, turned into probabilities, and
    averaged with the (normalised) weights. ``logits`` returns the log of that weighted mean
    probability, ``log(max(sum_i w_i softmax(z_i / T_i), PROB_EPS))``, so a softmax of the
    ensemble's logits gives back the mean probability.

    Parameters
    ----------
    teachers : sequence
        Anything :func:`as_teacher` accepts (a callable must be wrapped first, to say its output).
    weights : sequence of float, optional
        Non-negative weights, one per teacher, not all zero; equal weights by default.
    temperatures : sequence of float, optional
        One temperature > 0 per teacher; 1 by default.
    """

    def __init__(self, teachers: Sequence, weights: Sequence[float] | None = None,
                 temperatures: Sequence[float] | None = None):
        self.members = [as_teacher(t) for t in teachers]
        n = len(self.members)
        if n == 0:
            raise ValueError("teachers must hold at least one teacher, got an empty sequence")
        self.weights = _per_member("weights", weights, n, lambda w: w >= 0, ">= 0")
        if sum(self.weights) <= 0:
            raise ValueError(f"weights must not all be zero, got {self.weights}")
        self.temperatures = _per_member("temperatures", temperatures, n, lambda t: t > 0, "> 0")
        set_classes(self, _common_classes(self.members))

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        total = sum(self.weights)
        mean = 0
        for member, w, temp in zip(self.members, self.weights, self.temperatures):
            mean = mean + (w / total) * F.softmax(member.logits(x, index) / temp, dim=1)
        return torch.log(mean.clamp_min(PROB_EPS))

    def for_dataset(self, dataset: Dataset, augmented: bool = False) -> EnsembleTeacher:
        view = copy.copy(self)
        view.members = [m.for_dataset(dataset, augmented) for m in self.members]
        return view

    def to(self, device) -> EnsembleTeacher:
        for m in self.members:
            m.to(device)
        return self


def _per_member(name: str, values, n: int, ok, allowed: str) -> list[float]:
    if values is None:
        return [1.0] * n
    values = [float(v) for v in values]
    if len(values) != n:
        raise ValueError(f"{name} must have one value per teacher ({n}), got {len(values)}")
    bad = [v for v in values if not (np.isfinite(v) and ok(v))]
    if bad:
        raise ValueError(f"{name} must be finite and {allowed}, got {values}")
    return values


def _common_classes(members: list[Teacher]) -> list | None:
    known = [m.classes for m in members if m.classes is not None]
    for other in known[1:]:
        if other != known[0]:
            raise ValueError(f"the ensemble's teachers disagree on their classes: {known[0]} vs {other}; "
                             f"every member must output the same classes in the same order")
    return known[0] if known else None
