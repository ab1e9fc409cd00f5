"""The search space of a sweep: recipes, sampled by Optuna.

A *recipe* is everything that makes one student's training: the distillation method and its
options, the weight of the label term, the learning rate, the budget in optimizer steps, and
whether the unlabelled pool joins (with which share of labelled samples per batch). The student
alone is a recipe too, without a method: it is searched over the same learning rates and budgets.

Parameter names in the Optuna study: ``method``, ``<method>.<option>`` (each method's options
are its own, so TPE never mixes DKD's temperatures with KD's), ``alpha``, ``lr``, ``steps``,
``unlabeled``, ``labeled_share``.
"""

from __future__ import annotations

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
        """A short name: ``kd T=1.2 α=0.95 lr=0.004 5000 steps pool``."""
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
        return " ".join(parts)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class Space:
    """What a sweep searches (from the experiment's ``tune`` section), for data with or without
    an unlabelled pool."""

    def __init__(self, cfg: TuneConfig, has_pool: bool):
        self.cfg, self.has_pool = cfg, has_pool

    def distilled(self, trial) -> Recipe:
        """Sample a distilled recipe (a categorical method, then that method's own options)."""
        cfg = self.cfg
        method = trial.suggest_categorical("method", list(cfg.methods))
        options = {name: _suggest(trial, f"{method}.{name}", value)
                   for name, value in cfg.option_ranges(method).items()}
        alpha = None if method in NO_LABEL_TERM else trial.suggest_float("alpha", *cfg.alpha)
        pool, share = None, None
        if self.has_pool:
            pool = _suggest(trial, "unlabeled", cfg.unlabeled_choices)
            if pool and cfg.labeled_share is not None:
                share = trial.suggest_float("labeled_share", *cfg.labeled_share)
        return Recipe(method, options, alpha, *self._budget(trial), unlabeled=pool, labeled_share=share)

    def alone(self, trial) -> Recipe:
        """Sample the student alone's recipe: the same learning rates and budgets."""
        return Recipe(None, {}, None, *self._budget(trial))

    def _budget(self, trial) -> tuple:
        lr = trial.suggest_float("lr", *self.cfg.lr, log=True) if self.cfg.lr else None
        steps = trial.suggest_int("steps", *self.cfg.steps, log=True) if self.cfg.steps else None
        return lr, steps

    def recipe(self, params: dict, distilled: bool) -> Recipe:
        """The recipe of a finished trial's ``params`` (fixed options included)."""
        import optuna

        fixed = optuna.trial.FixedTrial(params)
        return self.distilled(fixed) if distilled else self.alone(fixed)


def _suggest(trial, name: str, value):
    """``[low, high]``: a float in that range; a list: one of its choices; else the value, fixed."""
    if is_range(value):
        return trial.suggest_float(name, float(value[0]), float(value[1]))
    if isinstance(value, list):
        return value[0] if len(value) == 1 else trial.suggest_categorical(name, value)
    return value
