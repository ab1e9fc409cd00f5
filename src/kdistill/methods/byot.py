r"""Deep-to-shallow self-distillation (Zhang, Song, Gao, Chen, Bao & Ma, "Be Your Own Teacher:
Improve the Performance of Convolutional Neural Networks via Self Distillation", ICCV 2019).

Auxiliary classifier heads on shallower layers (module names in ``heads``, whose outputs are
logits, e.g. those of :class:`kdistill.modes.WithHeads`) learn from the labels and from the
network's own final output :math:`z_C`:

.. math::

    \mathcal{L} = \mathrm{CE}(z_C, y) + \sum_i \big[(1 - \alpha)\,\mathrm{CE}(z_i, y)
        + \alpha\, T^2\, \mathrm{KL}(p_C \| p_i)\big]

with :math:`p_C` held fixed (detached) so that the heads follow the final output and not the
reverse. Defaults: alpha 0.3, T 3.
The paper's third term, an L2 hint from the deepest features to each head's bottleneck
features, is left out: our heads have no bottleneck layers.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import check_alpha, check_temperature, kd_loss
from .base import Method, Step, cross_entropy, register


@register("byot")
class BYOT(Method):
    family = "self"
    paper = "Zhang et al., ICCV 2019"
    needs_teacher = False
    example = {"heads": ["heads.0", "heads.1"]}
    example_student = "heads"

    def __init__(self, heads=("heads.0",), alpha: float = 0.3, temperature: float = 3.0):
        super().__init__()
        heads = [heads] if isinstance(heads, str) else list(heads)
        if not heads or not all(isinstance(h, str) and h for h in heads):
            raise ValueError(f"heads must list at least 1 module name whose output is logits, got {heads!r}")
        self.student_taps = tuple(heads)
        self.alpha, self.temperature = check_alpha(alpha), check_temperature(temperature)

    def forward(self, step: Step) -> Tensor:
        final = step.logits_s.detach()
        total = cross_entropy(step.logits_s, step)
        for name in self.student_taps:
            z = step.feats_s[name]
            total = total + (1 - self.alpha) * cross_entropy(z, step) \
                + self.alpha * kd_loss(z, final, self.temperature)
        return total
