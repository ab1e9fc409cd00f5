"""Registered distillation methods. ``available()`` lists them, ``describe()`` documents them;
``objective()`` builds a weighted list of terms such as ``[("ce", 0.5), ("kd", 0.5, {"temperature": 4})]``.

Every module in this folder whose name does not start with ``_`` is imported here, which
registers the methods it defines: a new method is one new file, with no list to edit.
"""

import importlib
import pkgutil

from .base import (
    ALONE,
    Method,
    Step,
    Term,
    available,
    build,
    describe,
    kd_objective,
    method_class,
    objective,
    options,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ALONE", "Method", "Step", "Term", "available", "build", "describe", "kd_objective", "method_class",
           "objective", "options", "register"]
