"""What every process of a sweep shares: the split, the teacher (trained once, served from the
cache) and the three Optuna studies in one storage; and the parallel workers of ``--jobs N``.

A scikit-learn teacher of the experiment file is fitted once on the train split and saved
(``weights/tune-teacher.skops``); where out-of-fold outputs are searched it is also cross-fitted
once (``weights/tune-teacher-oof.safetensors``), and both variants are served from the cache to
every trial and every worker."""

from __future__ import annotations

import hashlib
import json
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
from ..study import load_splits, members, read_unlabeled, teacher_cache_dir, teacher_spec
from ..study.defaults import is_table
from ..teachers import CachedTeacher
from ..teachers.oof import FOLDS, OutOfFoldTeacher, cross_fit
from ..weights import load_sklearn, load_weights, read_safetensors, save_sklearn, save_weights
from .space import Space
from .trials import Trials, check_target, fits_sklearn_teacher, pruner, tuned_students

log = logging.getLogger("kdistill")

KINDS = ("alone", "distilled", "repeats")
TEACHER_FILE = "tune-teacher.safetensors"
SKLEARN_TEACHER_FILE = "tune-teacher.skops"
OOF_FILE = "tune-teacher-oof.safetensors"


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
            self._check_record(study)
            study.sampler = optuna.samplers.TPESampler(seed=self.exp.seeds[0] + seed_offset + len(study.trials),
                                                       constant_liar=True)
        return study

    def _check_record(self, study) -> None:
        """A study records what it searches (space, task, data) in its user attributes when it is
        created; opened again (a shared storage, another machine) with other settings it is refused,
        so that no answer comes from trials outside the space asked for."""
        record = study_record(self.exp)
        found = study.user_attrs.get(RECORD)
        if found is None:
            if study.trials:
                log.warning("study %r in %s has trials but no record of its search space (made by an older "
                            "kdistill); recording this sweep's", study.study_name, self.url)
            study.set_user_attr(RECORD, record)
            return
        differ = sorted(k for k in set(found) | set(record) if found.get(k) != record.get(k))
        if differ:
            shown = "; ".join(f"{k}: {_short(found.get(k))} there, {_short(record.get(k))} here" for k in differ[:4])
            raise ValueError(f"storage {self.url!r}: study {study.study_name!r} was created for another search space, "
                             f"task or data, differing in {', '.join(differ)} ({shown}); its trials would answer "
                             f"for settings you did not ask for. Undo the changes to resume it, or start a new study "
                             f"with tune.study_name (e.g. --set tune.study_name={self.base_name}-{_digest(record)})")

    @property
    def fits_sklearn_teacher(self) -> bool:
        """Whether the sweep fits the experiment's scikit-learn teacher itself."""
        return fits_sklearn_teacher(self.exp, self.teacher)

    def oof_choices(self) -> list | None:
        """Out-of-fold teacher outputs searched: ``tune.oof``, else both where the sweep fits a
        scikit-learn teacher whose ``folds`` is not 0; ``None`` where they cannot be."""
        check_target(self.exp, self.teacher)
        if not self.fits_sklearn_teacher:
            return None
        if self.cfg.oof is not None:
            return list(self.cfg.oof)
        return [False] if self.exp.teacher.folds == 0 else [True, False]

    def open(self):
        """The sweep's split (of the first seed), its teachers wrapped in the output cache (by
        whether they serve out-of-fold outputs), the space, the source and the teachers unwrapped.
        Where the sweep chooses the synthetic rows (``tune.synthetic``, on a table) the split has
        none of the data section's."""
        source = read_source(self.exp.data, self.exp.path)
        exp = self.exp
        if self.cfg.searches_synthetic:
            exp = exp.model_copy(update={"data": exp.data.model_copy(update={"synthetic": None})})
        data = load_splits(exp, self.exp.seeds[0], source, read_unlabeled(self.exp, source))
        if data.val is None:
            raise ValueError("tune maximizes validation accuracy, so it needs a validation split; set "
                             "data.val_size > 0")
        table = is_table(data)
        if self.cfg.searches_synthetic and not table:
            log.info("tune.synthetic is searched on tables only; this data is not one, so no synthetic rows")
        oof = self.oof_choices()
        raw = self.teachers(data, oof)
        cache = teacher_cache_dir(self.folder, self.cache_dir)
        teachers = {key: CachedTeacher(model, cache_dir=cache) for key, model in raw.items()}
        space = Space(self.cfg, data.unlabeled is not None, table, tuned_students(self.exp), oof)
        return data, teachers, space, source, raw

    def teachers(self, data, oof: list | None) -> dict:
        """The teacher by whether it serves out-of-fold outputs: ``{False: teacher}``, with
        ``True`` too where those are searched (cross-fitted once, saved, and loaded on resume)."""
        model = self.teacher_model(data)
        if not oof or True not in oof:
            return {False: model}
        folds = self.exp.teacher.folds or FOLDS
        path = self.folder / "weights" / OOF_FILE
        if path.is_file():
            logits = read_safetensors(path)[0]["oof"]
        else:
            log.info("cross-fitting the sweep's teacher once on %d folds (out-of-fold outputs, for the trials "
                     "that use them)", folds)
            spec = teacher_spec(self.exp)
            x, y = members.arrays(data.train)
            torch.manual_seed(self.exp.seeds[0])
            estimator = members.estimator_for(spec, spec.build(data.input_shape, data.num_classes), data)
            logits = cross_fit(estimator, x, y, folds, self.exp.seeds[0], data.num_classes)
            holder = torch.nn.Module()  # save_weights writes a module's buffers
            holder.register_buffer("oof", logits.contiguous())
            save_weights(holder, path, {"folds": folds, "split": data.info})
        return {False: model, True: OutOfFoldTeacher(model, data.train, logits, folds)}

    def teacher_model(self, data):
        """The teacher: given, loaded from the sweep's weights file, or trained (fitted) once and
        saved there."""
        if self.teacher is not None:
            return self.teacher
        spec = teacher_spec(self.exp)
        torch.manual_seed(self.exp.seeds[0])
        model = spec.build(data.input_shape, data.num_classes)
        if self.fits_sklearn_teacher:
            return self._fitted_estimator(members.estimator_for(spec, model, data), data)
        path = self.folder / "weights" / TEACHER_FILE
        if spec.fit and not isinstance(model, torch.nn.Module):
            raise ValueError("kdistill tune trains PyTorch teachers and fits scikit-learn ones once per sweep; this "
                             "teacher is neither: give it as teacher.file, or pass it to tune(teacher=...)")
        if path.is_file():
            load_weights(model, path)  # a truncated or mismatched file is a clear error
        elif spec.fit:
            log.info("training the sweep's teacher once (it serves every trial and the final evaluation)")
            fit(model, data, objective=spec.objective, seed=self.exp.seeds[0], quiet=self.quiet, **spec.train)
            save_weights(model, path, {"arch": spec.arch, "input_shape": list(data.input_shape),
                                       "classes": data.classes, "dataset": data.name, "split": data.info})
        return model

    def _fitted_estimator(self, model, data):
        """The scikit-learn teacher fitted once on the train split (loaded from its skops file on resume)."""
        import skops.io as sio

        path = self.folder / "weights" / SKLEARN_TEACHER_FILE
        if path.is_file():  # written by this sweep itself: its types are trusted
            return load_sklearn(path, trusted=sio.get_untrusted_types(file=path))
        log.info("fitting the sweep's scikit-learn teacher once (it serves every trial and the final evaluation)")
        model.fit(*members.arrays(data.train))
        save_sklearn(model, path)
        return model


