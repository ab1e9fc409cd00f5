"""One study, end to end: splits per seed -> teacher -> students -> evaluation -> run folder.

A study trains the teacher, then every student from the same initial weights (per seed), and
compares them on the test split. The student trained without distillation is always part of
it, so the table says plainly what distillation bought, and whether the difference exceeds
the seed-to-seed noise. Models may be PyTorch modules, scikit-learn estimators or teachers used
as loaded (see :mod:`.members`).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ..data import Splits
from ..data.batching import labels_of
from ..engine import Runtime
from ..engine.callbacks import progress_label
from ..files import atomic_write, make_dir
from ..metrics import calibration, classification_metrics, fidelity, mean_std
from ..report import (
    CalibrationDisplay,
    ConfusionDisplay,
    CurvesDisplay,
    PredictionGridDisplay,
    TradeoffDisplay,
    display_images,
    results_markdown,
    save_figure,
    slug,
)
from ..report.plots import terms_of
from ..teachers import CachedTeacher, as_teacher, teacher_fingerprint
from ..teachers.oof import FOLDS, OutOfFoldTeacher, cross_fit
from . import members
from .fitness import check_teacher, memorization
from .folders import teacher_cache_dir
from .specs import ModelSpec
from .verdicts import verdicts

log = logging.getLogger("kdistill")

METRICS = ("accuracy", "macro_f1", "agreement", "kl_to_teacher", "ece", "latency_ms", "onnx_ms_b1", "onnx_ms_b64",
           "onnx_mb", "speedup")


def run_study(load: Callable[[int], Splits], teacher: ModelSpec, students: list[ModelSpec], *, out, seeds=(0,),
              title: str = "kdistill study", config: dict | None = None, quiet: bool = False,
              resume: bool = False, cache_dir=None, trackers=()) -> dict | None:
    """Run the study for every seed and write the run folder ``out``.

    ``load(seed)`` returns the splits for a seed; a teacher used as loaded (``fit=False``) gets
    the first seed's split for every seed, since another split could put the data it was
    trained on into the test split. Each distilled student is compared with the student alone
    of its own family (else the first student alone). Every model checkpoints each epoch into
    ``out/checkpoints``; with ``resume`` each continues from its checkpoint. The teacher's
    outputs are cached in :func:`~kdistill.study.folders.teacher_cache_dir` (``cache_dir``).
    ``trackers`` (:class:`~kdistill.engine.TensorBoard`, :class:`~kdistill.engine.MLflow`) log
    every model's epochs and the final table. Returns the results dictionary that is also
    written to ``out/results.json`` (``None`` on ranks other than 0 under torchrun).
    """
    out = Path(out)
    is_main = Runtime.current().is_main
    specs = {s.name: s for s in (teacher, *students)}
    pairs = baselines(students)
    if is_main:
        for sub in ("weights", "onnx", "checkpoints"):
            make_dir(out / sub, inside=out)  # never a link out of the run folder
        atomic_write(out / "config.json", json.dumps(config or {}, indent=2, default=str) + "\n")
    fixed = None if teacher.fit else seeds[0]
    if fixed is not None and len(seeds) > 1:
        log.info("the teacher is used as loaded, so every seed uses the split of seed %d (a split per seed could "
                 "put the teacher's own training data into the test split); seeds vary initial weights and "
                 "shuffling", fixed)
    per_seed: dict[str, list[dict]] = {}
    histories, checks, warnings, first = [], [], [], None
    for seed in seeds:
        data = load(seed if fixed is None else fixed)
        runs, check = _train_seed(seed, data, teacher, students, out, dict(quiet=quiet, resume=resume), cache_dir,
                                  trackers)
        if not is_main:
            continue
        measured = _measure_seed(seed, data, runs, specs, out)
        checks.append(check)
        warnings += [w for w in [check["message"], *check.get("kept_alone", []),
                                 *(r["warning"] for r in measured.values())] if w]
        for name, r in measured.items():
            per_seed.setdefault(name, []).append({"seed": seed, **r["metrics"]})
            histories += [json.dumps({"model": name, "seed": seed, **rec, "epoch": rec["epoch"] + 1}) + "\n"
                          for rec in r["history"]]  # epochs counted from 1, as the log and the report do
        first = first or (data, measured)
    if not is_main:
        return None
    atomic_write(out / "history.jsonl", "".join(histories))
    data, measured = first
    results = {"title": title, "dataset": data.name, "classes": data.classes, "seeds": list(seeds),
               "split_sizes": data.info.get("sizes"), "split_seed": fixed, "unlabeled": data.info.get("unlabeled", 0),
               "synthetic": data.info.get("synthetic"),
               "models": [_summary(spec, per_seed[name]) for name, spec in specs.items() if name in per_seed],
               "comparisons": _kept_alone(verdicts(per_seed, None, list(pairs), pairs), checks),
               "teacher_checks": checks,
               "warnings": warnings}
    results["still_improving"] = still_improving(results["models"])
    atomic_write(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write(out / "results.md", results_markdown(results))
    shown = [n for n in pairs if n in measured] or [next(iter(pairs.values()), None)
                                                    or next(s.name for s in students if not s.distilled)]
    _plots(out, data, measured, results, shown)
    for tracker in trackers:
        tracker.log_results(results, out)
    return results


def _kept_alone(comparisons: list[dict], checks: list[dict]) -> list[dict]:
    """Each verdict says on which seeds the default recipe's guard kept the student alone (and
    records them as ``kept_alone_seeds``): its difference there is nothing, by construction."""
    for comparison in comparisons:
        seeds = [c["seed"] for c in checks if comparison["model"] in c.get("kept", [])]
        if seeds:
            comparison["kept_alone_seeds"] = seeds
            comparison["verdict"] += (f" On seed(s) {', '.join(map(str, seeds))} the default recipe kept the student "
                                      f"alone: distilled, it was less accurate on validation, so the teacher had "
                                      f"nothing this student could learn there.")
    return comparisons


def baselines(students: list[ModelSpec]) -> dict[str, str]:
    """Each distilled student's baseline: the first student alone of its family, else the first
    student alone."""
    alone = [s for s in students if not s.distilled]
    if not alone:
        raise ValueError(f"a study needs a student trained without a teacher, the baseline that distillation is "
                         f"compared with; students: {[s.name for s in students]}")
    return {s.name: next((a.name for a in alone if a.family == s.family and s.family is not None), alone[0].name)
            for s in students if s.distilled}


def _train_seed(seed: int, data: Splits, teacher_spec: ModelSpec, students: list[ModelSpec], out: Path,
                settings: dict, cache_dir=None, trackers=()) -> tuple[dict, dict]:
    """Train every model for one seed (on every rank under torchrun), each with a checkpoint
    in the run folder so that an interrupted run can be resumed: the teacher, the students
    trained alone, then — unless the teacher is unfit to teach (:func:`check_teacher`) — the
    distilled students. Returns the runs and the teacher's check."""
    shape, k = data.input_shape, data.num_classes

    def train(spec: ModelSpec, model, teacher=None):
        folder = out / "checkpoints" / f"{slug(spec.name)}-seed{seed}"
        if spec.fit:
            log.info("seed %d: training %s", seed, spec.name)
            if Runtime.current().is_main:
                make_dir(folder, inside=out)
        options = {**spec.train, "seed": seed, **settings,  # the study's own settings win
                   "checkpoint_dir": str(folder)}
        callbacks = [t.callback(spec.name, seed, spec.hyperparams) for t in trackers]
        with progress_label(f"{spec.name}, seed {seed}"):
            return members.train(spec, model, data, teacher, seed=seed, options=options, callbacks=callbacks)

    def student(spec: ModelSpec, teacher=None):
        torch.manual_seed(seed)  # every student starts from the same weights within a seed
        runs[spec.name] = train(spec, spec.make(shape, k, runs[teacher_spec.name][0], data), teacher)

    torch.manual_seed(seed)
    runs = {teacher_spec.name: train(teacher_spec, teacher_spec.build(shape, k))}
    teacher = runs[teacher_spec.name][0]
    for spec in students:
        if not spec.distilled:
            student(spec)
    check = check_teacher(seed, data, teacher, {s.name: runs[s.name][0] for s in students if not s.distilled})
    if check["collapsed"]:
        log.error("%s", check["message"])
        return runs, check
    if check["message"]:
        log.warning("%s", check["message"])
    folds = out_of_fold_folds(teacher_spec, teacher, shape)
    check["folds"] = folds
    if folds:
        log.info("seed %d: cross-fitting the teacher on %d folds: the training rows get out-of-fold outputs", seed,
                 folds)
        x, y = members.arrays(data.train)
        torch.manual_seed(seed)
        oof = cross_fit(members.estimator_for(teacher_spec, teacher_spec.build(shape, k), data), x, y, folds, seed, k)
        teacher = OutOfFoldTeacher(teacher, data.train, oof, folds)
    elif len(shape) == 1:  # tables: where a teacher fits its training rows almost perfectly
        memorized = memorization(seed, data, runs[teacher_spec.name][0], check)
        if memorized:
            log.warning("%s", memorized)
            check["message"] = "; ".join(m for m in (check["message"], memorized) if m)
    served = _served(teacher, out, cache_dir)  # one pass per split, shared by all students
    alone_of = baselines(students)
    for spec in students:
        if spec.distilled:
            student(spec, served)
            if spec.guard:
                alone = alone_of[spec.name]
                kept = keep_better(seed, data, spec.name, runs[spec.name], alone, runs[alone])
                if kept is not None:
                    runs[spec.name], note = kept
                    check.setdefault("kept_alone", []).append(note)
                    check.setdefault("kept", []).append(spec.name)
    first_use = {}
    for entry in getattr(served, "entries", []):
        first_use.setdefault(entry["entry"], entry)
    check["cache"] = list(first_use.values())  # what the teacher's cached outputs hold and cost
    return runs, check


