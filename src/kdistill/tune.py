"""Sweeps: Optuna over alpha, temperature and learning rate, maximizing validation accuracy.

The teacher is trained once (and saved in the run folder, so a resumed sweep reuses it); each
trial trains the chosen student with ``(1 - alpha) * CE + alpha * KD(T)`` and reports its
validation accuracy per epoch, so hopeless trials are pruned. Test data is never looked at
while searching: at the end, the best trial is retrained and evaluated on test in a normal
study, next to the students trained without a teacher.

The study lives in a SQLite file in the run folder (``tune.db``) unless a database URL is
given; running the same command again resumes it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from .config import Experiment, train_options
from .config.schema import TuneConfig
from .data import read_source
from .engine import TrainConfig, fit
from .files import atomic_write, make_dir
from .report import ParamsDisplay, TrialsDisplay, save_figure, write_report
from .study import (
    finish_run_dir,
    free_dir,
    load_splits,
    read_unlabeled,
    run_study,
    student_spec,
    teacher_cache_dir,
    teacher_spec,
    write_data_summary,
)
from .teachers import CachedTeacher
from .weights import load_weights, save_weights

log = logging.getLogger("kdistill")

MARKER = "tune-experiment.json"


def tune(exp: Experiment, trials: int | None = None, out=None, storage: str | None = None,
         quiet: bool = False, cache_dir=None) -> dict:
    """Run (or resume) the sweep of ``exp`` and evaluate its best trial on test.

    Parameters
    ----------
    exp : Experiment
        The experiment; its ``tune`` section gives the ranges (defaults apply without one).
    trials : int, optional
        Number of finished trials wanted in the study (overrides ``tune.trials``); a resumed
        study runs only the missing ones.
    out : path, optional
        Run folder, ``runs/<name>-tune`` by default. A folder holding a sweep of the same
        experiment is resumed; any other existing folder is left alone (``out-2`` is used).
    storage : str, optional
        Optuna database URL (overrides ``tune.storage``); default ``sqlite:///<out>/tune.db``.
    cache_dir : path, optional
        Teacher-output cache folder (see :func:`~kdistill.study.teacher_cache_dir`).

    Returns
    -------
    dict
        The summary also written to ``tune.json``: best trial, parameters, validation and test accuracy.
    """
    import optuna

    cfg = exp.tune or TuneConfig()
    wanted = trials if trials is not None else cfg.trials
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise ValueError(f"trials must be an integer >= 1, got {wanted!r}")
    folder = _folder(exp, out)
    url = storage or cfg.storage or f"sqlite:///{_database(folder)}"
    with warnings.catch_warnings():  # heartbeats are marked experimental; they fail trials of killed processes
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name=cfg.study_name or exp.name, direction="maximize", load_if_exists=True,
            storage=optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30),
            pruner=_pruner(cfg.pruner, TrainConfig(**train_options(exp.train)).epochs))
        optuna.storages.fail_stale_trials(study)
    # Seeded, but never with the same seed twice for one study: a resumed sweep must not repeat its first trials.
    study.sampler = optuna.samplers.TPESampler(seed=exp.seeds[0] + len(study.trials))
    done = _finished(study)
    if done:
        log.info("resuming study %r: %d of %d trial(s) already finished", study.study_name, done, wanted)
    source = read_source(exp.data, exp.path)
    unlabeled = read_unlabeled(exp, source)
    data = load_splits(exp, exp.seeds[0], source, unlabeled)
    if data.val is None:
        raise ValueError("tune maximizes validation accuracy, so it needs a validation split; set data.val_size > 0")
    target = _target(exp, cfg)
    teacher = CachedTeacher(_teacher(exp, data, folder, quiet),
                            cache_dir=teacher_cache_dir(folder, cache_dir))  # one pass for all trials
    objective = _Objective(exp, cfg, target, data, teacher, quiet)
    if wanted > done:
        study.optimize(objective, n_trials=wanted - done, callbacks=[_log_trial])
    return _finish(exp, study, target, source, unlabeled, folder, quiet, cache_dir)


def _pruner(kind: str, epochs: int):
    """Prune a trial only when it is hopeless: in the bottom quarter (``percentile``) or below the
    median (``median``) of earlier trials at the same epoch, never before 3 finished trials nor
    before a quarter of the epoch budget (at least 5 epochs): slow starters are not hopeless."""
    import optuna

    warmup = {"n_startup_trials": 3, "n_warmup_steps": max(5, epochs // 4)}
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(25.0, **warmup)
    if kind == "median":
        return optuna.pruners.MedianPruner(**warmup)
    return optuna.pruners.NopPruner()


def _folder(exp: Experiment, out) -> Path:
    """The run folder: resumed when it holds a sweep of this experiment, else a fresh one."""
    asked = Path(out) if out is not None else Path("runs") / f"{exp.name}-tune"
    marker = _fingerprint(exp)
    if (asked / MARKER).is_file():
        if json.loads((asked / MARKER).read_text()) != marker:
            raise ValueError(f"{asked} holds a sweep of a different experiment (or other data or ranges); "
                             f"choose another --out, or undo the changes to resume it")
        make_dir(asked / "weights", inside=asked)
        return asked
    folder, moved = free_dir(asked)
    if moved:
        log.warning("%s already holds another run; writing to %s instead", asked, folder)
    make_dir(folder / "weights", inside=folder)
    atomic_write(folder / MARKER, json.dumps(marker, indent=2) + "\n")
    return folder


def _database(folder: Path) -> Path:
    """The sweep's own SQLite file in its folder; a link there is refused, never followed."""
    path = folder.absolute() / "tune.db"
    if path.is_symlink():
        raise OSError(f"{path} is a symbolic link; kdistill writes the sweep's database only into a file of its own: "
                      f"remove the link, or give --storage")
    return path


