"""Response-based distillation (Hinton et al., 2015): see :func:`kdistill.losses.kd_loss`."""

from __future__ import annotations

from torch import Tensor

from ..losses import TEMPERATURE, check_temperature, kd_loss
from .base import Method, Step, register


@register("kd")
class KD(Method):
    example = {"temperature": 2.0}

    def __init__(self, temperature: float = TEMPERATURE):
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(self, step: Step) -> Tensor:
        return kd_loss(step.logits_s, step.logits_t, self.temperature)
