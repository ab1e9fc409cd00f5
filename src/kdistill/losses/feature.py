"""Feature-based losses: on tapped intermediate features (FitNets, AT, FSP)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: student feature has shape {tuple(a.shape)} but teacher feature "
                         f"{tuple(b.shape)}; they must match (pass the student's through a connector)")


def fitnet_loss(feat_s: Tensor, feat_t: Tensor) -> Tensor:
    r"""Hint loss of FitNets (Romero, Ballas, Kahou, Chassang, Gatta & Bengio, "FitNets: Hints
    for Thin Deep Nets", ICLR 2015).

    .. math::

        \mathcal{L}_{HT} = \frac{1}{N} \sum \big(r(u^s) - v^t\big)^2

    the mean squared error between the student's guided layer, already passed through its
    regressor :math:`r` (the connector), and the teacher's hint layer. The paper writes
    :math:`\tfrac12 \lVert v^t - r(u^s) \rVert^2` summed over the feature; the mean over all
    ``N`` elements used here (and by RepDistiller and mdistiller) keeps the usual weight
    (about 100) independent of the layer's size.

    Parameters
    ----------
    feat_s : Tensor
        The student's feature after its connector.
    feat_t : Tensor
        The teacher's feature, of the same shape.
    """
    _check_same_shape("fitnet_loss", feat_s, feat_t)
    return F.mse_loss(feat_s.float(), feat_t.float())


def pool_to_match(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Average-pool the spatially larger of two ``(batch, ..., H, W)`` maps to the other's size."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    return F.adaptive_avg_pool2d(a, size), F.adaptive_avg_pool2d(b, size)


def _check_4d(name: str, feat: Tensor) -> None:
    if feat.ndim != 4:
        raise ValueError(f"{name} needs feature maps of shape (batch, channels, height, width), "
                         f"got shape {tuple(feat.shape)}")


def at_loss(feat_s: Tensor, feat_t: Tensor, p: float = 2) -> Tensor:
    r"""Attention transfer (Zagoruyko & Komodakis, "Paying More Attention to Attention:
    Improving the Performance of Convolutional Neural Networks via Attention Transfer",
    ICLR 2017).

    With :math:`Q = \mathrm{vec}(\sum_c |A_c|^p)` the spatial attention of a feature map:

    .. math::

        \mathcal{L}_{AT} = \frac{1}{B} \sum_i \Big\lVert \frac{Q^s_i}{\lVert Q^s_i \rVert_2}
            - \frac{Q^t_i}{\lVert Q^t_i \rVert_2} \Big\rVert_2

    following the paper (eq. 2, norm p = 2, the factor :math:`\beta/2` left to the term's
    weight). The authors' code uses the *squared* distance averaged over positions, with
    :math:`\beta = 1000`. Channels may differ; if spatial sizes differ the larger attention
    map is average-pooled to the smaller one. Invariant to the scale of either feature map.

    Parameters
    ----------
    feat_s, feat_t : Tensor of shape (batch, channels, height, width)
        Feature maps; channel counts may differ.
    p : float
        Exponent of the attention mapping (the paper uses 2).
    """
    p = float(p)
    if not 0 < p < float("inf"):
        raise ValueError(f"p must be a finite number > 0, got {p!r}")
    _check_4d("at_loss", feat_s)
    _check_4d("at_loss", feat_t)
    map_s, map_t = pool_to_match(feat_s.float().abs().pow(p).sum(1, keepdim=True),
                                 feat_t.float().abs().pow(p).sum(1, keepdim=True))
    q_s, q_t = F.normalize(map_s.flatten(1), dim=1), F.normalize(map_t.flatten(1), dim=1)
    return (q_s - q_t).norm(dim=1).mean()


def fsp_matrix(feat_a: Tensor, feat_b: Tensor) -> Tensor:
    r"""FSP matrix of two feature maps: :math:`G_{ij} = \frac{1}{HW} \sum_{x,y} F^a_i(x, y)
    F^b_j(x, y)`, shape ``(batch, C_a, C_b)``; the larger map is average-pooled to the other's
    spatial size first."""
    _check_4d("fsp_matrix", feat_a)
    _check_4d("fsp_matrix", feat_b)
    a, b = pool_to_match(feat_a.float(), feat_b.float())
    return torch.einsum("bihw,bjhw->bij", a, b) / (a.shape[-2] * a.shape[-1])


def fsp_loss(pairs_s, pairs_t) -> Tensor:
    r"""Flow of solution procedure (Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation:
    Fast Optimization, Network Minimization and Transfer Learning", CVPR 2017).

    .. math::

        \mathcal{L}_{FSP} = \frac{1}{B} \sum_x \sum_{k} \big\lVert G^t_k(x) - G^s_k(x) \big\rVert_F^2

    over the pairs ``k`` of feature maps (the paper's :math:`\lambda_k` are all equal, here 1).
    The authors' formulation needs equal channel counts; RepDistiller averages over the matrix
    entries where the paper sums them.

    Parameters
    ----------
    pairs_s, pairs_t : sequence of (Tensor, Tensor)
        Matching pairs of (first, second) feature maps of student and teacher.
    """
    pairs_s, pairs_t = list(pairs_s), list(pairs_t)
    if len(pairs_s) != len(pairs_t) or not pairs_s:
        raise ValueError(f"fsp_loss needs the same non-zero number of student and teacher pairs, "
                         f"got {len(pairs_s)} and {len(pairs_t)}")
    total = 0.0
    for k, ((a_s, b_s), (a_t, b_t)) in enumerate(zip(pairs_s, pairs_t)):
        g_s, g_t = fsp_matrix(a_s, b_s), fsp_matrix(a_t, b_t)
        _check_same_shape(f"fsp_loss pair {k} (FSP matrix)", g_s, g_t)
        total = total + (g_s - g_t).pow(2).sum(dim=(1, 2)).mean()
    return total
