"""Response-based losses: on the logits (KD, DKD, DIST)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import _MASK, _check_logits, _kl_rows, check_temperature, check_weight

TEMPERATURE = 4.0  # the default of KD (and of kdistill.distill): Hinton et al. use 1 to 20
STD_EPS = 1e-7  # keeps a row of equal logits finite (the authors' code adds 1e-7 to the std)


def standardize_logits(logits: Tensor, eps: float = STD_EPS) -> Tensor:
    r"""Z-score logit standardization (Sun, Ren, Li, Wang & Cao, "Logit Standardization in
    Knowledge Distillation", CVPR 2024): each sample's logits minus their mean, divided by their
    standard deviation over the classes,

    .. math::

        \mathcal{Z}(z) = \frac{z - \bar z}{\sigma(z)}, \quad
        \bar z = \frac{1}{C} \sum_c z_c, \quad
        \sigma(z) = \sqrt{\frac{1}{C} \sum_c (z_c - \bar z)^2}

    applied to the student's and the teacher's logits separately, *before* the temperature: the
    paper's loss is the usual KD on :math:`\mathcal{Z}(z) / T`, still scaled by :math:`T^2`. The
    student then matches the teacher's logit *relations* rather than their range, which a much
    smaller student may be unable to reach. The paper's :math:`\sigma` divides by :math:`C`, as
    here; the authors' code uses ``Tensor.std`` (dividing by :math:`C - 1`) plus ``1e-7``, i.e.
    the same KL at a temperature :math:`\sqrt{C / (C - 1)}` times larger (with the :math:`T^2`
    factor of the temperature given). The divisor here is :math:`\sqrt{\sigma^2 + \epsilon^2}`, so that
    a row of equal logits stays finite, and so does its gradient (it becomes zeros).
    """
    z = logits.float()
    centered = z - z.mean(dim=-1, keepdim=True)
    return centered / (centered.pow(2).mean(dim=-1, keepdim=True) + eps * eps).sqrt()


def kd_loss(logits_s: Tensor, logits_t: Tensor, temperature: float = TEMPERATURE) -> Tensor:
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


def dkd_loss(logits_s: Tensor, logits_t: Tensor, labels: Tensor, alpha: float = 1.0, beta: float = 8.0,
             temperature: float = 4.0) -> Tensor:
    r"""Decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge
    Distillation", CVPR 2022).

    With :math:`p = \mathrm{softmax}(z / T)` and :math:`y` the label, the binary distribution
    :math:`b = [p_y, 1 - p_y]` and the distribution over the other classes
    :math:`\hat p_j = p_j / (1 - p_y), j \ne y`:

    .. math::

        \mathrm{TCKD} = \mathrm{KL}(b^t \| b^s), \quad
        \mathrm{NCKD} = \mathrm{KL}(\hat p^t \| \hat p^s), \quad
        \mathcal{L}_{DKD} = T^2 (\alpha \cdot \mathrm{TCKD} + \beta \cdot \mathrm{NCKD})

    each KL summed over classes and averaged over the batch. Classic KD decomposes as
    :math:`\mathrm{KD} = \mathrm{TCKD} + (1 - p^t_y)\,\mathrm{NCKD}`. The paper's formulas omit
    :math:`T^2`; the authors' code (mdistiller) multiplies both terms by it, as done here.
    Unlike that code, which takes ``log`` of probabilities, everything stays in log space:
    :math:`\log(1 - p_y)` is a ``logsumexp`` over the other classes and the target class is
    masked with a large negative logit, so the loss stays finite for two classes and for
    teachers that put all their mass on one class.

    Parameters
    ----------
    logits_s, logits_t : Tensor of shape (batch, classes)
        Raw scores; at least two classes.
    labels : Tensor of shape (batch,)
        Class indices.
    alpha, beta : float
        Weights of TCKD and NCKD (paper defaults 1 and 8 on CIFAR-100).
    temperature : float
        Softening temperature ``T > 0``.
    """
    t = check_temperature(temperature)
    alpha, beta = check_weight("alpha", alpha), check_weight("beta", beta)
    _check_logits(logits_s, logits_t)
    if logits_s.shape[1] < 2:
        raise ValueError(f"dkd_loss needs at least 2 classes, got logits of shape {tuple(logits_s.shape)}")
    if labels.shape != logits_s.shape[:1]:
        raise ValueError(f"labels must have shape ({logits_s.shape[0]},), got {tuple(labels.shape)}")
    target = F.one_hot(labels, logits_s.shape[1]).bool()
    tckd = _kl_rows(_binary_log_probs(logits_s, target, t), _binary_log_probs(logits_t, target, t))
    nckd = _kl_rows(_non_target_log_probs(logits_s, target, t), _non_target_log_probs(logits_t, target, t))
    return (alpha * tckd + beta * nckd) * (t * t)




def _binary_log_probs(logits: Tensor, target: Tensor, t: float) -> Tensor:
    """``[log p_y, log(1 - p_y)]`` per row, both computed in log space."""
    log_p = F.log_softmax(logits.float() / t, dim=1)
    log_target = log_p.masked_fill(~target, _MASK).logsumexp(dim=1)
    log_rest = log_p.masked_fill(target, _MASK).logsumexp(dim=1)
    return torch.stack([log_target, log_rest], dim=1)


def _non_target_log_probs(logits: Tensor, target: Tensor, t: float) -> Tensor:
    """Log-probabilities over the non-target classes (target logit masked out)."""
    return F.log_softmax(logits.float().masked_fill(target, _MASK) / t, dim=1)


def _pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(logits_s: Tensor, logits_t: Tensor, beta: float = 1.0, gamma: float = 1.0,
              temperature: float = 1.0) -> Tensor:
    r"""DIST: distillation from a stronger teacher (Huang, You, Wang, Qian & Xu, "Knowledge
    Distillation from A Stronger Teacher", NeurIPS 2022).

    With :math:`Y = \mathrm{softmax}(Z / T)` row-wise (batch :math:`B`, classes :math:`C`) and
    :math:`\rho_p` the Pearson correlation:

    .. math::

        \mathcal{L}_{inter} = \frac{1}{B} \sum_i \big(1 - \rho_p(Y^s_{i,:}, Y^t_{i,:})\big), \quad
        \mathcal{L}_{intra} = \frac{1}{C} \sum_j \big(1 - \rho_p(Y^s_{:,j}, Y^t_{:,j})\big)

    .. math::

        \mathcal{L}_{DIST} = T^2 (\beta \mathcal{L}_{inter} + \gamma \mathcal{L}_{intra})

    as in the paper and the authors' code (hunto/DIST_KD); a small ``eps`` (1e-8) in the
    denominator keeps constant rows finite, as in that code.

    Parameters
    ----------
    logits_s, logits_t : Tensor of shape (batch, classes)
        Raw scores of the student and the teacher.
    beta, gamma : float
        Weights of the inter-class (per sample) and intra-class (per class) terms.
    temperature : float
        Softening temperature ``T > 0``.
    """
    t = check_temperature(temperature)
    beta, gamma = check_weight("beta", beta), check_weight("gamma", gamma)
    _check_logits(logits_s, logits_t)
    y_s = F.softmax(logits_s.float() / t, dim=1)
    y_t = F.softmax(logits_t.float() / t, dim=1)
    inter = 1 - _pearson_rows(y_s, y_t).mean()
    intra = 1 - _pearson_rows(y_s.T, y_t.T).mean()
    return (beta * inter + gamma * intra) * (t * t)