def _served(teacher, out: Path, cache_dir=None):
    """The teacher as the students see it: cached when it can be fingerprinted, else live."""
    live = as_teacher(teacher)
    try:
        teacher_fingerprint(live)
    except TypeError as exc:
        log.info("the teacher's outputs are not cached (%s)", exc)
        return live
    return CachedTeacher(live, cache_dir=teacher_cache_dir(out, cache_dir))


def keep_better(seed: int, data: Splits, name: str, run: tuple, alone: str, alone_run: tuple) -> tuple | None:
    """The default recipe's guard: a distilled student less accurate on validation than the same
    student alone is replaced by a copy of the student alone: ``((model, history), warning)``;
    ``None`` keeps the distilled one. Distillation can only pass on what the teacher
    knows better than the student, and on a table where the student alone matches the teacher
    it has nothing to add."""
    if data.val is None:
        return None
    accuracy = {n: float((members.logits(r[0], data.val, data.num_classes)[0].argmax(1)
                          == labels_of(data.val)).float().mean()) for n, r in ((name, run), (alone, alone_run))}
    if accuracy[name] >= accuracy[alone]:
        return None
    note = (f"seed {seed}: {name} is {alone}: distilled, it was less accurate on validation ({accuracy[name]:.4f}) "
            f"than the student alone ({accuracy[alone]:.4f}), so the default recipe keeps the student alone (the "
            f"teacher had nothing to add that this student could learn; give an objective to distil regardless)")
    log.warning("%s", note)
    return (copy.deepcopy(alone_run[0]), alone_run[1]), note


