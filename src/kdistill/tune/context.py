"""What every process of a sweep shares: the split, the teacher (trained once, served from the
cache) and the three Optuna studies in one storage; and the parallel workers of ``--jobs N``."""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from ..config import Experiment
from ..config.tune import TuneConfig
from ..data import read_source
from ..engine import fit
from ..report import param_text
from ..study import load_splits, read_unlabeled, teacher_cache_dir, teacher_spec
from ..teachers import CachedTeacher
from ..weights import load_weights, save_weights
from .space import Space
from .trials import Trials, pruner

log = logging.getLogger("kdistill")

KINDS = ("alone", "distilled", "repeats")
TEACHER_FILE = "tune-teacher.safetensors"


@dataclass
class Context:
    """Everything a sweep process needs to rebuild its share of the work (picklable for the
    workers of ``--jobs``): the experiment, the run folder, the storage URL and the study names.
    ``teacher`` is a teacher given from Python (used as it is), else the experiment's is used."""

    exp: Experiment
    folder: Path
    url: str
    base_name: str
    quiet: bool = False
    cache_dir: str | None = None
    teacher: object = None

    @property
    def cfg(self) -> TuneConfig:
        return self.exp.tune or TuneConfig()

    def name(self, kind: str) -> str:
        return self.base_name if kind == "distilled" else f"{self.base_name}:{kind}"

    def storage(self):
        import optuna

        with warnings.catch_warnings():  # heartbeats are experimental; they fail trials of killed processes
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(self.url, heartbeat_interval=10, grace_period=30)
            except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; the user needs one message
                raise ValueError(f"storage {self.url!r} (--storage or tune.storage) cannot be opened as an Optuna "
                                 f"database: {exc}; give a database URL such as sqlite:///path/to/tune.db") from None

    def study(self, kind: str, seed_offset: int = 0):
        """The ``kind`` study, created when missing, with its pruner and a seeded TPE sampler (never
        the same seed twice for one study, so a resumed or parallel sweep does not repeat trials)."""
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(study_name=self.name(kind), direction="maximize", load_if_exists=True,
                                        storage=self.storage(),
                                        pruner=pruner("none" if kind == "repeats" else self.cfg.pruner))
            optuna.storages.fail_stale_trials(study)
            study.sampler = optuna.samplers.TPESampler(seed=self.exp.seeds[0] + seed_offset + len(study.trials),
                                                       constant_liar=True)
        return study

    def open(self):
        """The sweep's split (of the first seed), its teacher wrapped in the output cache, and the space."""
        source = read_source(self.exp.data, self.exp.path)
        data = load_splits(self.exp, self.exp.seeds[0], source, read_unlabeled(self.exp, source))
        if data.val is None:
            raise ValueError("tune maximizes validation accuracy, so it needs a validation split; set "
                             "data.val_size > 0")
        teacher = CachedTeacher(self.teacher_model(data), cache_dir=teacher_cache_dir(self.folder, self.cache_dir))
        return data, teacher, Space(self.cfg, data.unlabeled is not None), source

    def teacher_model(self, data):
        """The teacher: given, loaded from the sweep's weights file, or trained once and saved there."""
        if self.teacher is not None:
            return self.teacher
        spec = teacher_spec(self.exp)
        path = self.folder / "weights" / TEACHER_FILE
        torch.manual_seed(self.exp.seeds[0])
        model = spec.build(data.input_shape, data.num_classes)
        if spec.fit and not isinstance(model, torch.nn.Module):
            raise ValueError("kdistill tune trains PyTorch teachers once per sweep; fit a scikit-learn teacher "
                             "yourself and give it as teacher.file (skops), or pass it to tune(teacher=...)")
        if path.is_file():
            load_weights(model, path)  # a truncated or mismatched file is a clear error
        elif spec.fit:
            log.info("training the sweep's teacher once (it serves every trial and the final evaluation)")
            fit(model, data, objective=spec.objective, seed=self.exp.seeds[0], quiet=self.quiet, **spec.train)
            save_weights(model, path, {"arch": spec.arch, "input_shape": list(data.input_shape),
                                       "classes": data.classes, "dataset": data.name, "split": data.info})
        return model


