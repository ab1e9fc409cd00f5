"""The search space of a sweep: recipes, sampled by Optuna.

A *recipe* is everything that makes one student's training: the distillation method and its
options, the weight of the label term, the learning rate, the budget in optimizer steps, and
whether the unlabelled pool joins (with which share of labelled samples per batch). The student
alone is a recipe too, without a method: it is searched over the same learning rates and budgets.
On a table a recipe also says which student (``tune.students``), which synthetic transfer rows
join (none, or a kind and a number of rows per training row) and whether the teacher serves
out-of-fold outputs on its training rows. A scikit-learn student is distilled by soft labels
(``kd``: a temperature and the teacher's weight ``alpha``), with no learning rate nor budget.

Parameter names in the Optuna study: ``student``, ``method``, ``<method>.<option>`` (each
method's options are its own, so TPE never mixes DKD's temperatures with KD's), ``alpha``,
``lr``, ``steps``, ``unlabeled``, ``labeled_share``, ``synthetic``, ``synthetic_size``, ``oof``.
The student alone's trials take their student in turn (the user attribute ``student``), so that
every student has its own baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config.tune import NO_LABEL_TERM, TuneConfig, is_range
from ..methods import ALONE


@dataclass(frozen=True)
class Recipe:
    """One student's training. ``method`` is ``None`` for the student alone; ``alpha`` weighs the
    method against the label term (``(1 - alpha) * CE + alpha * method``; ``None``: no label term);
    ``None`` elsewhere keeps the experiment file's setting."""

    method: str | None = None
    options: dict = field(default_factory=dict)
    alpha: float | None = None
    lr: float | None = None
    steps: int | None = None
    unlabeled: bool | None = None
    labeled_share: float | None = None
    student: str | None = None  # the student entry (None: the sweep's one target student)
    synthetic: str | None = None  # "none", or the kind of synthetic rows (None: the data section's setting)
    synthetic_size: float | None = None  # synthetic rows per training row
    oof: bool | None = None  # out-of-fold teacher outputs on the training rows (None: not searched)

    @property
    def distilled(self) -> bool:
        return self.method is not None

    def objective(self) -> list:
        """The engine's weighted term list."""
        if self.method is None:
            return list(ALONE)
        if self.alpha is None:
            return [(self.method, 1.0, dict(self.options))]
        terms = [(self.method, self.alpha, dict(self.options))]
        return [("ce", 1.0 - self.alpha), *terms] if self.alpha < 1 else terms

    def train_changes(self) -> dict:
        """Training settings the recipe sets (the budget is converted to epochs by the caller)."""
        changes = {"lr": self.lr, "unlabeled": self.unlabeled, "labeled_share": self.labeled_share}
        return {k: v for k, v in changes.items() if v is not None}

    def label(self) -> str:
        """A short name: ``kd T=1.2 α=0.95 lr=0.004 5000 steps pool``, ``tree: kd T=1 α=0.5 gibbs x10 oof``."""
        if self.method is None:
            parts = ["student alone"]
        else:
            shown = {("T" if k == "temperature" else k): v for k, v in self.options.items()}
            parts = [self.method, *(f"{k}={_short(v)}" for k, v in shown.items())]
            parts += [f"α={_short(self.alpha)}"] if self.alpha is not None else []
        parts += [f"lr={_short(self.lr)}"] if self.lr is not None else []
        parts += [f"{self.steps} steps"] if self.steps is not None else []
        if self.unlabeled is not None:
            parts.append("pool" if self.unlabeled else "no pool")
        parts += [f"share={_short(self.labeled_share)}"] if self.labeled_share is not None and self.unlabeled else []
        if self.synthetic is not None:
            rows = f"{self.synthetic} x{_short(self.synthetic_size)}"
            parts.append("no synthetic" if self.synthetic == "none" else rows)
        if self.oof is not None:
            parts.append("oof" if self.oof else "no oof")
        text = " ".join(parts)
        return f"{self.student}: {text}" if self.student is not None else text

    @property
    def synthetic_rows(self) -> dict | None:
        """``{"kind", "size"}`` of the synthetic rows the recipe adds, or ``None``."""
        if self.synthetic in (None, "none"):
            return None
        return {"kind": self.synthetic, "size": self.synthetic_size}


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class Space:
    """What a sweep searches (from the experiment's ``tune`` section), for data with or without
    an unlabelled pool.

    Parameters
    ----------
    cfg : TuneConfig
        The ``tune`` section.
    has_pool : bool
        Whether the data has an unlabelled pool (``unlabeled`` is then searched).
    table : bool
        Whether the data is a table: only then are ``cfg.synthetic`` rows searched.
    students : dict, optional
        The students the sweep chooses among, name -> whether it is a scikit-learn model; with
        one (or none given: one PyTorch target student) no ``student`` is sampled.
    oof : list of bool, optional
        Out-of-fold teacher outputs searched (``None``: not searched; the teacher is as given).
    """

    def __init__(self, cfg: TuneConfig, has_pool: bool, table: bool = False, students: dict | None = None,
                 oof: list | None = None):
        self.cfg, self.has_pool, self.table, self.oof = cfg, has_pool, table, oof
        self.students = dict(students or {None: False})

    @property
    def names(self) -> list:
        return list(self.students)

    def distilled(self, trial) -> Recipe:
        """Sample a distilled recipe (a student, a categorical method, then that method's own
        options; the synthetic rows and the teacher's out-of-fold outputs)."""
        cfg = self.cfg
        student = self._student(trial)
        if self.students[student]:  # a scikit-learn student: soft labels, no budget, always the whole pool
            method = "kd"
            options = {"temperature": _suggest(trial, "kd.temperature", cfg.option_ranges("kd")["temperature"])}
            alpha, budget = trial.suggest_float("alpha", *cfg.alpha), (None, None)
        else:
            method = trial.suggest_categorical("method", list(cfg.methods))
            options = {name: _suggest(trial, f"{method}.{name}", value)
                       for name, value in cfg.option_ranges(method).items()}
            alpha = None if method in NO_LABEL_TERM else trial.suggest_float("alpha", *cfg.alpha)
            budget = self._budget(trial)
        kind, size = self._synthetic(trial)
        pool, share = None, None
        if self.has_pool and not self.students[student]:
            rows = kind not in (None, "none")  # synthetic rows join with the pool: never searched without it
            pool = True if rows else _suggest(trial, "unlabeled", cfg.unlabeled_choices)
            if pool and cfg.labeled_share is not None:
                share = trial.suggest_float("labeled_share", *cfg.labeled_share)
        oof = _suggest(trial, "oof", self.oof) if self.oof else None
        return Recipe(method, options, alpha, *budget, unlabeled=pool, labeled_share=share,
                      student=self._shown(student), synthetic=kind, synthetic_size=size, oof=oof)

    def alone(self, trial) -> Recipe:
        """Sample the student alone's recipe: the same learning rates and budgets (none for a
        scikit-learn student). Its student is the trial's user attribute ``student``."""
        student = trial.user_attrs.get("student", self.names[0])
        if student not in self.students:
            raise ValueError(f"student {student!r} of a trial is not among the sweep's students {self.names}")
        budget = (None, None) if self.students[student] else self._budget(trial)
        return Recipe(None, {}, None, *budget, student=self._shown(student))

    def student_at(self, number: int):
        """The student of the alone study's trial ``number``: each in turn."""
        return self.names[number % len(self.names)]

    def _student(self, trial):
        return self.names[0] if len(self.names) == 1 else trial.suggest_categorical("student", self.names)

    def _shown(self, student):
        return student if len(self.names) > 1 else None

    def _synthetic(self, trial) -> tuple:
        cfg = self.cfg
        if not (self.table and cfg.synthetic):
            return None, None
        kind = _suggest(trial, "synthetic", list(cfg.synthetic))
        if kind == "none":
            return kind, None
        low, high = cfg.synthetic_size
        if low >= 1 and math.ceil(low) < math.floor(high):
            return kind, trial.suggest_int("synthetic_size", math.ceil(low), math.floor(high), log=True)
        return kind, trial.suggest_float("synthetic_size", low, high, log=True)

    def _budget(self, trial) -> tuple:
        lr = trial.suggest_float("lr", *self.cfg.lr, log=True) if self.cfg.lr else None
        steps = trial.suggest_int("steps", *self.cfg.steps, log=True) if self.cfg.steps else None
        return lr, steps

    def recipe(self, params: dict, distilled: bool, student=None) -> Recipe:
        """The recipe of a finished trial's ``params`` (fixed options included); ``student``: the
        alone trial's student (its user attribute)."""
        import optuna

        fixed = optuna.trial.FixedTrial(params)
        if student is not None:
            fixed.set_user_attr("student", student)
        return self.distilled(fixed) if distilled else self.alone(fixed)


def _suggest(trial, name: str, value):
    """``[low, high]``: a float in that range; a list: one of its choices; else the value, fixed."""
    if is_range(value):
        return trial.suggest_float(name, float(value[0]), float(value[1]))
    if isinstance(value, list):
        return value[0] if len(value) == 1 else trial.suggest_categorical(name, value)
    return value