def out_of_fold_folds(spec: ModelSpec, teacher, shape: tuple) -> int:
    """How many folds the teacher is cross-fitted on: ``spec.folds`` if set, else
    :data:`~kdistill.teachers.oof.FOLDS` for a scikit-learn teacher the study fits on a table, else 0.
    Only a scikit-learn teacher the study fits can be cross-fitted."""
    sklearn_fit = spec.fit and members.kind(teacher) == "sklearn"
    if spec.folds is None:
        return FOLDS if sklearn_fit and len(shape) == 1 else 0
    if spec.folds and not sklearn_fit:
        raise ValueError(f"teacher folds = {spec.folds}: out-of-fold outputs need a scikit-learn teacher that the "
                         f"study fits (this one is {'used as loaded' if not spec.fit else 'a PyTorch model'}); set "
                         f"folds to 0")
    return spec.folds


def _measure_seed(seed: int, data: Splits, runs: dict, specs: dict[str, ModelSpec], out: Path) -> dict:
    """Evaluate every trained model of one seed on the test split and save it."""
    shape, k = data.input_shape, data.num_classes
    teacher_name = next(iter(runs))
    logits_t, labels = members.logits(runs[teacher_name][0], data.test, k)
    measured = {}
    for name, (model, history) in runs.items():
        if history.epochs:
            log.info("seed %d: %s trained for %d epoch(s)", seed, name, len(history.epochs))
        logits, _ = members.logits(model, data.test, k)
        m = classification_metrics(logits, labels, data.classes)
        reliability = calibration(logits, labels)
        m.update(fidelity(logits, logits_t), **members.sizes(model), kind=members.kind(model), ece=reliability["ece"],
                 calibration=reliability["bins"], latency_ms=members.latency(model, shape, k),
                 epochs_trained=len(history.epochs),
                 epoch_kept=history.best_epoch + 1 if history.best_epoch is not None else len(history.epochs))
        m.update(members.onnx_metrics(model, shape, out / "onnx" / f"{slug(name)}-seed{seed}.onnx", data.test))
        classes = logits.argmax(1).unique()
        notes = [f"predicts one class ({data.classes[int(classes[0])]!r}) for every test sample"] \
            if len(classes) == 1 else []
        notes += [m.pop("onnx_warning")] if "onnx_warning" in m else []
        warning = f"seed {seed}: {name} " + "; ".join(notes) if notes else None
        if warning:
            log.warning("%s", warning)
        measured[name] = {"metrics": m, "model": model, "history": history.epochs, "logits": logits,
                          "warning": warning}
        info = {"arch": specs[name].arch_of(model), "input_shape": list(shape), "classes": data.classes,  # for export
                "dataset": data.name, "split": data.info, "distilled": specs[name].distilled,
                "settings": json.loads(json.dumps(specs[name].hyperparams, default=str))}
        members.save(model, out / "weights", f"{slug(name)}-seed{seed}", info)
    base = measured[teacher_name]["metrics"]["onnx_ms_b64"]
    for r in measured.values():
        own = r["metrics"]["onnx_ms_b64"]
        r["metrics"]["speedup"] = base / own if base is not None and own else None
    return measured


