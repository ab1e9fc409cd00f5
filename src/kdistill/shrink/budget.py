"""A student's budget: parameters, multiply-accumulates, file size or ONNX Runtime latency, as a
share of the teacher's or as an absolute figure, checked field by field and measured.

Forms (one measure per budget):

- ``{"params": 0.1}`` a tenth of the teacher's parameters; ``{"params": 40000}`` at most 40,000
  (a value of at most 1 is a share, above 1 a count); ``{"macs": ...}`` the same for
  multiply-accumulates of one sample;
- ``{"size": 0.1}`` a share of the teacher's weights in bytes; ``{"size_mb": 0.2}``,
  ``{"bytes": 200000}`` absolute (float32 parameters and buffers);
- ``{"latency_ms": 0.2, "batch": 1}`` at most 0.2 ms per batch of 1 on ONNX Runtime (CPU, the
  median of timed runs); ``{"latency": 0.5, "batch": 64}`` half of the teacher's there.
"""

from __future__ import annotations

import io
import numbers
from dataclasses import dataclass

import torch
from torch import nn

from ..models import count_params

MEASURES = {"params": "parameters", "macs": "multiply-accumulates per sample", "bytes": "bytes of weights",
            "latency_ms": "ONNX Runtime milliseconds per batch"}
KEYS = {"params": "params", "macs": "macs", "size": "bytes", "size_mb": "bytes", "bytes": "bytes",
        "latency": "latency_ms", "latency_ms": "latency_ms"}
SHARE_KEYS = ("size", "latency")  # always a share of the teacher's figure
ABSOLUTE_KEYS = ("size_mb", "bytes", "latency_ms")  # always an absolute figure
LATENCY_REPEATS = 30


@dataclass(frozen=True)
class Budget:
    """A resolved budget: at most ``limit`` of ``measure`` (see :data:`MEASURES`), ``share`` of
    the teacher's where it was given as one, latency at batch size ``batch``."""

    measure: str
    limit: float
    share: float | None = None
    batch: int = 1

    def label(self) -> str:
        shown = f"{self.limit:,.0f}" if self.measure in ("params", "macs", "bytes") else f"{self.limit:.4g}"
        share = f" ({self.share:.3g} of the teacher's)" if self.share is not None else ""
        at = f" at batch {self.batch}" if self.measure == "latency_ms" else ""
        return f"{shown} {MEASURES[self.measure]}{at}{share}"


def check_budget(budget, what: str = "budget") -> dict:
    """``budget`` checked: a mapping of one measure key (and ``batch`` for latency) to a positive
    number. Raises ``ValueError``/``TypeError`` naming the field, the value and what is allowed."""
    allowed = ", ".join(KEYS)
    if not isinstance(budget, dict):
        raise TypeError(f"{what} must be a mapping such as {{'params': 0.1}} or {{'latency_ms': 0.2, 'batch': 1}}, "
                        f"got {budget!r}")
    unknown = sorted(str(k) for k in budget if k not in KEYS and k != "batch")
    if unknown:
        raise ValueError(f"{what} has unknown key(s) {unknown}; allowed: {allowed}, and batch with a latency")
    given = [k for k in budget if k in KEYS]
    if len(given) != 1:
        raise ValueError(f"{what} = {budget!r}: give exactly one measure of {allowed}, e.g. {{'params': 0.1}}")
    key = given[0]
    value = budget[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{what}.{key} = {value!r}: must be a positive number")
    if key in SHARE_KEYS and value > 1:
        raise ValueError(f"{what}.{key} = {value!r}: a share of the teacher's figure, so at most 1 (for an absolute "
                         f"figure use {'size_mb or bytes' if key == 'size' else 'latency_ms'})")
    if "batch" in budget:
        batch = budget["batch"]
        if KEYS[key] != "latency_ms":
            raise ValueError(f"{what}.batch applies to a latency budget (latency_ms or latency), not to {key}")
        if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or not 1 <= batch <= 4096:
            raise ValueError(f"{what}.batch = {batch!r}: must be an integer from 1 to 4096")
    return dict(budget)


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
