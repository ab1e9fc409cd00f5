"""Flow of solution procedure (Yim et al., CVPR 2017): see :func:`kdistill.losses.fsp_loss`.

``student`` and ``teacher`` list two or more layers each; consecutive layers form the pairs
whose FSP matrices are matched (list the first and last layer of each stage, as the paper
does). Where a student layer has another channel count than its teacher layer, a 1x1 convolution
(made from the dry run, trained with the student) maps it; the paper needs equal widths.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..losses import fsp_loss
from ._features import connector, tap_pairs
from .base import Method, Step, register


@register("fsp")
class FSP(Method):
    family = "feature"
    paper = "Yim et al., CVPR 2017"
    example = {"student": ["features.3", "features.7"], "teacher": ["features.3", "features.7"]}  # connectors

    def __init__(self, student=None, teacher=None):
        super().__init__()
        self.student_taps, self.teacher_taps = tap_pairs(student, teacher)
        if len(self.student_taps) < 2:
            raise ValueError(f"fsp needs at least 2 layers in student and teacher (consecutive layers are "
                             f"paired), got {list(self.student_taps)}")
        self.connectors = nn.ModuleList()

    def setup(self, step: Step) -> None:
        self.connectors = nn.ModuleList(
            nn.Identity() if step.feats_s[s].shape[1] == step.feats_t[t].shape[1]
            else connector(step.feats_s[s], step.feats_t[t].shape[1])
            for s, t in zip(self.student_taps, self.teacher_taps))

    def forward(self, step: Step) -> Tensor:
        feats_s = [conn(step.feats_s[s]) for conn, s in zip(self.connectors, self.student_taps)]
        feats_t = [step.feats_t[t] for t in self.teacher_taps]
        return fsp_loss(zip(feats_s, feats_s[1:]), zip(feats_t, feats_t[1:]))
