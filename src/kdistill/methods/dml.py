r"""Deep mutual learning (Zhang, Xiang, Hospedales & Lu, "Deep Mutual Learning", CVPR 2018).

The peers' logits are read from student taps (``peers``: module names whose outputs are the
logits of each peer, e.g. the members of :class:`kdistill.modes.Cohort`). Each peer ``k`` gets

.. math::

    \mathcal{L}_k = \mathrm{CE}(z_k, y) + \frac{1}{K - 1} \sum_{l \ne k} T^2\,
        \mathrm{KL}(p_l \| p_k)

with the other peers' predictions :math:`p_l` held fixed (detached); the term is the sum of
the :math:`\mathcal{L}_k`, so each peer's gradient is exactly that of its own loss. The paper
updates the peers one after another within a step; here all are updated together from the
same predictions (as most implementations do), which keeps one loop and one optimizer.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import check_temperature, kd_loss
from .base import Method, Step, cross_entropy, register


@register("dml")
class DML(Method):
    family = "online"
    paper = "Zhang et al., CVPR 2018"
    needs_teacher = False
    example = {"peers": ["peers.0", "peers.1"]}
    example_student = "peers"

    def __init__(self, peers=("peers.0", "peers.1"), temperature: float = 1.0):
        super().__init__()
        peers = [peers] if isinstance(peers, str) else list(peers)
        if len(peers) < 2 or not all(isinstance(p, str) and p for p in peers):
            raise ValueError(f"peers must list at least 2 module names whose outputs are logits, got {peers!r}")
        self.student_taps = tuple(peers)
        self.temperature = check_temperature(temperature)

    def forward(self, step: Step) -> Tensor:
        logits = [step.feats_s[name] for name in self.student_taps]
        total = 0.0
        for k, z in enumerate(logits):
            mimic = sum(kd_loss(z, other.detach(), self.temperature) for j, other in enumerate(logits) if j != k)
            total = total + cross_entropy(z, step) + mimic / (len(logits) - 1)
        return total
