"""Registered distillation methods. ``available()`` lists them; ``objective()`` builds a
weighted list of terms such as ``[("ce", 0.5), ("kd", 0.5, {"temperature": 4})]``."""

from . import ce, kd  # noqa: F401  (registers the built-in methods)
from .base import Method, Step, Term, available, build, objective, register

__all__ = ["Method", "Step", "Term", "available", "build", "objective", "register"]
