"""kd_loss against an independent NumPy implementation of Hinton et al.'s formula."""

import numpy as np
import pytest
import torch

from kdistill.losses import check_alpha, kd_loss


def np_kd(s, t, T):
    """T^2 * mean over the batch of sum_c p_t log(p_t / p_s), with softmax at temperature T."""
    def softmax(z):
        z = z / T
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    p_s, p_t = softmax(s.astype(np.float64)), softmax(t.astype(np.float64))
    return T * T * np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1))


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0])
def test_matches_numpy(T):
    rng = np.random.default_rng(0)
    s, t = rng.normal(0, 3, (16, 10)), rng.normal(0, 3, (16, 10))
    got = kd_loss(torch.tensor(s), torch.tensor(t), T).item()
    assert got == pytest.approx(np_kd(s, t, T), rel=1e-5)


def test_direction_is_kl_teacher_to_student():
    """Swapping the arguments gives a different value: the order is KL(teacher || student)."""
    rng = np.random.default_rng(1)
    s, t = rng.normal(0, 3, (8, 5)), rng.normal(0, 1, (8, 5))
    forward = kd_loss(torch.tensor(s), torch.tensor(t), 2.0).item()
    assert forward == pytest.approx(np_kd(s, t, 2.0), rel=1e-5)
    assert abs(forward - np_kd(t, s, 2.0)) > 1e-3


def test_zero_when_student_equals_teacher():
    z = torch.randn(32, 7)
    assert kd_loss(z.clone(), z, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_finite_for_confident_logits():
    """log_softmax, not log(softmax): logits of +-1000 must not give inf or nan."""
    s = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    t = torch.tensor([[-1000.0, 1000.0, 0.0]])
    loss = kd_loss(s, t, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_gradient_magnitude_is_temperature_independent():
    """With the T^2 factor, the gradient w.r.t. the logits stays of the same order as T grows
    (it tends to (s - t) / B / C for large T); without it, it would shrink as 1/T^2."""
    torch.manual_seed(0)
    s0, t = torch.randn(4, 5), torch.randn(4, 5)
    norms = []
    for T in (5.0, 50.0):
        s = s0.clone().requires_grad_(True)
        kd_loss(s, t, T).backward()
        norms.append(s.grad.norm().item())
    assert norms[1] == pytest.approx(norms[0], rel=0.05)


def test_batchmean_not_mean():
    """The value does not depend on the number of classes padding (reduction='mean' would divide by C)."""
    s, t = torch.randn(6, 4), torch.randn(6, 4)
    pad = torch.full((6, 96), -1e4)  # classes no model believes in add nothing to the KL
    assert kd_loss(torch.cat([s, pad], 1), torch.cat([t, pad], 1), 1.0).item() == pytest.approx(
        kd_loss(s, t, 1.0).item(), rel=1e-5)


@pytest.mark.parametrize("T", [0, -1, float("nan"), float("inf")])
def test_bad_temperature(T):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), T)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        check_alpha(alpha)


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"student logits have shape \(2, 3\) but teacher logits have shape \(2, 4\)"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), 2.0)
