"""Pure distillation losses: functions of tensors only, one short function per paper.

Conventions
-----------
``_s`` is the student, ``_t`` the teacher. Every loss is a mean over the batch and returns a
scalar tensor. Probabilities are always handled in log space (``log_softmax``), never as
``log(softmax(...))``, which underflows to ``-inf`` for confident models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise naming the value and what is allowed."""
    t = float(temperature)
    if not t > 0 or t == float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float, or raise naming the value and what is allowed."""
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (0 = labels only, 1 = teacher only), got {alpha!r}")
    return a


def kd_loss(logits_s: Tensor, logits_t: Tensor, temperature: float = 4.0) -> Tensor:
    r"""Response-based knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge
    in a Neural Network", NIPS Deep Learning Workshop, 2015).

    .. math::

        \mathcal{L}_{KD} = T^2 \cdot \frac{1}{B} \sum_{i=1}^{B}
            \mathrm{KL}\big(\mathrm{softmax}(z^t_i / T) \,\|\, \mathrm{softmax}(z^s_i / T)\big)

    The KL divergence is summed over classes and averaged over the batch (PyTorch's
    ``reduction='batchmean'``; ``'mean'`` would also divide by the number of classes). The
    factor :math:`T^2` keeps the gradient's magnitude independent of the temperature, as the
    paper prescribes, so that the weight between this term and the cross-entropy on labels
    need not be retuned when ``T`` changes.

    Parameters
    ----------
    logits_s, logits_t : Tensor of shape (batch, classes)
        Raw scores of the student and the teacher. Gradients flow only through ``logits_s``.
    temperature : float
        Softening temperature ``T > 0``.

    Returns
    -------
    Tensor
        Scalar loss; zero when the two logits are equal.
    """
    t = check_temperature(temperature)
    if logits_s.shape != logits_t.shape:
        raise ValueError(
            f"student logits have shape {tuple(logits_s.shape)} but teacher logits have shape "
            f"{tuple(logits_t.shape)}; both must be (batch, classes) with the same classes"
        )
    log_p_s = F.log_softmax(logits_s.float() / t, dim=-1)
    log_p_t = F.log_softmax(logits_t.float() / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)
