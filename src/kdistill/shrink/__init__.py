"""Shrink: the toolkit builds the student — pruned from the trained teacher or scaled from a
family, searched under a budget of parameters, MACs, file size or ONNX Runtime latency, with
weak candidates stopped early (:mod:`.search`, whose :func:`~kdistill.shrink.search.shrink` is
``kdistill.shrink``), and its Pareto front (:mod:`.pareto`).

This package's own import runs only the budget and candidate checks, which experiment files use
too; the search, which runs studies, is imported from :mod:`.search`."""

from .budget import Budget, check_budget, resolve
from .candidates import Candidate, check_family

__all__ = ["Budget", "Candidate", "check_budget", "check_family", "resolve"]
