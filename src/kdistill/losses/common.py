"""What the losses share: checks that name each bad value with what is allowed, and helpers."""

from __future__ import annotations

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


_MASK = -1e9  # a logit whose probability is exactly 0 in float32, without the NaNs of -inf


def _kl_rows(log_p_s: Tensor, log_p_t: Tensor) -> Tensor:
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
