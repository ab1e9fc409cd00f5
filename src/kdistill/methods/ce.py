"""Cross-entropy on the true labels: the student-alone objective and the supervised part of KD."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .base import Method, Step, register


@register("ce")
class CrossEntropy(Method):
    needs_teacher = False

    def forward(self, step: Step) -> Tensor:
        return F.cross_entropy(step.logits_s, step.y)  # the engine gives float32 logits
