"""One trial of a sweep: a recipe trained on the sweep's split and scored on validation.

Budgets are optimizer steps, the same for every recipe whatever its training set (labelled
samples alone, or with the unlabelled pool: an epoch of those is ten times longer), turned into
whole epochs of that set. Every fit ends at its best validation epoch; the trial's value is that
epoch's validation accuracy.

Pruning compares like with like: a trial reports its validation accuracy at eight checkpoints,
each an eighth of *its own* budget, so trials with other budgets or epoch lengths are compared
at the same share of their training, and the pruner never stops one before half of it, nor
before 5 trials have finished (Optuna's pruners compare with finished trials only: with 3 of
them, the bottom-quarter rule pruned 13 of 17 trials of a digits sweep).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import torch

from ..config import Experiment
from ..data import epoch_plan
from ..engine import TrainConfig, fit
from ..study import ModelSpec, student_spec
from .space import Recipe

log = logging.getLogger("kdistill")

CHECKPOINTS = 8  # progress reports per trial, for the pruner
WARMUP_CHECKPOINTS = 4  # never pruned before half the budget: under a decaying schedule, early ranks mislead
STARTUP_TRIALS = 5  # finished trials before any is pruned: a percentile of 3 survivors prunes nearly everything


def target_student(exp: Experiment):
    """Whose model and training settings the recipes use: ``tune.student``, else the first
    distilled student, else the first student."""
    wanted = exp.tune.student if exp.tune is not None else None
    if wanted is not None:
        return next(s for s in exp.students if s.name == wanted)
    return next((s for s in exp.students if s.distilled), exp.students[0])


def check_target(exp: Experiment) -> None:
    """Refuse, before anything trains, a target student that is not a PyTorch model."""
    target = target_student(exp)
    if getattr(exp.student_model(target), "sklearn", False):
        raise ValueError(f"kdistill tune searches recipes of PyTorch students; student {target.name!r} is a "
                         f"scikit-learn model (set tune.student to a PyTorch one)")


def recipe_spec(exp: Experiment, recipe: Recipe, data, name: str | None = None) -> ModelSpec:
    """The study's model spec of ``recipe``: the target student's model, the recipe's objective,
    and its budget as whole epochs of the training set it uses (at least one)."""
    spec = student_spec(exp, target_student(exp), objective=recipe.objective(), **recipe.train_changes())
    train = dict(spec.train)
    per_epoch = steps_per_epoch(data, recipe, train)
    if recipe.steps is not None:
        train["epochs"] = max(1, round(recipe.steps / per_epoch))
    cfg = TrainConfig(**train)
    hyper = {k: v for k, v in spec.hyperparams.items() if k in ("channels", "hidden")}
    hyper.update(recipe=recipe.label(), epochs=cfg.epochs, steps=cfg.epochs * per_epoch)
    return replace(spec, name=name or recipe.label(), train=train, hyperparams=hyper)


def steps_per_epoch(data, recipe: Recipe, train: dict) -> int:
    """Optimizer steps in one epoch of the set ``recipe`` trains on."""
    cfg = TrainConfig(**{k: v for k, v in train.items() if k != "epochs"})
    dataset = data.training(distilled=recipe.distilled and cfg.unlabeled, views=cfg.views)
    return len(epoch_plan(dataset, cfg.batch_size, True, 0, cfg.labeled_share))


class Trials:
    """Optuna objective of one study of the sweep: ``distilled`` or ``alone`` recipes, sampled
    (sweep trials) or fixed with a seed (re-runs of a candidate, :mod:`.decide`)."""

    def __init__(self, exp: Experiment, space, data, teacher, quiet: bool, kind: str, worker: int = 0):
        self.exp, self.space, self.data, self.teacher, self.quiet, self.kind = exp, space, data, teacher, quiet, kind
        self.worker = worker  # 0: the sweep's own process; 1..N: a worker of --jobs N

    def __call__(self, trial) -> float:
        distilled = self.kind == "distilled" or trial.user_attrs.get("distilled", False)
        recipe = self.space.distilled(trial) if distilled else self.space.alone(trial)
        seed = int(trial.user_attrs.get("seed", self.exp.seeds[0]))
        spec = recipe_spec(self.exp, recipe, self.data)
        callbacks = [] if "seed" in trial.user_attrs else [_Pruning(trial)]
        trial.set_user_attr("worker", self.worker)
        start = time.perf_counter()
        torch.manual_seed(seed)
        model = spec.build(self.data.input_shape, self.data.num_classes)
        try:
            history = fit(model, self.data, objective=spec.objective, teacher=self.teacher if distilled else None,
                          seed=seed, quiet=self.quiet, callbacks=callbacks, **spec.train)
        finally:  # a pruned trial cost its time too
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
            epochs = callbacks[0].epochs if callbacks else spec.hyperparams["epochs"]  # train may leave it unset
            trial.set_user_attr("live_teacher_epochs", epochs if distilled and self._live() else 0)
        return max(r["val_accuracy"] for r in history.epochs)

    def _live(self) -> bool:
        """Whether the teacher runs on every training batch (random augmentation without views)."""
        return self.data.augment is not None


class _Pruning:
    """Engine callback: report validation accuracy at each eighth of the trial's budget; stop a
    trial Optuna prunes."""

    def __init__(self, trial):
        self.trial, self.reported, self.epochs = trial, 0, 0

    def on_epoch_end(self, state) -> None:
        import optuna

        self.epochs = state.epoch + 1
        done = (state.epoch + 1) / state.config.epochs
        value = state.history[-1]["val_accuracy"]
        while self.reported < CHECKPOINTS and (self.reported + 1) / CHECKPOINTS <= done + 1e-9:
            self.reported += 1
            self.trial.report(value, self.reported)
        if self.reported and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {state.epoch + 1} of {state.config.epochs}")


def pruner(kind: str):
    """Prune a trial only when it is hopeless: in the bottom quarter (``percentile``) or below the
    median (``median``) of finished trials at the same share of their budgets, never before 5
    finished trials nor before half the budget."""
    import optuna

    warmup = {"n_startup_trials": STARTUP_TRIALS, "n_warmup_steps": WARMUP_CHECKPOINTS}
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(25.0, **warmup)
    if kind == "median":
        return optuna.pruners.MedianPruner(**warmup)
    return optuna.pruners.NopPruner()