def run(ctx: Context, kind: str, wanted: int, jobs: int, opened=None) -> None:
    """Bring the ``kind`` study (``alone`` or ``distilled``) to ``wanted`` finished trials, in
    this process or in ``jobs`` worker processes sharing the storage."""
    _spread(ctx, opened, [(kind, wanted)] * max(1, jobs))


def rerun(ctx: Context, todo: list, jobs: int, opened=None) -> None:
    """Train each (candidate, seed) re-run of ``todo`` once, recording it in the ``repeats``
    study; ``--jobs`` workers each take their own share, so no re-run is trained twice."""
    shares = [("repeats", share) for share in (todo[i::jobs] for i in range(jobs)) if share]
    if shares:
        _spread(ctx, opened, shares)


def _spread(ctx: Context, opened, tasks: list) -> None:
    """Run ``tasks`` (one per worker): here when there is one, else in as many worker processes."""
    if len(tasks) == 1:
        _work(ctx, *tasks[0], 0, opened)
        return
    spawn = get_context("spawn")  # a fresh interpreter: no forked torch or SQLite state
    level = logging.getLogger("kdistill").getEffectiveLevel()
    with ProcessPoolExecutor(max_workers=len(tasks), mp_context=spawn) as pool:
        futures = [pool.submit(_worker, ctx, kind, arg, i + 1, len(tasks), level) for i, (kind, arg) in
                   enumerate(tasks)]
        for future in futures:
            future.result()  # a worker's error is raised here


def _worker(ctx: Context, kind: str, arg, worker: int, jobs: int, level: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kdistill logs one line per trial itself
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    logger = logging.getLogger("kdistill")
    logger.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[job {worker}] %(message)s"))
    logger.addHandler(handler)
    _work(ctx, kind, arg, worker, None)


def _work(ctx: Context, kind: str, arg, worker: int, opened) -> None:
    """``arg``: the number of finished trials wanted, or for ``repeats`` the re-runs to train."""
    import optuna

    data, teacher, space, _ = opened or ctx.open()
    study = ctx.study(kind, seed_offset=1000 * worker)
    objective = Trials(ctx.exp, space, data, teacher, ctx.quiet, kind, worker)
    if kind == "repeats":
        _rerun(study, objective, arg)
        return
    missing = arg - finished(study)
    if missing > 0:
        done = optuna.study.MaxTrialsCallback(arg, states=(optuna.trial.TrialState.COMPLETE,
                                                           optuna.trial.TrialState.PRUNED))
        study.optimize(objective, n_trials=missing, callbacks=[done, _log_trial(kind)])


def _rerun(study, objective, todo: list) -> None:
    """Train each (candidate, seed) of ``todo`` with the candidate's recipe, and record it as a
    finished trial (a re-run that fails records nothing, so the next sweep trains it again)."""
    import optuna

    for cand, seed in todo:
        trial = optuna.trial.FixedTrial(cand.params)
        for key, value in (("candidate", cand.key), ("seed", seed), ("distilled", cand.kind == "distilled")):
            trial.set_user_attr(key, value)
        value = objective(trial)
        study.add_trial(optuna.trial.create_trial(value=value, params=trial.params, distributions=trial.distributions,
                                                  user_attrs=trial.user_attrs))
        log.info("re-run of %s seed %d: %s val_accuracy=%.4f", cand.key, seed, _params(trial.params), value)


def finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _log_trial(kind: str):
    def log_trial(study, trial) -> None:
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        log.info("%s trial %d %s: %s val_accuracy=%s", kind, trial.number, trial.state.name.lower(),
                 _params(trial.params), value)

    return log_trial


def _params(params: dict) -> str:
    return " ".join(f"{k}={param_text(v)}" for k, v in params.items())


def default_baseline_trials(cfg: TuneConfig, wanted: int) -> int:
    """The student alone's trials: ``tune.baseline_trials``, else half the distilled ones (at least
    4), or one when neither the learning rate nor the budget is searched."""
    if not cfg.lr and not cfg.steps:
        return 1
    return cfg.baseline_trials or max(4, math.ceil(wanted / 2))
