"""Relational KD (Park et al., CVPR 2019): see :func:`kdistill.losses.rkd_loss`.

Relations are computed on the tapped embeddings (flattened), or on the logits when no layer
is named. Dimensions of student and teacher may differ: no connector is needed.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import check_weight, rkd_loss
from ._features import embeddings, tap_pairs
from .base import Method, Step, register


@register("rkd")
class RKD(Method):
    family = "relation"
    paper = "Park et al., CVPR 2019"
    example = {"student": "classifier.2", "teacher": "classifier.2"}

    def __init__(self, student=None, teacher=None, distance_weight: float = 25.0, angle_weight: float = 50.0):
        super().__init__()
        self.student_taps, self.teacher_taps = tap_pairs(student, teacher, allow_none=True)
        self.distance_weight = check_weight("distance_weight", distance_weight)
        self.angle_weight = check_weight("angle_weight", angle_weight)

    def forward(self, step: Step) -> Tensor:
        return sum(rkd_loss(s, t, self.distance_weight, self.angle_weight) for s, t in embeddings(self, step))

