"""The ``tune`` section of an experiment file: what ``kdistill tune`` searches, and how much.

A range is ``[low, high]`` (two numbers), a list of choices (true/false, names) or one fixed
value. Every method and option is checked against the method registry, so a misspelt name is an
error before any training.

The tabular levers (searched on tables only)::

    tune:
      students: [tree, boosted]       # the sweep chooses among these student entries
      synthetic: [none, munge, gibbs] # synthetic transfer rows: none, or one kind ...
      synthetic_size: [3, 50]         # ... with this many rows per training row (log scale)
      oof: [true, false]              # out-of-fold teacher outputs (a scikit-learn teacher the sweep fits)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from .. import methods
from .section import Section

#: Options searched for a method unless ``tune.options`` says otherwise: the ranges its paper
#: explores, narrowed to what a small student can use (DKD's beta of 8 is tuned for CIFAR-100).
DEFAULT_OPTIONS = {
    "dkd": {"alpha": [0.5, 2.0], "beta": [0.5, 8.0]},
    "dist": {"beta": [0.5, 2.0], "gamma": [0.5, 2.0]},
}
#: Methods whose temperature is searched over ``tune.temperature`` (fm stays at T = 1).
TEMPERED = ("kd", "dkd", "dist")
#: Methods without a label term: their recipes have no ``alpha``.
NO_LABEL_TERM = ("fm",)
#: Choices of ``tune.synthetic``: no synthetic rows, or the kinds of :mod:`kdistill.data.synthetic`.
SYNTHETIC_CHOICES = ("none", "munge", "gibbs", "gaussian")
#: Synthetic rows per training row, at most (``kdistill.data.synthetic.MAX_SIZE``).
MAX_SYNTHETIC_SIZE = 200


def is_range(value) -> bool:
    """``[low, high]``: two numbers (not booleans)."""
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _option_problem(method: str, option: str, value) -> str | None:
    allowed = methods.options(method)
    if option not in allowed:
        return f"{option!r} is not an option of method {method!r}; allowed: {allowed or 'none'}"
    if isinstance(value, list) and not value:
        return f"{method}.{option}: an empty list; give [low, high], a list of choices or one value"
    if is_range(value) and not value[0] < value[1]:
        return f"{method}.{option}: a range must be [low, high] with low < high, got {value}"
    for probe in (value if isinstance(value, list) else [value]):
        try:
            methods.build(method, **{option: probe})
        except (TypeError, ValueError) as exc:
            return f"{method}.{option}: {probe!r} cannot be used: {exc}"
    return None


class TuneConfig(Section):
    """Optuna search over recipes: a registered method with its options, the weight of the label
    term, the temperature, the learning rate, the optimizer-step budget and the unlabelled pool;
    the student alone gets its own search over the learning rate and the budget.

    On tables also: ``students`` (names of student entries the sweep chooses among, each compared
    with its own student alone), ``synthetic`` (kinds of synthetic rows searched, ``none``
    included; ``None``: the data section's own setting is kept) with ``synthetic_size`` (rows per
    training row, searched on a log scale), and ``oof`` (out-of-fold teacher outputs on or off;
    ``None``: both, when the sweep fits a scikit-learn teacher whose ``folds`` is not 0)."""

    student: str | None = None
    """The student whose model and training settings every recipe uses (default: the first distilled student)."""
    students: list[str] | None = None
    """Tables: student entries the sweep chooses among, each compared with its own student alone."""
    methods: list[str] = ["kd"]
    """Distillation methods searched (any registered method that learns from a teacher)."""
    alpha: list[float] = [0.1, 1.0]
    """loss = (1 - alpha) * CE + alpha * method (fm: no label term)."""
    temperature: list[float] = [1.0, 8.0]
    """Of kd, dist and dkd (fm stays at T = 1)."""
    options: dict[str, dict[str, Any]] = {}
    """Per method: {option: [low, high] | [choices] | value}, e.g. {kd: {standardize: [false, true]}}."""
    lr: list[float] | None = None
    """[low, high], log scale, for every recipe; null keeps the file's lr."""
    steps: list[int] | None = None
    """[low, high] optimizer steps, log scale, for every recipe; null keeps the file's epochs."""
    unlabeled: list[bool] | None = None
    """With an unlabelled pool: [true, false] (the default) searches whether distilled students use it."""
    labeled_share: list[float] | None = None
    """[low, high]: the share of labelled samples per batch, when the pool is used."""
    synthetic: list[str] | None = None
    """Tables: kinds of synthetic rows searched, e.g. [none, munge, gibbs] (null: data.synthetic kept)."""
    synthetic_size: list[float] = [3.0, 50.0]
    """Synthetic rows per training row, log scale (at most 200)."""
    oof: list[bool] | None = None
    """[true, false]: out-of-fold teacher outputs searched (a scikit-learn teacher the sweep fits)."""
    trials: int = Field(20, ge=1)
    """Finished distilled trials."""
    baseline_trials: int | None = Field(None, ge=1)
    """Finished trials of the student alone (default: half of trials, at least 4)."""
    top: int = Field(3, ge=1)
    """Distilled candidates re-run with other seeds (with the best of the student alone)."""
    repeats: int = Field(3, ge=2)
    """Seeds each candidate is re-run with (at least 2): the validation noise."""
    storage: str | None = None
    """An Optuna database URL; default: SQLite in the run folder."""
    study_name: str | None = None
    """The Optuna study's name (default: the experiment's name)."""
    pruner: Literal["percentile", "median", "none"] = "percentile"
    """percentile (the bottom 25%), median or none."""

    @field_validator("alpha", "temperature", "lr", "steps", "labeled_share", "synthetic_size")
    @classmethod
    def _range(cls, v, info):
        if v is None:
            return v
        field = info.field_name
        low_ok = {"alpha": lambda a: a >= 0, "steps": lambda a: a >= 1}.get(field, lambda a: a > 0)
        high_ok = {"alpha": lambda b: b <= 1, "labeled_share": lambda b: b < 1,
                   "synthetic_size": lambda b: b <= MAX_SYNTHETIC_SIZE}.get(field, lambda b: True)
        if len(v) != 2 or not (low_ok(v[0]) and high_ok(v[1]) and v[0] < v[1]):
            bound = {"alpha": "0 <= low < high <= 1", "steps": "1 <= low < high (optimizer steps)",
                     "labeled_share": "0 < low < high < 1",
                     "synthetic_size": f"0 < low < high <= {MAX_SYNTHETIC_SIZE} (rows per training row)"}.get(
                field, "0 < low < high")
            raise ValueError(f"must be [low, high] with {bound}, got {v}")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must name one or more distinct registered methods, got {v}")
        for name in v:
            method = methods.build(name)  # an unknown name: the registry's error, with a did-you-mean
            if not method.needs_teacher:
                raise ValueError(f"{name!r} learns without a teacher; the student alone is always searched as the "
                                 f"baseline, so list distillation methods only (e.g. kd, dist, dkd, fm)")
        return v

    @field_validator("unlabeled", "oof")
    @classmethod
    def _choices(cls, v):
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError(f"must be [true], [false] or [true, false], got {v}")
        return v

    @field_validator("students")
    @classmethod
    def _students(cls, v, info):
        if v is None:
            return v
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must name one or more distinct student entries of the experiment, got {v}")
        if info.data.get("student") is not None:
            raise ValueError(f"give tune.student (one target student) or tune.students (the sweep chooses among "
                             f"them), not both; got student={info.data['student']!r} and students={v}")
        return v

    @field_validator("synthetic")
    @classmethod
    def _synthetic(cls, v):
        if v is None:
            return v
        wrong = [k for k in v if k not in SYNTHETIC_CHOICES]
        if not v or wrong or len(set(v)) != len(v):
            raise ValueError(f"must list distinct synthetic-row choices among {list(SYNTHETIC_CHOICES)} (none: no "
                             f"synthetic rows), got {v}")
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v, info):
        listed = info.data.get("methods") or []
        for method, ranges in v.items():
            if method not in listed:
                raise ValueError(f"{method!r} is not among tune.methods {listed}; its options would never be used")
            for option, value in ranges.items():
                problem = _option_problem(method, option, value)
                if problem:
                    raise ValueError(problem)
        return v

    @property
    def unlabeled_choices(self) -> list[bool]:
        """Whether distilled trials use the unlabelled pool: ``unlabeled``, else both searched."""
        return self.unlabeled if self.unlabeled is not None else [True, False]

    @property
    def searches_synthetic(self) -> bool:
        """Whether the sweep chooses the synthetic rows itself (``synthetic`` given)."""
        return self.synthetic is not None

    def option_ranges(self, method: str) -> dict:
        """The options searched (or fixed) for ``method``: defaults, then the file's ``options``."""
        ranges = dict(DEFAULT_OPTIONS.get(method, {}))
        if method in TEMPERED:
            ranges["temperature"] = self.temperature
        return {**ranges, **self.options.get(method, {})}
