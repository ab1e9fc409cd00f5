"""Shrink: the toolkit builds the student — pruned from the trained teacher or scaled from a
family (:mod:`.candidates`), searched under a budget of parameters, MACs, file size or ONNX
Runtime latency (:mod:`.budget`), with weak candidates stopped early (:mod:`.search`, whose
:func:`~kdistill.shrink.search.shrink` is ``kdistill.shrink``; :mod:`.trials`), and its Pareto
front (:mod:`.pareto`); ``kdistill shrink EXPERIMENT`` (:mod:`.experiment`, :mod:`.command`).

The package imports nothing itself, so that the command line can register its command without
loading torch."""

import importlib
import sys
import types


class _CallableModule(types.ModuleType):
    """``kdistill.shrink`` names both this package and its function: Python binds a package's
    submodule to the package's attribute once the submodule is imported, so the module itself calls
    :func:`~kdistill.shrink.search.shrink` (imported only then), and ``kdistill.shrink(...)`` works either way."""

    def __call__(self, *args, **kwargs):
        # resolved at call time, not a dependency of the package: config.shrink imports the package's
        # budget module, and the search (which runs studies) must not load with it
        return importlib.import_module(f"{__name__}.search").shrink(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
