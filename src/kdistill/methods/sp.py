"""Similarity-preserving KD (Tung & Mori, ICCV 2019): see :func:`kdistill.losses.sp_loss`.

Compares batch similarity matrices of the tapped layers (or of the logits when no layer is
named); shapes of student and teacher features may differ.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import sp_loss
from ._features import embeddings, tap_pairs
from .base import Method, Step, register


@register("sp")
class SP(Method):
    family = "relation"
    paper = "Tung & Mori, ICCV 2019"
    example = {"student": "features.7", "teacher": "features.11"}

    def __init__(self, student=None, teacher=None):
        super().__init__()
        self.student_taps, self.teacher_taps = tap_pairs(student, teacher, allow_none=True)

    def forward(self, step: Step) -> Tensor:
        return sum(sp_loss(s, t) for s, t in embeddings(self, step))
