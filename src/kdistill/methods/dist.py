"""DIST (Huang et al., NeurIPS 2022): see :func:`kdistill.losses.dist_loss`; with ``standardize``,
on z-scored logits (Sun et al., CVPR 2024)."""

from __future__ import annotations

from torch import Tensor

from ..losses import check_temperature, check_weight, dist_loss
from .base import Method, Step, check_flag, register, response_logits


@register("dist")
class DIST(Method):
    family = "response, relation"
    paper = "Huang et al., NeurIPS 2022"
    example = {"temperature": 2.0, "standardize": True}

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0, standardize: bool = False):
        super().__init__()
        self.beta, self.gamma = check_weight("beta", beta), check_weight("gamma", gamma)
        self.temperature = check_temperature(temperature)
        self.standardize = check_flag("standardize", standardize)

    def forward(self, step: Step) -> Tensor:
        return dist_loss(*response_logits(step, self.standardize), self.beta, self.gamma, self.temperature)