def _fingerprint(exp: Experiment) -> dict:
    """What must not change for a sweep to resume: everything but the number of trials and storage."""
    dump = exp.model_dump(mode="json")
    for key in ("trials", "storage"):
        (dump.get("tune") or {}).pop(key, None)
    return dump


def _finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _target(exp: Experiment, cfg: TuneConfig):
    names = [cfg.student] if cfg.student else [s.name for s in exp.students if any(m.name == "kd" for m in s.methods)]
    if not names:
        raise ValueError("tune needs a student with a kd term (methods: [{name: ce}, {name: kd}]) or tune.student")
    return next(s for s in exp.students if s.name == names[0])


def _teacher(exp: Experiment, data, folder: Path, quiet: bool):
    """The teacher, trained once per sweep; a resumed sweep loads the saved weights."""
    spec = teacher_spec(exp)
    path = folder / "weights" / "tune-teacher.safetensors"
    torch.manual_seed(exp.seeds[0])
    model = spec.build(data.input_shape, data.num_classes)
    if path.is_file():
        load_weights(model, path)  # a truncated or mismatched file is a clear error
        log.info("loaded the sweep's teacher from %s", path)
    elif spec.fit:
        fit(model, data, objective=spec.objective, seed=exp.seeds[0], quiet=quiet, **spec.train)
        save_weights(model, path, {"arch": spec.arch, "input_shape": list(data.input_shape), "classes": data.classes,
                                   "dataset": data.name, "split": data.info})
    return model


class _Objective:
    """One trial: sample alpha, T (and lr), train the student, return its best validation accuracy."""

    def __init__(self, exp, cfg: TuneConfig, target, data, teacher, quiet):
        self.exp, self.cfg, self.target, self.data, self.teacher, self.quiet = exp, cfg, target, data, teacher, quiet

    def __call__(self, trial) -> float:
        alpha = trial.suggest_float("alpha", *self.cfg.alpha)
        temperature = trial.suggest_float("temperature", *self.cfg.temperature)
        changes = {"lr": trial.suggest_float("lr", *self.cfg.lr, log=True)} if self.cfg.lr else {}
        spec = student_spec(self.exp, self.target, objective=objective_for(self.target, alpha, temperature), **changes)
        seed = self.exp.seeds[0]
        torch.manual_seed(seed)
        model = spec.build(self.data.input_shape, self.data.num_classes)
        history = fit(model, self.data, objective=spec.objective, teacher=self.teacher, seed=seed, quiet=self.quiet,
                      callbacks=[_Pruning(trial)], **spec.train)
        return max(r["val_accuracy"] for r in history.epochs)


