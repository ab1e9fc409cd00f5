"""Decoupled knowledge distillation (Zhao et al., CVPR 2022): see :func:`kdistill.losses.dkd_loss`;
with ``standardize``, on z-scored logits (Sun et al., CVPR 2024)."""

from __future__ import annotations

from torch import Tensor

from ..losses import check_temperature, check_weight, dkd_loss
from .base import Method, Step, check_flag, register, response_logits


@register("dkd")
class DKD(Method):
    family = "response"
    paper = "Zhao et al., CVPR 2022"
    example = {"alpha": 1.0, "beta": 2.0, "standardize": True}

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0, standardize: bool = False):
        super().__init__()
        self.alpha, self.beta = check_weight("alpha", alpha), check_weight("beta", beta)
        self.temperature = check_temperature(temperature)
        self.standardize = check_flag("standardize", standardize)

    def forward(self, step: Step) -> Tensor:
        # An unlabelled sample's target class is the teacher's prediction: DKD splits the KL there.
        target = step.y.where(step.y >= 0, step.logits_t.argmax(1))
        logits_s, logits_t = response_logits(step, self.standardize)
        return dkd_loss(logits_s, logits_t, target, self.alpha, self.beta, self.temperature)
