"""Pure distillation losses: functions of tensors only, one short function per paper.

Conventions
-----------
``_s`` is the student, ``_t`` the teacher. Every loss is a mean over the batch and returns a
scalar tensor. Probabilities are always handled in log space (``log_softmax``), never as
``log(softmax(...))``, which underflows to ``-inf`` for confident models.
"""

from .common import check_alpha, check_temperature, check_weight
from .feature import at_loss, fitnet_loss, fsp_loss, fsp_matrix, pool_to_match
from .relation import pkt_loss, rkd_loss, sp_loss
from .response import TEMPERATURE, dist_loss, dkd_loss, kd_loss

__all__ = ["TEMPERATURE", "at_loss", "check_alpha", "check_temperature", "check_weight", "dist_loss", "dkd_loss",
           "fitnet_loss", "fsp_loss", "fsp_matrix", "kd_loss", "pkt_loss", "pool_to_match", "rkd_loss", "sp_loss"]