def objective_for(student, alpha: float, temperature: float) -> list:
    """The student's objective with ``ce`` weighted ``1 - alpha`` and ``kd`` weighted ``alpha`` at
    ``temperature``; any other term is kept as it is."""
    terms = []
    for m in student.methods:
        name, weight, options = m.term()
        if name == "ce":
            weight = 1.0 - alpha
        elif name == "kd":
            weight, options = alpha, {**options, "temperature": temperature}
        terms.append((name, weight, options))
    return terms


class _Pruning:
    """Engine callback: report validation accuracy each epoch; stop a trial Optuna prunes."""

    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, state) -> None:
        import optuna

        self.trial.report(state.history[-1]["val_accuracy"], state.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {state.epoch + 1}")


def _log_trial(study, trial) -> None:
    params = " ".join(f"{k}={v:.4g}" for k, v in trial.params.items())
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    try:
        best = f"{study.best_value:.4f}"
    except ValueError:  # no trial has completed yet
        best = "-"
    log.info("trial %d %s: %s val_accuracy=%s (best %s)", trial.number, trial.state.name.lower(), params, value, best)


def trial_rows(study) -> list[dict]:
    """Every trial of ``study`` as a plain dict (number, state, value, params)."""
    return [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
            for t in study.get_trials(deepcopy=False)]


def _finish(exp: Experiment, study, target, source, unlabeled, folder: Path, quiet: bool, cache_dir=None) -> dict:
    """Trials table, plots, then the best trial retrained and evaluated on test."""
    rows = trial_rows(study)
    atomic_write(folder / "trials.json", json.dumps(rows, indent=2) + "\n")
    save_figure(folder / "tune-objective.png", [TrialsDisplay(rows)], panel=(7, 3.8))
    save_figure(folder / "tune-alpha-temperature.png", [ParamsDisplay(rows, "alpha", "temperature")], panel=(6, 4.4))
    best = study.best_trial
    changes = {"lr": best.params["lr"]} if "lr" in best.params else {}
    name = f"tuned student (alpha={best.params['alpha']:.2f}, T={best.params['temperature']:.2f})"
    tuned = student_spec(exp, target, objective=objective_for(target, best.params["alpha"], best.params["temperature"]),
                         **changes)
    shown = {("T" if k == "temperature" else k): float(f"{v:.4g}") for k, v in best.params.items()}
    tuned = replace(tuned, name=name, hyperparams={**tuned.hyperparams, **shown})
    baselines = [student_spec(exp, s) for s in exp.students if not s.distilled]
    results = run_study(lambda seed: load_splits(exp, seed, source, unlabeled), teacher_spec(exp), [*baselines, tuned],
                        out=folder, seeds=exp.seeds, config=exp.model_dump(mode="json"), quiet=quiet,
                        title=f"{exp.title or exp.name}: tuned alpha and temperature",
                        resume=True, cache_dir=cache_dir)  # a final retraining killed earlier continues
    model = next(m for m in results["models"] if m["name"] == name)
    summary = {"study_name": study.study_name, "finished": _finished(study), "best_trial": best.number,
               "best_value": best.value, "best_params": best.params, "best_model": name,
               "test_accuracy": model["accuracy"], "comparisons": results["comparisons"]}
    atomic_write(folder / "tune.json", json.dumps(summary, indent=2) + "\n")
    write_data_summary(folder, source)
    write_report(folder)
    finish_run_dir(folder)
    return {**summary, "folder": str(folder), "trials": rows, "results": results}
