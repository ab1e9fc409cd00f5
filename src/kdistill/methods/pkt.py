"""Probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018): see
:func:`kdistill.losses.pkt_loss`. Works on the tapped embeddings, or the logits by default."""

from __future__ import annotations

from torch import Tensor

from ..losses import pkt_loss
from ._features import embeddings, tap_pairs
from .base import Method, Step, register


@register("pkt")
class PKT(Method):
    family = "relation"
    paper = "Passalis & Tefas, ECCV 2018"
    example = {}  # on the logits

    def __init__(self, student=None, teacher=None):
        super().__init__()
        self.student_taps, self.teacher_taps = tap_pairs(student, teacher, allow_none=True)

    def forward(self, step: Step) -> Tensor:
        return sum(pkt_loss(s, t) for s, t in embeddings(self, step))
