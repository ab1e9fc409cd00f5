"""A small model zoo (MLP, VGG-style CNN) and size accounting.

Layers live in two ``nn.Sequential`` blocks, ``features`` and ``classifier``, so feature taps
can name them (``features.3``) without rewriting the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

# A zoo model remembers how it was built (``{"model": name, "options": {...}}``) in this plain
# attribute, so that a run given the model as an object (kdistill.compare) records it in its
# weights file and kdistill export and kdistill.load rebuild it. It is data, never code.
ARCH_ATTRIBUTE = "kdistill_arch"


def _shape(input_shape) -> tuple[int, ...]:
    return (int(input_shape),) if isinstance(input_shape, int) else tuple(int(d) for d in input_shape)


def _check_sizes(field: str, values: Sequence[int]) -> list[int]:
    values = list(values)
    if not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f"{field} must be a list of positive integers, got {values!r}")
    return values


def mlp(input_shape, num_classes: int, hidden: Sequence[int] = (64,), dropout: float = 0.0) -> nn.Module:
    """Multi-layer perceptron: flatten, then ``Linear -> ReLU`` per hidden width, then the output.

    Parameters
    ----------
    input_shape : int or tuple
        Features per sample (any shape; it is flattened).
    num_classes : int
        Number of output logits.
    hidden : sequence of int
        Width of each hidden layer; empty for logistic regression.
    dropout : float
        Dropout after each hidden layer.
    """
    hidden = _check_sizes("hidden", hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(_shape(input_shape))
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*layers))
    model.add_module("classifier", nn.Linear(width, num_classes))
    model.kdistill_arch = {"model": "mlp", "options": {"hidden": hidden, "dropout": dropout}}  # see ARCH_ATTRIBUTE
    return model


def cnn(input_shape, num_classes: int, channels: Sequence[int] = (16, 32), hidden: int = 64,
        dropout: float = 0.25, batch_norm: bool = True) -> nn.Module:
    """VGG-style CNN: per entry of ``channels`` a 3x3 conv (+ batch norm) + ReLU + 2x2 max-pool
    block, then a small dense head ``Linear(hidden) -> ReLU -> Dropout -> Linear(num_classes)``.

    Pooling stops once the feature map is 1x1, so the same recipe fits 8x8 digits and larger
    images. ``input_shape`` is ``(channels, height, width)``.
    """
    channels = _check_sizes("channels", channels)
    shape = _shape(input_shape)
    if len(shape) != 3:
        raise ValueError(f"cnn needs input_shape (channels, height, width), got {shape}")
    c, h, w = shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*layers))
    head: list[nn.Module] = [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU()]
    if dropout:
        head.append(nn.Dropout(dropout))
    head.append(nn.Linear(hidden, num_classes))
    model.add_module("classifier", nn.Sequential(*head))
    model.kdistill_arch = {"model": "cnn", "options": {"channels": channels, "hidden": hidden, "dropout": dropout,
                                                       "batch_norm": batch_norm}}
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def size_mb(model: nn.Module) -> float:
    """In-memory size of parameters and buffers in megabytes (10^6 bytes)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6
