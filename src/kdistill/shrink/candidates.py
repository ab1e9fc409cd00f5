"""The students a shrink search tries: pruned copies of the trained teacher at the ratios a budget
implies, and members of a family (a factory with width and depth options, or the zoo) scaled to it.

A family is ``{"model": NAME, "options": {...}, "width": [OPTION...], "depth": {OPTION: [LENGTH...]}}``:
the options named in ``width`` (default: every option that is a positive integer or a list of
them, e.g. the zoo CNN's ``channels`` and ``hidden``) are multiplied by one factor, the largest
whose model fits the budget (bisection), and by the factor that fits half of it. ``depth``
(optional) names one list option, e.g. an MLP's ``hidden``, and the lengths it is tried at: the
list cut to its first entries or grown by repeating its last, each length scaled in width to
the budget and to half of it.

A search's candidates are made once, by the process that creates its study, and recorded in it
as data (:meth:`Candidate.record`): every other worker trains the same ones, measured on the
first machine (a latency measured on each machine would give each its own pruning ratios).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import torch

from ..models import build_model
from ..models.prune import FromTeacher
from .budget import Budget, _sizes
from .measure import measured

log = logging.getLogger("kdistill")

SHARES = (1.0, 0.5)  # each kind of candidate at the budget and at half of it
GRID = (0.5, 0.75, 0.9, 0.95, 0.98)  # shares of parameters removed tried against a latency budget


PRUNED_FIELDS = ("prune", "importance", "iterative_steps", "target", "weights", "allocation")


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

    def record(self) -> dict:
        """The candidate as data (JSON), as its study records it."""
        pruned = None if self.pruned is None else {k: getattr(self.pruned, k) for k in PRUNED_FIELDS}
        return {"name": self.name, "kind": self.kind, "figure": self.figure, "params": self.params,
                "pruned": pruned, "arch": self.arch}

    @classmethod
    def from_record(cls, record, family: dict) -> Candidate:
        """A candidate read back from its study's record, checked: a pruned spec's fields are
        validated, and a family member must be of ``family``'s model with ``family``'s options
        (the record never chooses which factory builds a model, nor what else it is given)."""
        try:
            name, kind, figure, params = record["name"], record["kind"], float(record["figure"]), int(record["params"])
            pruned, arch = record["pruned"], record["arch"]
            if kind == "pruned" and isinstance(pruned, dict) and set(pruned) == set(PRUNED_FIELDS) and arch is None:
                return cls(str(name), kind, figure, pruned=FromTeacher(**pruned), params=params)
            if (kind == "family" and pruned is None and isinstance(arch, dict) and set(arch) == {"model", "options"}
                    and arch["model"] == family["model"] and isinstance(arch["options"], dict)
                    and set(arch["options"]) == set(family["options"])):  # the family's options, resized
                return cls(str(name), kind, figure, arch={"model": arch["model"], "options": dict(arch["options"])},
                           params=params)
        except (KeyError, TypeError, ValueError):
            pass
        raise ValueError(f"the study records a candidate this search cannot rebuild: {record!r}")


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


def pruned_candidates(teacher, budget: Budget, data, importance: tuple = ("magnitude",), steps: int = 1,
                      allocation: tuple = ("uniform",)) -> list[Candidate]:
    """Pruned copies of ``teacher`` at the budget and at half of it (by each importance criterion
    and each allocation of the pruning over the layers). The share removed follows from the
    budget for parameters, MACs and bytes; for a latency it is the least of :data:`GRID` whose
    pruned model is fast enough, measured. One over its limit is left out, saying so."""
    whole = measured(teacher, budget.measure, data.input_shape, budget.batch)
    target = "macs" if budget.measure == "macs" else "params"
    out = []
    for share in SHARES:
        limit = budget.limit * share
        for spread in allocation:
            for imp in importance:
                if budget.measure == "latency_ms":
                    ratios = GRID
                else:  # bytes follow parameters only nearly: measured after pruning
                    ratios = [r for r in (1 - limit / whole,) if 0 < r < 1]
                for ratio in ratios:
                    spec = FromTeacher(prune=ratio, importance=imp, iterative_steps=steps, target=target,
                                       allocation=spread)
                    with torch.random.fork_rng():
                        model = spec.start(teacher, data)
                    fig = measured(model, budget.measure, data.input_shape, budget.batch)
                    if fig <= limit:
                        shown = imp if spread == "uniform" else f"{imp}, {spread}"
                        out.append(Candidate(f"pruned {1 / (1 - ratio):.1f}x smaller ({shown})", "pruned", fig,
                                             pruned=spec, params=sum(p.numel() for p in model.parameters())))
                        break
                    log.info("pruned %.0f%% (%s, %s) is %.4g %s, over the limit %.4g", 100 * ratio, imp, spread, fig,
                             budget.measure, limit)
    return out


def deepened(options: dict, key: str, length: int) -> dict:
    """``options`` with the list option ``key`` cut to ``length`` entries or grown to it by
    repeating its last entry."""
    values = list(options[key])
    return {**options, key: values[:length] + [values[-1]] * (length - len(values))}


def family_candidates(family: dict, budget: Budget, data) -> list[Candidate]:
    """The family scaled to the budget and to half of it, at each of its depths."""
    depth = family.get("depth") or {}
    members = [{**family, "options": deepened(family["options"], key, n)} for key, lengths in depth.items()
               for n in lengths] or [family]
    shown_keys = list(dict.fromkeys([*family["width"], *depth]))
    out, seen = [], set()
    for member in members:
        for share in SHARES:
            options = scale_to(member, budget, data, budget.limit * share)
            key = json.dumps(options, sort_keys=True)
            if options is None or key in seen:
                continue
            seen.add(key)
            arch = {"model": family["model"], "options": options}
            with torch.random.fork_rng():
                model = build_model(arch["model"], options, data.input_shape, data.num_classes)
            fig = measured(model, budget.measure, data.input_shape, budget.batch)
            shown = ", ".join(f"{k}={options[k]}" for k in shown_keys)
            out.append(Candidate(f"{family['model']} {shown}", "family", fig, arch=arch,
                                 params=sum(p.numel() for p in model.parameters())))
    return out


def candidates(teacher, budget: Budget, data, family: dict, importance: tuple, steps: int,
               allocation: tuple = ("uniform",)) -> list[Candidate]:
    """Every candidate of a search: the pruned copies, then the family's members."""
    cands = (pruned_candidates(teacher, budget, data, importance, steps, allocation)
             + family_candidates(family, budget, data))
    if not cands:
        raise ValueError(f"no candidate fits the budget {budget.label()}: neither a pruned teacher nor the family "
                         f"{family['model']!r} at its narrowest; give a larger budget")
    return cands
