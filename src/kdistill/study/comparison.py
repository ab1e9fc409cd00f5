"""The comparison from Python: :func:`compare` runs the study ``kdistill run`` runs, on models
and data given as Python objects, into the same run folder, table, verdicts and report.

:func:`run_in_folder` is the one path both front doors take: open a run folder that is never
overwritten, run the study, write the data summary and the report, mark the folder finished.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path

from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..arguments import ALONE_SUFFIX, check_data, check_names, check_objective, check_seeds
from ..categoricals import check_choice
from ..data import Splits, class_summary
from ..data.synthetic import with_synthetic
from ..engine import MLflow, Runtime, TensorBoard, TrainConfig, TrainingInterrupted
from ..files import atomic_write
from ..methods import ALONE
from ..models.prune import FromTeacher
from ..models.zoo import ARCH_ATTRIBUTE
from ..report import write_report
from ..report.card import card_markdown, recommend, run_record
from ..teachers import Teacher, as_teacher
from ..teachers.oof import check_folds
from ..terminal import print_results
from . import members
from .check import export_problem, teacher_batch
from .defaults import default_objective, is_table, synthetic_options, table_budget
from .folders import INCOMPLETE, abandon_run_dir, check_cache_dir, finish_run_dir, open_run_dir, release_run_dir
from .runner import run_study
from .specs import ModelSpec, budget_shown, from_teacher_spec, objective_shown


def run_in_folder(setup: Callable[[Path], tuple[Callable[[int], Splits], Callable[[], dict]]], teacher: ModelSpec,
                  students: list[ModelSpec], *, out, seeds, title: str, config: dict, quiet=False, resume=False,
                  cache_dir=None, trackers=(), device: str = "cpu",
                  resume_command: Callable[[Path], str] | None = None) -> tuple[dict | None, Path]:
    """Run a study into a new run folder ``out`` (``out-2``... if taken; with ``resume`` the
    interrupted run in ``out``), then write ``data.json`` and the report.

    ``setup(folder)``, called once the folder is claimed and before the teacher trains, checks
    what it can and returns ``load(seed) -> Splits`` and ``data_info() -> dict`` (what
    ``data.json`` holds); a new run whose setup fails leaves no folder behind. The folder is
    released however the run ends; Ctrl-C names ``resume_command(folder)``.
    """
    started = time.time()
    check_cache_dir(cache_dir)  # what the run will write and open, tried before any folder is made
    check_trackers(trackers)
    rt = Runtime.create(device)  # joins the process group under torchrun
    folder = open_run_dir(Path(out), resume, rt)
    try:
        load, data_info = setup(folder)
    except BaseException:
        if not resume and rt.is_main:
            abandon_run_dir(folder)  # a new run that never began leaves no folder behind
        release_run_dir(folder)
        raise
    try:
        results = run_study(load, teacher, students, out=folder, seeds=seeds, title=title, config=config, quiet=quiet,
                            resume=resume, cache_dir=cache_dir, trackers=trackers)
        if rt.is_main:
            atomic_write(folder / "data.json", json.dumps(data_info(), indent=2) + "\n")
            write_card(folder, results, started)
            write_report(folder)
            finish_run_dir(folder)
    except KeyboardInterrupt as exc:  # in training (saved after the batch), evaluation, export or the report
        again = resume_command(folder) if resume_command else f"resume=True and out={str(folder)!r}"
        where = (f"in epoch {exc.epoch} after batch {exc.batch}, progress saved" if isinstance(exc, TrainingInterrupted)
                 else "after the last finished epoch's checkpoint")
        raise KeyboardInterrupt(f"interrupted {where}; the run folder {folder} is marked {INCOMPLETE}: continue it "
                                f"with {again}") from exc
    finally:
        release_run_dir(folder)
    return results, folder


def write_card(folder: Path, results: dict, started: float) -> None:
    """What to deploy, in ``results.json`` (``run``: command, date, wall time, versions;
    ``recommendation``) and in ``model_card.md`` (see :mod:`kdistill.report.card`)."""
    results["run"] = run_record(started, time.time())
    results["recommendation"] = recommend(results, folder)
    atomic_write(folder / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write(folder / "model_card.md", card_markdown(results))


def check_trackers(trackers) -> None:
    """Open every tracker's folder or store once, as the run will (see ``check`` of
    :class:`~kdistill.engine.TensorBoard` and :class:`~kdistill.engine.MLflow`)."""
    for tracker in trackers:
        if callable(getattr(tracker, "check", None)):
            tracker.check()


def trackers_from(tracking) -> list:
    """Trackers from ``{"tensorboard": DIR, "mlflow": URI, "experiment": NAME}``, or a list of
    tracker objects as they are."""
    if tracking is None:
        return []
    if not isinstance(tracking, dict):
        return list(tracking)
    unknown = sorted(set(tracking) - {"tensorboard", "mlflow", "experiment"})
    if unknown:
        raise ValueError(f"tracking has unknown key(s) {unknown}; allowed: tensorboard, mlflow, experiment")
    out = [TensorBoard(tracking["tensorboard"])] if tracking.get("tensorboard") else []
    if tracking.get("mlflow"):
        out.append(MLflow(tracking["mlflow"], tracking.get("experiment") or "kdistill"))
    return out


def compare(teacher, students: dict, data, *, seeds=(0,), out=None, train_teacher: bool | None = None,
            title: str | None = None, quiet: bool = False, cache_dir=None, resume: bool = False, tracking=None,
            teacher_train: dict | None = None, teacher_folds: int | None = None, synthetic="auto",
            categoricals: str = "native", **train) -> dict:
    """Compare distilled students with the same students trained alone, as ``kdistill run`` does.

    Parameters
    ----------
    teacher : object
        Anything :func:`kdistill.as_teacher` takes (a torch module, a fitted scikit-learn model,
        an ONNX, skops or ``transformers`` file, a callable wrapped by ``as_teacher``, a
        :class:`~kdistill.Teacher`), or a model to train: an unfitted scikit-learn estimator is
        fitted on each seed's train split; a torch module (a fresh copy per seed) or a function
        ``(input_shape, num_classes) -> model`` is trained with ``train_teacher=True``; a torch
        module is otherwise used as it is.
    students : dict
        Name -> student, or name -> ``(student, objective)``. A student is a torch module
        (copied, its weights drawn anew per seed), a function ``(input_shape, num_classes) ->
        model``, or a scikit-learn estimator (cloned). A bare student is distilled with the
        default objective (``kd_objective(0.5, 4)``; soft labels for scikit-learn students); an
        objective is a term list as in :func:`kdistill.fit` (``[("ce", 1.0)]`` learns alone), or
        for a scikit-learn student :class:`~kdistill.sklearn.DistilledClassifier` options such as
        ``{"mode": "hard"}``. Each distilled student without a counterpart trained alone gets one,
        ``"<name> alone"``. On a table, the default objective is the measured best for tables
        (see :mod:`kdistill.study.defaults`).
    data : Splits or callable
        The splits, or ``seed -> Splits``. A teacher used as loaded gets the first seed's split
        for every seed.
    seeds : sequence of int
    quiet : bool
        No progress lines, and no table printed at the end (it is printed otherwise, as
        ``kdistill run`` prints it, with the verdicts and the recommendation).
    out : str or Path, optional
        The run folder (default ``runs/compare``; never overwritten: ``-2``, ``-3``... are used).
    tracking : dict or list, optional
        ``{"tensorboard": DIR, "mlflow": URI}``, or tracker objects
        (:class:`~kdistill.engine.TensorBoard`, :class:`~kdistill.engine.MLflow`).
    teacher_train : dict, optional
        Training options of the teacher, over ``train``.
    teacher_folds : int, optional
        Out-of-fold teacher outputs on the labelled training rows (K-fold cross-fitting, see
        :mod:`kdistill.teachers.oof`): 0 turns it off; the default is 5 for a scikit-learn
        teacher that the study fits on a table, else 0.
    synthetic : "auto", None or dict
        Synthetic transfer rows for the distilled students, labelled by the teacher
        (:mod:`kdistill.data.synthetic`): ``{"kind": "munge"|"gibbs"|"gaussian", "size": rows per
        training row}``; ``"auto"`` gives tables the measured default and images none.
    categoricals : {"native", "onehot"}
        How boosted-tree classifiers that the study fits (LightGBM, XGBoost and CatBoost;
        students and teacher) take a table's categorical columns:
        ``"native"`` as one integer code column each, split by the library's own categorical
        support (see :class:`~kdistill.categoricals.NativeCategoricals`), ``"onehot"`` as the
        one-hot columns every other model gets.
    **train
        :class:`~kdistill.TrainConfig` options of every PyTorch model (``epochs``, ``lr``, ...).

    Returns
    -------
    dict
        The results written to ``results.json`` (table rows under ``models``, verdicts under
        ``comparisons``), plus ``folder``: the run folder.
    """
    seeds = check_seeds(seeds)  # every argument checked before anything runs or any folder is made
    check_choice(categoricals)
    check_data(data)
    TrainConfig.from_kwargs(**train, **(teacher_train or {}))
    if teacher_folds is not None:
        check_folds(teacher_folds)
    given = data if callable(data) and not isinstance(data, Splits) else (lambda seed: data)
    first = given(seeds[0])
    check_data(first, "data(seed)", seeded=False)
    table = is_table(first)
    synth = synthetic_options(synthetic, table)
    load = given if synth is None else (lambda seed: with_synthetic(given(seed), seed=seed, **synth))
    specs = _student_specs(students, train, table, table_budget(train, first, synth) if table else train)
    t_spec = _teacher_spec(teacher, train_teacher, {**train, **(teacher_train or {})})
    t_spec.folds = teacher_folds
    for spec in (t_spec, *specs):
        spec.categoricals = categoricals
    _dry_run(teacher, t_spec, specs, first)
    config = {"compare": {"teacher": _what(teacher), "students": {s.name: s.hyperparams for s in specs},
                          "seeds": list(seeds), "train": train, "teacher_folds": teacher_folds,
                          "synthetic": synth, "categoricals": categoricals}}
    results, folder = run_in_folder(lambda folder: (load, lambda: data_info(given(seeds[0]))), t_spec, specs,
                                    out=out or "runs/compare", seeds=tuple(seeds),
                                    title=title or "teacher -> student comparison", config=config, quiet=quiet,
                                    resume=resume, cache_dir=cache_dir, trackers=trackers_from(tracking),
                                    device=train.get("device", "cpu"))
    if results is not None and not quiet:
        print_results(results, folder)
    return None if results is None else {**results, "folder": str(folder)}


def _dry_run(given, teacher: ModelSpec, specs: list[ModelSpec], data: Splits) -> None:
    """What the run will touch, tried before any training (as ``kdistill validate`` does for a
    file): one batch through a teacher read from a file, one ONNX export (in memory) per PyTorch
    student architecture; the random draws of the models built here leave no trace."""
    import torch

    with torch.random.fork_rng():
        if isinstance(given, (str, Path)):
            teacher_batch(teacher.build(data.input_shape, data.num_classes), f"teacher file {str(given)!r}", data)
        seen = set()
        for spec in specs:
            if spec.family not in seen and spec.start is None:  # a pruned student is checked once pruned
                seen.add(spec.family)
                export_problem(spec.build(data.input_shape, data.num_classes), data.input_shape,
                               f"students[{spec.name!r}]")


def _what(obj) -> str:
    return str(obj) if isinstance(obj, (str, Path)) else type(obj).__name__


def data_info(data: Splits) -> dict:
    """What ``data.json`` holds of the first seed's splits: class counts per split (train, val, test)."""
    parts = {p: (None, ds.y.numpy() if hasattr(ds, "y") else [int(ds[i][1]) for i in range(len(ds))])
             for p in ("train", "val", "test") if (ds := getattr(data, p)) is not None}
    return {"name": data.name, "classes": data.classes, **class_summary(parts, data.classes)}


