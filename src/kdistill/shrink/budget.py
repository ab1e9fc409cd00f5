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

import numbers
from dataclasses import dataclass

from ..models import option_names

MEASURES = {"params": "parameters", "macs": "multiply-accumulates per sample", "bytes": "bytes of weights",
            "latency_ms": "ONNX Runtime milliseconds per batch"}
KEYS = {"params": "params", "macs": "macs", "size": "bytes", "size_mb": "bytes", "bytes": "bytes",
        "latency": "latency_ms", "latency_ms": "latency_ms"}
SHARE_KEYS = ("size", "latency")  # always a share of the teacher's figure
ABSOLUTE_KEYS = ("size_mb", "bytes", "latency_ms")  # always an absolute figure


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


def check_family(family) -> dict:
    """``family`` checked: ``{"model": NAME, "options": {...}, "width": [OPTION, ...], "depth": {OPTION:
    [LENGTH, ...]}}`` (``depth`` optional: one list option and the lengths it is tried at)."""
    if not isinstance(family, dict) or not isinstance(family.get("model"), str):
        raise TypeError(f"family must be a mapping {{'model': NAME, 'options': {{...}}, 'width': [OPTION...]}}, got "
                        f"{family!r}")
    unknown = sorted(set(family) - {"model", "options", "width", "depth"})
    if unknown:
        raise ValueError(f"family has unknown key(s) {unknown}; allowed: model, options, width, depth")
    options = family.get("options", {})
    if not isinstance(options, dict):
        raise TypeError(f"family.options must be a mapping, got {options!r}")
    width = family.get("width", [k for k, v in options.items() if _sizes(v) is not None])
    allowed = option_names(family["model"])
    bad = [w for w in width if w not in options or _sizes(options[w]) is None]
    if not width or bad:
        raise ValueError(f"family.width = {width!r}: name options of family.options that are positive integers or "
                         f"lists of them (the widths scaled to the budget); options given: {sorted(options)}"
                         + (f", the factory's: {allowed}" if allowed else ""))
    checked = {"model": family["model"], "options": dict(options), "width": list(width)}
    if family.get("depth") is not None:
        checked["depth"] = _depth(family["depth"], options)
    return checked


def _depth(depth, options: dict) -> dict:
    """``family.depth`` checked: one list option of ``options`` (e.g. an MLP's ``hidden``, a CNN's
    ``channels``) and the lengths it is tried at, distinct integers from 1 to 32."""
    lists = sorted(k for k, v in options.items() if isinstance(v, (list, tuple)) and _sizes(v) is not None)
    example = f"{{{lists[0]!r}: [1, 2, 3]}}" if lists else "{'hidden': [1, 2, 3]}"
    if not isinstance(depth, dict) or len(depth) != 1:
        raise ValueError(f"family.depth = {depth!r}: give one list option and the lengths to try, e.g. {example}")
    (key, lengths), = depth.items()
    if key not in lists:
        raise ValueError(f"family.depth names {key!r}, which is not a list of positive integers in family.options; "
                         f"the list options given: {lists or '(none)'}")
    if (not isinstance(lengths, (list, tuple)) or not lengths
            or not all(type(n) is int and 1 <= n <= 32 for n in lengths) or len(set(lengths)) != len(lengths)):
        raise ValueError(f"family.depth.{key} = {lengths!r}: the lengths to try, distinct integers from 1 to 32, "
                         f"e.g. [1, 2, 3]")
    return {key: list(lengths)}


def _sizes(value):
    if type(value) is int and value > 0:
        return [value]
    if isinstance(value, (list, tuple)) and value and all(type(v) is int and v > 0 for v in value):
        return list(value)
    return None
