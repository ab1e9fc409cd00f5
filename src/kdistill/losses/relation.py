"""Relation-based losses: on how samples of a batch relate to each other (RKD, SP, PKT)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import _MASK, _kl_rows, check_weight


def _pairwise_distances(emb: Tensor) -> Tensor:
    # Squared distances from the Gram matrix; clamped before sqrt, whose gradient at 0 is inf.
    sq = emb.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * emb @ emb.T).clamp_min(1e-12)
    return d2.sqrt()


def _angles(emb: Tensor) -> Tensor:
    """``cos`` of the angle at ``j`` of triangle ``(i, j, k)``, shape ``(B, B, B)``, indexed [j, i, k]."""
    e = F.normalize(emb[None, :, :] - emb[:, None, :], dim=2)  # e[j, i] = unit(emb_i - emb_j)
    return e @ e.transpose(1, 2)


def rkd_loss(emb_s: Tensor, emb_t: Tensor, distance_weight: float = 25.0, angle_weight: float = 50.0) -> Tensor:
    r"""Relational knowledge distillation (Park, Kim, Lu & Cho, "Relational Knowledge
    Distillation", CVPR 2019).

    .. math::

        \psi_D(i, j) = \frac{\lVert e_i - e_j \rVert_2}{\mu}, \quad
        \mu = \mathrm{mean}_{i \ne j} \lVert e_i - e_j \rVert_2, \quad
        \psi_A(i, j, k) = \Big\langle \frac{e_i - e_j}{\lVert e_i - e_j \rVert},
            \frac{e_k - e_j}{\lVert e_k - e_j \rVert} \Big\rangle

    .. math::

        \mathcal{L}_{RKD} = \lambda_D \, \mathrm{mean}_{i \ne j}\, \ell_\delta(\psi^s_D, \psi^t_D)
            + \lambda_A \, \mathrm{mean}_{i, j, k\ \mathrm{distinct}}\, \ell_\delta(\psi^s_A, \psi^t_A)

    with :math:`\ell_\delta` the Huber loss (:math:`\delta = 1`). The paper sums over pairs and
    triplets; the authors' code averages over all :math:`B^2` and :math:`B^3` entries,
    including the degenerate ones with repeated indices (always 0). Averaging over the
    distinct ones only keeps the paper's weights (25, 50) meaningful for any batch size.
    Both terms are invariant to the scale of either embedding.

    Parameters
    ----------
    emb_s, emb_t : Tensor of shape (batch, ...)
        Embeddings, flattened per sample; dimensions may differ. At least 3 samples.
    distance_weight, angle_weight : float
        :math:`\lambda_D` and :math:`\lambda_A` (the paper's 25 and 50).
    """
    lam_d = check_weight("distance_weight", distance_weight)
    lam_a = check_weight("angle_weight", angle_weight)
    s, t = _flat_pair("rkd_loss", emb_s, emb_t)
    n = s.shape[0]
    if n < 3:
        raise ValueError(f"rkd_loss needs a batch of at least 3 samples (angles need triplets), got {n}")
    off = 1.0 - torch.eye(n, device=s.device)
    d_s, d_t = _pairwise_distances(s) * off, _pairwise_distances(t) * off
    d_s, d_t = d_s / (d_s.sum() / (n * (n - 1))), d_t / (d_t.sum() / (n * (n - 1)))
    loss_d = F.huber_loss(d_s, d_t, delta=1.0, reduction="sum") / (n * (n - 1))
    # Triplets with a repeated index give equal angles (0 or 1) for both: they add exactly 0.
    loss_a = F.huber_loss(_angles(s), _angles(t), delta=1.0, reduction="sum") / (n * (n - 1) * (n - 2))
    return lam_d * loss_d + lam_a * loss_a


def _flat_pair(name: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if a.ndim < 2 or b.ndim < 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"{name} needs (batch, ...) tensors with the same batch size, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return a.float().flatten(1), b.float().flatten(1)


def sp_loss(feat_s: Tensor, feat_t: Tensor) -> Tensor:
    r"""Similarity-preserving distillation (Tung & Mori, "Similarity-Preserving Knowledge
    Distillation", ICCV 2019).

    With :math:`Q` the features reshaped to ``(B, -1)``, :math:`\tilde G = Q Q^\top` and
    :math:`G` its rows L2-normalized:

    .. math::

        \mathcal{L}_{SP} = \frac{1}{B^2} \lVert G^t - G^s \rVert_F^2

    as in the paper and the authors' code (one pair of layers; sum several with several terms).

    Parameters
    ----------
    feat_s, feat_t : Tensor of shape (batch, ...)
        Features of any shapes; only the batch size must match.
    """
    s, t = _flat_pair("sp_loss", feat_s, feat_t)
    g_s, g_t = F.normalize(s @ s.T, dim=1), F.normalize(t @ t.T, dim=1)
    return (g_t - g_s).pow(2).sum() / s.shape[0] ** 2


def _pkt_log_probs(emb: Tensor, eps: float) -> Tensor:
    """Log conditional probabilities ``log p(j | i)`` from the cosine kernel, diagonal excluded."""
    e = F.normalize(emb, dim=1)
    kernel = ((e @ e.T + 1) / 2).clamp_min(eps)
    log_k = kernel.log().masked_fill(torch.eye(len(e), dtype=torch.bool, device=e.device), _MASK)
    return F.log_softmax(log_k, dim=1)


def pkt_loss(emb_s: Tensor, emb_t: Tensor) -> Tensor:
    r"""Probabilistic knowledge transfer (Passalis & Tefas, "Learning Deep Representations with
    Probabilistic Knowledge Transfer", ECCV 2018).

    With the cosine kernel :math:`K(a, b) = \tfrac12 (\cos(a, b) + 1)` and conditional
    probabilities :math:`p_{j|i} = K(e_i, e_j) / \sum_{k \ne i} K(e_i, e_k)` for :math:`j \ne i`:

    .. math::

        \mathcal{L}_{PKT} = \frac{1}{B} \sum_i \sum_{j \ne i}
            p^t_{j|i} \log \frac{p^t_{j|i}}{p^s_{j|i}}

    The paper sums over ``i``; the mean over ``i`` keeps the weight independent of the batch
    size. The authors' code keeps the diagonal ``j = i`` and averages over all :math:`B^2`
    entries. The kernel is clamped at 1e-7 so that opposite vectors give no ``log 0``.

    Parameters
    ----------
    emb_s, emb_t : Tensor of shape (batch, ...)
        Embeddings, flattened per sample; dimensions may differ. At least 2 samples.
    """
    s, t = _flat_pair("pkt_loss", emb_s, emb_t)
    if s.shape[0] < 2:
        raise ValueError(f"pkt_loss needs a batch of at least 2 samples, got {s.shape[0]}")
    return _kl_rows(_pkt_log_probs(s, 1e-7), _pkt_log_probs(t, 1e-7))
