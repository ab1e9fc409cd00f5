"""Response-based distillation (Hinton et al., 2015): see :func:`kdistill.losses.kd_loss`; with
``standardize``, on z-scored logits (Sun et al., CVPR 2024: :func:`kdistill.losses.standardize_logits`)."""

from __future__ import annotations

from torch import Tensor

from ..losses import TEMPERATURE, check_temperature, kd_loss
from .base import Method, Step, check_flag, register, response_logits


@register("kd")
class KD(Method):
    family = "response"
    paper = "Hinton et al., 2015"
    example = {"temperature": 2.0, "standardize": True}

    def __init__(self, temperature: float = TEMPERATURE, standardize: bool = False):
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.standardize = check_flag("standardize", standardize)

    def forward(self, step: Step) -> Tensor:
        return kd_loss(*response_logits(step, self.standardize), self.temperature)
