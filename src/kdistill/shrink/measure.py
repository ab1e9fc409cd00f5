"""Measuring a model against a budget: parameters, multiply-accumulates (Torch-Pruning's counter),
bytes of weights, and ONNX Runtime latency (the model exported in memory)."""

from __future__ import annotations

import io

import torch
from torch import nn

from ..models import count_params
from .budget import KEYS, SHARE_KEYS, Budget, check_budget

LATENCY_REPEATS = 30


def resolve(budget: dict, teacher: nn.Module, input_shape) -> Budget:
    """The absolute limit of a checked ``budget`` (a share of ``teacher``'s figure made absolute)."""
    budget = check_budget(budget)
    key = next(k for k in budget if k in KEYS)
    measure, value, batch = KEYS[key], float(budget[key]), int(budget.get("batch", 1))
    if key == "size_mb":
        value *= 1e6
    is_share = key in SHARE_KEYS or (key in ("params", "macs") and value <= 1)
    if not is_share:
        return Budget(measure, value, None, batch)
    return Budget(measure, value * measured(teacher, measure, input_shape, batch), value, batch)


def measured(model: nn.Module, measure: str, input_shape, batch: int = 1) -> float:
    """``model``'s figure of ``measure`` (see :data:`MEASURES`)."""
    if measure == "params":
        return float(count_params(model))
    if measure == "bytes":
        tensors = list(model.parameters()) + list(model.buffers())
        return float(sum(t.numel() * 4 for t in tensors if t.is_floating_point()))
    if measure == "macs":
        import torch_pruning as tp

        return float(tp.utils.count_ops_and_params(model.eval(), torch.zeros(1, *input_shape))[0])
    return onnx_latency_ms(model, input_shape, batch)


def onnx_latency_ms(model: nn.Module, input_shape, batch: int, repeats: int = LATENCY_REPEATS) -> float:
    """Median ONNX Runtime (CPU) milliseconds per batch of ``batch``, the model exported in memory."""
    from ..export.runtime import latency, session
    from ..export.torch_onnx import to_onnx

    buffer = io.BytesIO()
    to_onnx(model.eval(), torch.zeros(1, *input_shape), buffer)
    sess = session(buffer.getvalue())
    return latency(sess, tuple(input_shape), (batch,), repeats=repeats)[f"batch{batch}"]["p50_ms"]
