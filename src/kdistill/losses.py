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


def _check_logits(logits_s: Tensor, logits_t: Tensor) -> None:
    if logits_s.ndim != 2 or logits_s.shape != logits_t.shape:
        raise ValueError(
            f"student logits have shape {tuple(logits_s.shape)} and teacher logits {tuple(logits_t.shape)}; "
            f"both must be (batch, classes) with the same shape"
        )


def check_weight(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise naming ``name``, the value and what is allowed (>= 0)."""
    v = float(value)
    if not 0.0 <= v < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


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


_MASK = -1e9  # a logit whose probability is exactly 0 in float32, without the NaNs of -inf


def _binary_log_probs(logits: Tensor, target: Tensor, t: float) -> Tensor:
    """``[log p_y, log(1 - p_y)]`` per row, both computed in log space."""
    log_p = F.log_softmax(logits.float() / t, dim=1)
    log_target = log_p.masked_fill(~target, _MASK).logsumexp(dim=1)
    log_rest = log_p.masked_fill(target, _MASK).logsumexp(dim=1)
    return torch.stack([log_target, log_rest], dim=1)


def _non_target_log_probs(logits: Tensor, target: Tensor, t: float) -> Tensor:
    """Log-probabilities over the non-target classes (target logit masked out)."""
    return F.log_softmax(logits.float().masked_fill(target, _MASK) / t, dim=1)


def _kl_rows(log_p_s: Tensor, log_p_t: Tensor) -> Tensor:
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


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