def _summary(spec: ModelSpec, seeds: list[dict]) -> dict:
    """A model's entry of ``results.json``: kind, sizes, hyperparameters, mean and std of every
    metric over the seeds it was trained on (``None`` where a kind has no such number), the first
    seed's calibration bins."""
    first = seeds[0]
    entry = {"name": spec.name, "kind": first["kind"], "params": first["params"], "size_mb": first["size_mb"],
             "hyperparams": spec.hyperparams, "std": {}}
    for key in METRICS:
        values = [m[key] for m in seeds]
        entry[key], entry["std"][key] = (None, None) if None in values else mean_std(values)
    entry["per_class"] = first["per_class"]
    entry["calibration"] = first["calibration"]
    entry["per_seed"] = [{k: m[k] for k in ("seed", *METRICS, "epochs_trained", "epoch_kept")} for m in seeds]
    return entry


def still_improving(models: list[dict]) -> list[str]:
    """One note per model whose best validation epoch was its last, on some seed: it was still
    improving when its budget ran out, so more epochs (or steps, where a step budget ended it) may
    buy more."""
    notes = []
    for m in models:
        last = [s for s in m.get("per_seed", []) if s.get("epochs_trained", 0) > 1
                and s.get("epoch_kept") == s["epochs_trained"]]
        if not last:
            continue
        steps = m.get("hyperparams", {}).get("max_steps")
        budget = ("Raise the epoch budget (train.epochs in an experiment file, epochs= in compare)" if steps is None
                  else f"Raise the budget (train.epochs, and train.max_steps, which caps it at {steps} optimizer "
                       f"steps, in an experiment file; epochs= and max_steps= in compare)")
        notes.append(f"{m['name']} was still improving when training ended: its best validation epoch was its "
                     f"last ({last[0]['epoch_kept']} of {last[0]['epochs_trained']}) on seed(s) "
                     f"{', '.join(str(s['seed']) for s in last)}. {budget} or let kdistill tune choose it.")
    return notes


def _plots(out: Path, data: Splits, measured: dict, results: dict, distilled: list[str]) -> None:
    names = [m["name"] for m in results["models"] if m["name"] in measured]
    for name in names:
        history = measured[name]["history"]
        if history:  # a model used as loaded, or a scikit-learn model, has no training curves
            kept = measured[name]["metrics"]["epoch_kept"] - 1
            panels = [CurvesDisplay(history, metric, kept) for metric in ("accuracy", "loss")]
            if len(terms_of(history)) > 1:  # the objective's terms, e.g. CE and KD, one by one
                panels.append(CurvesDisplay(history, "terms", kept))
            save_figure(out / f"curves-{slug(name)}.png", panels,
                        title=f"{name}: training curves (seed of the first run; dotted: the epoch kept)",
                        panel=(5, 3.8))
    save_figure(out / "confusion.png", [ConfusionDisplay(measured[n]["metrics"]["confusion"], data.classes, n)
                                        for n in names])
    save_figure(out / "tradeoff.png", [TradeoffDisplay(results["models"], "size_mb"),
                                       TradeoffDisplay(results["models"], "latency_ms")], panel=(5.5, 4.2))
    save_figure(out / "calibration.png", [CalibrationDisplay(m["calibration"], m["name"], m["ece"])
                                          for m in results["models"]], cols=3, panel=(4, 4))
    if len(data.input_shape) != 3:
        return  # a prediction grid shows images; tables have none
    best = max(distilled, key=lambda n: measured[n]["metrics"]["accuracy"])
    n = min(16, len(data.test))
    rows = [data.test[i] for i in range(n)]
    images = display_images(torch.stack([r[0] for r in rows]).numpy(), data.info.get("normalization"))
    true = [int(r[1]) for r in rows]
    pred = measured[best]["logits"][:n].argmax(1).tolist()
    save_figure(out / "predictions.png", [PredictionGridDisplay(images, pred, true, data.classes)],
                title=f"{best}: first {n} test images as read (green right, red wrong)", panel=(8.4, 9.2))
