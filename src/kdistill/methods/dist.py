"""DIST (Huang et al., NeurIPS 2022): see :func:`kdistill.losses.dist_loss`."""

from __future__ import annotations

from torch import Tensor

from ..losses import check_temperature, check_weight, dist_loss
from .base import Method, Step, register


@register("dist")
class DIST(Method):
    example = {"temperature": 2.0}

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0):
        super().__init__()
        self.beta, self.gamma = check_weight("beta", beta), check_weight("gamma", gamma)
        self.temperature = check_temperature(temperature)

    def forward(self, step: Step) -> Tensor:
        return dist_loss(step.logits_s, step.logits_t, self.beta, self.gamma, self.temperature)