def _fresh(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its weights drawn anew (from the seed the study has just set)."""
    model = copy.deepcopy(module)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


def _builder(obj, name: str | None = None) -> Callable:
    if isinstance(obj, FromTeacher):
        return lambda shape, k: None  # made from the trained teacher (ModelSpec.start)
    if isinstance(obj, nn.Module):
        return lambda shape, k: _fresh(obj)
    if members.kind_or_none(obj) == "sklearn":
        return lambda shape, k: members.seeded(clone(obj))
    if callable(obj):
        return lambda shape, k: obj(shape, k)
    where = "a student" if name is None else f"students[{name!r}]"
    raise TypeError(f"cannot use {type(obj).__name__} as {where}: give a torch module, a function "
                    f"(input_shape, num_classes) -> model, or a scikit-learn estimator")


def _student_specs(students: dict, train: dict, table: bool = False, bare: dict | None = None) -> list[ModelSpec]:
    """The students' specs, each distilled one with its student alone; ``bare``: the training
    options of a bare PyTorch student on a table (:func:`~kdistill.study.defaults.table_budget`)."""
    if not isinstance(students, dict) or not students:
        raise ValueError(f"students must be a non-empty dict of name -> student (or name -> (student, objective)), "
                         f"got {students!r}")
    check_names(students)
    specs, families, originals = [], {}, {}
    for name, given in students.items():
        if isinstance(given, tuple) and len(given) != 2:
            raise ValueError(f"students[{name!r}] must be a student or a (student, objective) pair, got a tuple of "
                             f"{len(given)}")
        model, objective = given if isinstance(given, tuple) else (given, None)
        if objective is not None:
            check_objective(objective, f"students[{name!r}] objective")
        _builder(model, name)
        family = families.setdefault(id(model), f"student {len(families)}")
        originals[family] = model
        guard = objective is None and table  # the default recipe on a table keeps the better of the two
        options = dict(bare if guard and bare is not None and members.kind_or_none(model) != "sklearn" else train)
        if objective is None:
            objective = default_objective(members.kind_or_none(model) == "sklearn", table)
        spec = ModelSpec(name, _builder(model, name), objective=objective, train=options, family=family,
                         hyperparams=_shown(objective, options, model), guard=guard, arch=factory_arch(model))
        if isinstance(model, FromTeacher):
            spec = dataclasses.replace(from_teacher_spec(spec, model, None), family=family)
        specs.append(spec)
    alone = {s.family for s in specs if not s.distilled}
    derived = []
    for spec in [s for s in specs if s.distilled and s.family not in alone]:
        alone.add(spec.family)
        derived.append(spec.name + ALONE_SUFFIX)
        alone_spec = ModelSpec(derived[-1], spec.build, objective=list(ALONE), train=dict(train), arch=spec.arch,
                               family=spec.family, hyperparams=_shown(list(ALONE), train, originals[spec.family]))
        given = originals[spec.family]
        if isinstance(given, FromTeacher):  # the same pruned architecture, trained from new weights
            alone_spec = dataclasses.replace(from_teacher_spec(alone_spec, dataclasses.replace(given, weights="fresh"),
                                                               None), family=spec.family)
        specs.insert(0, alone_spec)
    check_names(["teacher", *students], derived=derived)  # the teacher's files are named "teacher" too
    return specs


def factory_arch(obj) -> dict | None:
    """How ``kdistill export`` and ``kdistill.load`` rebuild a model given as an object: a zoo
    model (``mlp``, ``cnn``) by its spec, an importable function ``(input_shape, num_classes) ->
    model`` (a module-level function whose parameters are so named) by its name, once the user
    allows it (``--allow module:function``). ``None`` for anything else (another module object, a
    lambda, a function of ``__main__``): its ONNX file is the run's own."""
    if isinstance(obj, nn.Module):  # a zoo model remembers its spec
        spec = getattr(obj, ARCH_ATTRIBUTE, None)
        return copy.deepcopy(spec) if isinstance(spec, dict) else None
    if not inspect.isfunction(obj) or obj.__module__ in (None, "__main__") or obj.__qualname__ != obj.__name__:
        return None
    if not {"input_shape", "num_classes"} <= set(inspect.signature(obj).parameters):
        return None
    return {"model": f"{obj.__module__}:{obj.__name__}", "options": {}}


def _shown(objective, train: dict, model) -> dict:
    """The hyperparameters the table shows: alpha and T of a ce + kd objective, the terms of
    another, DistilledClassifier options and changed parameters of a scikit-learn student; the
    epochs, any step budget and lr of training, and the labelled share of each batch where one is set."""
    shown = dict(objective) if isinstance(objective, dict) else objective_shown(objective,
                                                                                 members.needs_teacher(objective))
    if members.kind_or_none(model) == "sklearn":
        return {**_changed_params(model), **shown}
    cfg = TrainConfig(**train)
    shared = cfg.labeled_share is not None and members.needs_teacher(objective)  # alone, it has no effect
    share = {"labeled_share": cfg.labeled_share} if shared else {}
    return {**shown, **budget_shown(cfg), **share}


def _changed_params(estimator) -> dict:
    """The parameters of a scikit-learn estimator that differ from its class's defaults."""
    try:
        defaults = type(estimator)().get_params(deep=False)
    except TypeError:  # an estimator whose parameters have no defaults
        return {}
    return {k: v for k, v in estimator.get_params(deep=False).items() if k in defaults and v != defaults[k]}


def _teacher_spec(teacher, train_teacher: bool | None, train: dict) -> ModelSpec:
    kind = members.kind_or_none(teacher)
    if kind == "sklearn" and not isinstance(teacher, Teacher):
        try:
            check_is_fitted(teacher)
            fitted = True
        except NotFittedError:
            fitted = False
        fit = not fitted if train_teacher is None else train_teacher
        build_ = (lambda shape, k: members.seeded(clone(teacher))) if fit else (lambda shape, k: teacher)
        return ModelSpec("teacher", build_, fit=fit,
                         hyperparams={"model": type(teacher).__name__, **_changed_params(teacher)})
    if kind == "torch":
        fit = bool(train_teacher)
        build_ = (lambda shape, k: _fresh(teacher)) if fit else (lambda shape, k: teacher)
        return ModelSpec("teacher", build_, train=train, fit=fit, hyperparams=_shown(list(ALONE), train, teacher)
                         if fit else {"model": type(teacher).__name__}, arch=factory_arch(teacher))
    if train_teacher and callable(teacher) and not isinstance(teacher, Teacher):  # a factory of the model to train
        return ModelSpec("teacher", _builder(teacher), train=train, hyperparams=_shown(list(ALONE), train, None),
                         arch=factory_arch(teacher))
    if train_teacher:
        raise ValueError(f"train_teacher=True needs a torch module, a function (input_shape, num_classes) -> "
                         f"model or a scikit-learn estimator, got {type(teacher).__name__}")
    loaded = as_teacher(teacher)
    return ModelSpec("teacher", lambda shape, k: loaded, fit=False, hyperparams={"teacher": _what(teacher)})
