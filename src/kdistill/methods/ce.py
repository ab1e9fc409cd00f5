"""Cross-entropy on the true labels: the student-alone objective and the supervised part of KD.

Averaged over the batch's labelled samples (unlabelled ones have no label to learn); on views
that mix two samples, the labels are mixed in the same proportion.
"""

from __future__ import annotations

from torch import Tensor

from .base import Method, Step, cross_entropy, register


@register("ce")
class CrossEntropy(Method):
    family = "labels"
    paper = ""
    needs_teacher = False

    def forward(self, step: Step) -> Tensor:
        return cross_entropy(step.logits_s, step)