RECORD = "kdistill"  # the study's user attribute holding study_record()
SPACE_FIELDS = ("student", "students", "methods", "alpha", "temperature", "options", "lr", "steps", "unlabeled",
                "labeled_share", "synthetic", "synthetic_size", "oof", "pruner")


def study_record(exp) -> dict:
    """What a study's trials mean, by dotted field: the search space (``tune.*``, the tabular
    levers included), the task (teacher, students, training) and the data section and first seed."""
    dump = exp.model_dump(mode="json")
    tune = dump.get("tune") or TuneConfig().model_dump(mode="json")
    record = {f"tune.{k}": tune.get(k) for k in SPACE_FIELDS}
    record.update({key: dump.get(key) for key in ("data", "teacher", "student", "students", "train")})
    record["seeds.0"] = exp.seeds[0]
    return json.loads(json.dumps(record, sort_keys=True))


def _digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:8]


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


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

    data, teachers, space, *_ = opened or ctx.open()
    study = ctx.study(kind, seed_offset=1000 * worker)
    objective = Trials(ctx.exp, space, data, teachers, ctx.quiet, kind, worker)
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
        attrs = [("candidate", cand.key), ("seed", seed), ("distilled", cand.kind == "distilled")]
        for key, value in attrs + ([("student", cand.student)] if cand.student is not None else []):
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


def default_baseline_trials(cfg: TuneConfig, wanted: int, students: int = 1, torch: bool = True) -> int:
    """The student alone's trials: ``tune.baseline_trials``, else half the distilled ones (at least
    4), or one per student when neither the learning rate nor the budget is searched or no
    student is a PyTorch one (``torch``); never fewer than the ``students`` (each takes its turn)."""
    if not cfg.lr and not cfg.steps or not torch:
        return students
    return max(students, cfg.baseline_trials or max(4, math.ceil(wanted / 2)))
