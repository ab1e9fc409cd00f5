"""One trial of a sweep: a recipe trained on the sweep's split and scored on validation.

Budgets are optimizer steps, the same for every recipe whatever its training set (labelled
samples alone, or with the unlabelled pool: an epoch of those is ten times longer): a trial
trains for the epochs of that set the steps reach into, the last one cut short (``max_steps``).
Every fit ends at its best validation epoch; the trial's value is that epoch's validation
accuracy.

Pruning compares like with like: a trial reports its validation accuracy at eight checkpoints,
each an eighth of *its own* budget, so trials with other budgets or epoch lengths are compared
at the same share of their training, and the pruner never stops one before half of it, nor
before 5 trials have finished (Optuna's pruners compare with finished trials only: with 3 of
them, the bottom-quarter rule pruned 13 of 17 trials of a digits sweep).

A scikit-learn student has no budget and no epochs: distilled, it is fitted once through
:func:`~kdistill.study.members.distil_estimator` on the teacher's served outputs (the train split,
then the pool and the synthetic rows; labels of unlabelled rows are -1); alone, through ``.fit``
on the train split. Its trials are never pruned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import torch

from ..config import Experiment
from ..data import epoch_plan
from ..data.synthetic import with_synthetic
from ..engine import TrainConfig, fit
from ..engine.config import step_budget, total_steps, within_steps
from ..study import ModelSpec, members, student_spec
from .space import Recipe

log = logging.getLogger("kdistill")

CHECKPOINTS = 8  # progress reports per trial, for the pruner
WARMUP_CHECKPOINTS = 4  # never pruned before half the budget: under a decaying schedule, early ranks mislead
STARTUP_TRIALS = 5  # finished trials before any is pruned: a percentile of 3 survivors prunes nearly everything


def target_student(exp: Experiment, name: str | None = None):
    """Whose model and training settings the recipes use: student ``name``, else ``tune.student``
    (or the first of ``tune.students``), else the first distilled student, else the first student."""
    cfg = exp.tune
    wanted = name or (cfg.student or (cfg.students or [None])[0] if cfg is not None else None)
    if wanted is not None:
        found = next((s for s in exp.students if s.name == wanted), None)
        if found is None:
            raise ValueError(f"tune.students: {wanted!r} is not a student; students: "
                             f"{[s.name for s in exp.students]}")
        return found
    return next((s for s in exp.students if s.distilled), exp.students[0])


def tuned_students(exp: Experiment) -> dict:
    """The students the sweep chooses among, name -> whether it is a scikit-learn model: those
    of ``tune.students``, else the one target student (keyed ``None``)."""
    names = exp.tune.students if exp.tune is not None and exp.tune.students else None
    if names is None or len(names) == 1:
        return {None: bool(exp.student_model(target_student(exp)).sklearn)}
    return {name: bool(exp.student_model(target_student(exp, name)).sklearn) for name in names}


def fits_sklearn_teacher(exp: Experiment, given=None) -> bool:
    """Whether the sweep fits the experiment's scikit-learn teacher itself (none ``given`` from Python)."""
    t = exp.teacher
    return given is None and t.fit and t.file is None and bool(t.sklearn)


def check_target(exp: Experiment, teacher=None) -> None:
    """Refuse, before anything trains, a ``tune.students`` entry that is not a student, and
    ``tune.oof`` where the sweep does not fit a scikit-learn teacher."""
    tuned_students(exp)
    oof = exp.tune.oof if exp.tune is not None else None
    if oof is not None and not fits_sklearn_teacher(exp, teacher):
        raise ValueError(f"tune.oof = {oof}: out-of-fold teacher outputs need a scikit-learn teacher that the sweep "
                         f"fits (teacher.model an estimator, fit true, no teacher.file, no teacher given from "
                         f"Python); remove tune.oof")


def is_sklearn(exp: Experiment, recipe: Recipe) -> bool:
    return bool(exp.student_model(target_student(exp, recipe.student)).sklearn)


def recipe_spec(exp: Experiment, recipe: Recipe, data, name: str | None = None) -> ModelSpec:
    """The study's model spec of ``recipe``: its student's model, the recipe's objective, and
    its budget of optimizer steps over the training set it uses (``max_steps``, with the epochs it
    reaches into; a scikit-learn student has none)."""
    spec = student_spec(exp, target_student(exp, recipe.student), objective=recipe.objective(),
                        **recipe.train_changes())
    if is_sklearn(exp, recipe):  # the model's options and the recipe's soft-label settings
        hyper = {**exp.student_model(target_student(exp, recipe.student)).options,
                 **(members.sklearn_options(spec.objective) or {}), "recipe": recipe.label()}
        return replace(spec, name=name or recipe.label(), hyperparams=hyper)
    train = dict(spec.train)
    per_epoch = steps_per_epoch(data, recipe, train)
    if recipe.steps is not None:
        train.update(step_budget(recipe.steps, per_epoch))
    cfg = TrainConfig(**train)
    hyper = {k: v for k, v in spec.hyperparams.items() if k in ("channels", "hidden")}
    hyper.update(recipe=recipe.label(), epochs=within_steps(cfg, per_epoch).epochs, steps=total_steps(cfg, per_epoch))
    return replace(spec, name=name or recipe.label(), train=train, hyperparams=hyper)


