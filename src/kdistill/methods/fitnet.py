"""FitNets hints (Romero et al., ICLR 2015): see :func:`kdistill.losses.fitnet_loss`.

Each student layer goes through a connector (1x1 conv or linear, made from the dry run) to
the teacher layer's channels; if spatial sizes differ the larger map is average-pooled.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..losses import fitnet_loss, pool_to_match
from ._features import connector, tap_pairs
from .base import Method, Step, register


@register("fitnet")
class FitNet(Method):
    family = "feature"
    paper = "Romero et al., ICLR 2015"
    example = {"student": "features.3", "teacher": "features.7"}  # 4x4 vs 2x2 maps: pooled

    def __init__(self, student=None, teacher=None):
        super().__init__()
        self.student_taps, self.teacher_taps = tap_pairs(student, teacher)
        self.connectors = nn.ModuleList()

    def setup(self, step: Step) -> None:
        self.connectors = nn.ModuleList(
            connector(step.feats_s[s], step.feats_t[t].shape[1]) for s, t in zip(self.student_taps, self.teacher_taps))

    def forward(self, step: Step) -> Tensor:
        total = 0.0
        for conn, s, t in zip(self.connectors, self.student_taps, self.teacher_taps):
            feat_s, feat_t = conn(step.feats_s[s]), step.feats_t[t]
            if feat_s.ndim == 4:
                feat_s, feat_t = pool_to_match(feat_s, feat_t)
            total = total + fitnet_loss(feat_s, feat_t)
        return total
