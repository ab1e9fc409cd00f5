"""Registered distillation methods. ``available()`` lists them; ``objective()`` builds a
weighted list of terms such as ``[("ce", 0.5), ("kd", 0.5, {"temperature": 4})]``."""

from . import at, byot, ce, dist, dkd, dml, fitnet, fsp, kd, pkt, rkd, sp  # noqa: F401  (registers them)
from .base import Method, Step, Term, available, build, objective, register

__all__ = ["Method", "Step", "Term", "available", "build", "objective", "register"]
