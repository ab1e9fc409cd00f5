"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017): see :func:`kdistill.losses.at_loss`.

Needs no connector: attention maps sum over channels. Several layer pairs are summed.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import at_loss
from ._features import tap_pairs
from .base import Method, Step, register


@register("at")
class AT(Method):
    family = "feature"
    paper = "Zagoruyko & Komodakis, ICLR 2017"
    example = {"student": ["features.3", "features.7"], "teacher": ["features.3", "features.7"]}

    def __init__(self, student=None, teacher=None, p: float = 2.0):
        super().__init__()
        self.student_taps, self.teacher_taps = tap_pairs(student, teacher)
        self.p = float(p)
        if not 0 < self.p < float("inf"):
            raise ValueError(f"p must be a finite number > 0, got {p!r}")

    def forward(self, step: Step) -> Tensor:
        return sum(at_loss(step.feats_s[s], step.feats_t[t], self.p)
                   for s, t in zip(self.student_taps, self.teacher_taps))
