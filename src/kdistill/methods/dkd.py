"""Decoupled knowledge distillation (Zhao et al., CVPR 2022): see :func:`kdistill.losses.dkd_loss`."""

from __future__ import annotations

from torch import Tensor

from ..losses import check_temperature, check_weight, dkd_loss
from .base import Method, Step, register


@register("dkd")
class DKD(Method):
    example = {"alpha": 1.0, "beta": 2.0}

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        super().__init__()
        self.alpha, self.beta = check_weight("alpha", alpha), check_weight("beta", beta)
        self.temperature = check_temperature(temperature)

    def forward(self, step: Step) -> Tensor:
        # An unlabelled sample's target class is the teacher's prediction: DKD splits the KL there.
        target = step.y.where(step.y >= 0, step.logits_t.argmax(1))
        return dkd_loss(step.logits_s, step.logits_t, target, self.alpha, self.beta, self.temperature)