def steps_per_epoch(data, recipe: Recipe, train: dict) -> int:
    """Optimizer steps in one epoch of the set ``recipe`` trains on."""
    cfg = TrainConfig(**{k: v for k, v in train.items() if k != "epochs"})
    dataset = data.training(distilled=recipe.distilled and cfg.unlabeled, views=cfg.views)
    return len(epoch_plan(dataset, cfg.batch_size, True, 0, cfg.labeled_share))


def recipe_data(data, recipe: Recipe, seed: int, made: dict | None = None):
    """The splits ``recipe`` trains on: ``data``, with the recipe's synthetic rows (made from the
    train split, seeded by ``seed``, the sweep's split seed) added to its unlabelled inputs;
    ``made`` keeps those already made, by kind and size."""
    rows = recipe.synthetic_rows
    if rows is None:
        return data
    made = {} if made is None else made
    key = (rows["kind"], rows["size"])
    if key not in made:
        made[key] = with_synthetic(data, rows["kind"], rows["size"], seed)
    return made[key]


class Trials:
    """Optuna objective of one study of the sweep: ``distilled`` or ``alone`` recipes, sampled
    (sweep trials) or fixed with a seed (re-runs of a candidate, :mod:`.decide`). ``teachers``
    holds the served teacher by whether it gives out-of-fold outputs (``{False: teacher}`` when
    those are not searched)."""

    def __init__(self, exp: Experiment, space, data, teachers: dict, quiet: bool, kind: str, worker: int = 0):
        self.exp, self.space, self.data, self.teachers, self.quiet, self.kind = exp, space, data, teachers, quiet, kind
        self.worker = worker  # 0: the sweep's own process; 1..N: a worker of --jobs N
        self.made: dict = {}  # synthetic splits made so far, by (kind, size)

    def __call__(self, trial) -> float:
        distilled = self.kind == "distilled" or trial.user_attrs.get("distilled", False)
        if not distilled and "student" not in trial.user_attrs and len(self.space.names) > 1:
            trial.set_user_attr("student", self.space.student_at(trial.number))
        recipe = self.space.distilled(trial) if distilled else self.space.alone(trial)
        seed = int(trial.user_attrs.get("seed", self.exp.seeds[0]))
        data = recipe_data(self.data, recipe, self.exp.seeds[0], self.made)
        spec = recipe_spec(self.exp, recipe, data)
        sklearn = is_sklearn(self.exp, recipe)
        callbacks = [] if "seed" in trial.user_attrs or sklearn else [_Pruning(trial)]
        teacher = self.teachers[bool(recipe.oof)] if distilled else None
        trial.set_user_attr("worker", self.worker)
        built = _builds(teacher)
        start = time.perf_counter()
        torch.manual_seed(seed)
        model = spec.make(data.input_shape, data.num_classes, _module(self.teachers[False]), data)
        try:
            if sklearn:
                model, _ = members.train(spec, model, data, teacher, seed=seed, options={})
                logits, labels = members.logits(model, data.val, data.num_classes)
                return float((logits.argmax(1) == labels).float().mean())
            history = fit(model, data, objective=spec.objective, teacher=teacher, seed=seed, quiet=self.quiet,
                          callbacks=callbacks, **spec.train)
            return max(r["val_accuracy"] for r in history.epochs)
        finally:  # a pruned trial cost its time too
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
            epochs = 0 if sklearn else callbacks[0].epochs if callbacks else spec.hyperparams["epochs"]
            trial.set_user_attr("live_teacher_epochs", epochs if distilled and self._live() else 0)
            trial.set_user_attr("cache_builds", _builds(teacher) - built)  # e.g. the teacher on new synthetic rows

    def _live(self) -> bool:
        """Whether the teacher runs on every training batch (random augmentation without views)."""
        return self.data.augment is not None


def _module(teacher):
    """The model inside a served teacher (what a student pruned from the teacher is made from)."""
    inner = getattr(teacher, "teacher", teacher)
    return getattr(inner, "module", inner)


def _builds(teacher) -> int:
    """Cache entries ``teacher`` (a :class:`~kdistill.teachers.CachedTeacher`) built so far."""
    return sum(e.get("build_seconds") is not None for e in getattr(teacher, "entries", []))


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
