"""The ``shrink`` section of an experiment's default ``student``: the budget and the search of
``kdistill shrink`` (see :mod:`kdistill.shrink`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ..shrink.budget import check_budget, check_family
from .section import Section, checked


class ShrinkConfig(Section):
    """``budget`` (e.g. ``{params: 0.1}`` or ``{latency_ms: 0.2, batch: 1}``), the ``family``
    scaled to it, the pruning criteria, how the student is chosen, and the shared storage."""

    budget: dict[str, Any]
    """One measure: params or macs (a share if at most 1, else a count), size (a share), size_mb, bytes, latency_ms
    or latency (a share), with batch for a latency."""
    family: dict[str, Any] | None = None
    """{model, options, width: [option...], depth: {option: [length...]}}: the family scaled in width (and tried at
    each depth) to the budget (default: student.model)."""
    importance: list[Literal["magnitude", "taylor"]] = Field(default_factory=lambda: ["magnitude"], min_length=1)
    """Pruning criteria tried: one pruned candidate per criterion and budget share."""
    iterative_steps: int = Field(1, ge=1, le=100)
    """Pruning steps to reach each ratio."""
    allocation: list[Literal["uniform", "global"]] = Field(default_factory=lambda: ["uniform"], min_length=1)
    """How the pruning is spread over the layers, one pruned candidate per allocation: uniform (the same channel share
    everywhere) or global (the channels of all layers ranked together)."""
    choose: Literal["accurate", "smallest"] = "accurate"
    """accurate: the most accurate on validation; smallest: the smallest within tolerance of the teacher."""
    tolerance: float | None = Field(None, ge=0.0, lt=1.0)
    """Accuracy points the chosen student may lose against the teacher (choose: smallest)."""
    references: Literal["front", "all", "chosen"] = "front"
    """Architectures also trained alone, as the front's reference points: those on the front, every candidate, or
    only the chosen one."""
    storage: str | None = None
    """Optuna database URL shared by every worker (default: sqlite in the run folder)."""
    study_name: str = Field("shrink", min_length=1)
    """The Optuna study's name on the storage."""

    @field_validator("budget")
    @classmethod
    def _budget(cls, value):
        return checked(check_budget, value, "budget")

    @field_validator("importance", "allocation")
    @classmethod
    def _distinct(cls, value):
        if len(set(value)) != len(value):
            raise ValueError(f"{value!r}: each value once")
        return value

    @field_validator("family")
    @classmethod
    def _family(cls, value):
        if value is None:
            return value
        return checked(check_family, value)

    def search_options(self) -> dict:
        return {"budget": self.budget, "family": self.family, "importance": list(self.importance),
                "iterative_steps": self.iterative_steps, "allocation": list(self.allocation), "choose": self.choose,
                "tolerance": self.tolerance, "references": self.references}
