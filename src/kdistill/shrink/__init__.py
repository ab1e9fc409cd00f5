"""Shrink: the toolkit builds the student — pruned from the trained teacher or scaled from a
family, searched under a budget of parameters, MACs, file size or ONNX Runtime latency, with
weak candidates stopped early (:mod:`.search`), and its Pareto front (:mod:`.pareto`)."""

from .budget import Budget, check_budget, resolve
from .candidates import Candidate, check_family
from .search import shrink

__all__ = ["Budget", "Candidate", "check_budget", "check_family", "resolve", "shrink"]
