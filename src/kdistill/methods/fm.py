r"""Function matching (Beyer, Zhai, Royer, Markeeva, Anil & Kolesnikov, "Knowledge distillation:
A good teacher is patient and consistent", CVPR 2022).

.. math::

    \mathcal{L}_{FM} = \frac{1}{B} \sum_{i=1}^{B} \mathrm{KL}\big(\mathrm{softmax}(z^t_i / T)
        \,\|\, \mathrm{softmax}(z^s_i / T)\big) \cdot T^2

at temperature 1 by default, with no label term: the student matches the teacher's function on
every input it is shown, labelled or not. The paper's recipe is *consistent* teaching — teacher
and student see the very same augmented (often mixup) view, which kdistill guarantees with
fixed views (``data.augment.views``) whose teacher outputs are cached — and *patient* training:
long schedules with warm-up and cosine decay. It is :func:`~kdistill.losses.kd_loss` with
``T = 1``; what makes it function matching is the data it is given.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import check_temperature, kd_loss
from .base import Method, Step, register


@register("fm")
class FM(Method):
    family = "response"
    paper = "Beyer et al., CVPR 2022"
    example = {}

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = check_temperature(temperature)

    def forward(self, step: Step) -> Tensor:
        return kd_loss(step.logits_s, step.logits_t, self.temperature)
