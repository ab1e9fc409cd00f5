"""The students a shrink search tries: pruned copies of the trained teacher at the ratios a budget
implies, and members of a family (a factory with width options, or the zoo) scaled to it.

A family is ``{"model": NAME, "options": {...}, "width": [OPTION...]}``: the options named in
``width`` (default: every option that is a positive integer or a list of them, e.g. the zoo
CNN's ``channels`` and ``hidden``) are multiplied by one factor, the largest whose model fits
the budget (bisection), and by the factor that fits half of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from ..models import build_model
from ..models.prune import FromTeacher
from .budget import Budget, _sizes
from .measure import measured

SHARES = (1.0, 0.5)  # each kind of candidate at the budget and at half of it
GRID = (0.5, 0.75, 0.9, 0.95, 0.98)  # shares of parameters removed tried against a latency budget


@dataclass
class Candidate:
    """One architecture the search trains: ``pruned`` (a :class:`FromTeacher`) or ``arch``
    (``{"model", "options"}`` of a family member, trained from new weights); ``figure`` is its
    budget measure."""

    name: str
    kind: str
    figure: float
    pruned: FromTeacher | None = None
    arch: dict | None = None
    params: int = 0
    extra: dict = field(default_factory=dict)

    def make(self, teacher, data):
        """The untrained student (pruned from ``teacher``, or built), from the current torch seed."""
        if self.pruned is not None:
            return self.pruned.start(teacher, data)
        return build_model(self.arch["model"], self.arch["options"], data.input_shape, data.num_classes)

    def alone(self) -> Candidate:
        """The same architecture from new weights (the baseline trained alone)."""
        if self.pruned is None:
            return self
        from dataclasses import replace

        return replace(self, pruned=replace(self.pruned, weights="fresh"))


def scaled(family: dict, factor: float) -> dict:
    """The family's options with every width multiplied by ``factor`` (rounded, at least 1)."""
    options = dict(family["options"])
    for key in family["width"]:
        value = options[key]
        grow = [max(1, round(v * factor)) for v in _sizes(value)]
        options[key] = grow[0] if type(value) is int else grow
    return options


def scale_to(family: dict, budget: Budget, data, limit: float | None = None) -> dict | None:
    """The options of the widest family member within ``limit`` (default the budget's), or ``None``."""
    limit = budget.limit if limit is None else limit

    def figure(factor):
        with torch.random.fork_rng():
            model = build_model(family["model"], scaled(family, factor), data.input_shape, data.num_classes)
        return measured(model, budget.measure, data.input_shape, budget.batch)

    low, high = 1 / 256, 16.0
    if figure(low) > limit:
        return None
    while figure(high) <= limit and high < 1024:
        low, high = high, high * 2
    for _ in range(14):
        mid = (low * high) ** 0.5
        low, high = (mid, high) if figure(mid) <= limit else (low, mid)
    return scaled(family, low)


def pruned_candidates(teacher, budget: Budget, data, importance: tuple = ("magnitude",),
                      steps: int = 1) -> list[Candidate]:
    """Pruned copies of ``teacher`` at the budget and at half of it (by each importance criterion)."""
    whole = {m: measured(teacher, m, data.input_shape, budget.batch) for m in ("params", budget.measure)}
    out = []
    for share in SHARES:
        limit = budget.limit * share
        for imp in importance:
            ratio = _ratio(teacher, budget, limit, whole, data, imp, steps)
            if ratio is None:
                continue
            spec = FromTeacher(prune=ratio, importance=imp, iterative_steps=steps,
                               target="macs" if budget.measure == "macs" else "params")
            with torch.random.fork_rng():
                model = spec.start(teacher, data)
            fig = measured(model, budget.measure, data.input_shape, budget.batch)
            out.append(Candidate(f"pruned {1 / (1 - ratio):.1f}x smaller ({imp})", "pruned", fig, pruned=spec,
                                 params=sum(p.numel() for p in model.parameters())))
    return out


def _ratio(teacher, budget: Budget, limit: float, whole: dict, data, importance: str, steps: int) -> float | None:
    """The share of the teacher removed whose pruned model is within ``limit``."""
    if budget.measure in ("params", "macs"):
        ratio = 1 - limit / whole[budget.measure]
        return ratio if 0 < ratio < 1 else None
    if budget.measure == "bytes":  # bytes follow parameters; checked after pruning
        ratio = 1 - limit / whole["bytes"]
        return ratio if 0 < ratio < 1 else None
    for ratio in GRID:  # latency: the least pruned of the grid that is fast enough
        with torch.random.fork_rng():
            model = FromTeacher(prune=ratio, importance="magnitude").start(teacher, data)
        if measured(model, "latency_ms", data.input_shape, budget.batch) <= limit:
            return ratio
    return None


def family_candidates(family: dict, budget: Budget, data) -> list[Candidate]:
    """The family scaled to the budget and to half of it."""
    out, seen = [], set()
    for share in SHARES:
        options = scale_to(family, budget, data, budget.limit * share)
        key = json.dumps(options, sort_keys=True)
        if options is None or key in seen:
            continue
        seen.add(key)
        arch = {"model": family["model"], "options": options}
        with torch.random.fork_rng():
            model = build_model(arch["model"], options, data.input_shape, data.num_classes)
        fig = measured(model, budget.measure, data.input_shape, budget.batch)
        shown = ", ".join(f"{k}={options[k]}" for k in family["width"])
        out.append(Candidate(f"{family['model']} {shown}", "family", fig, arch=arch,
                             params=sum(p.numel() for p in model.parameters())))
    return out
