"""One study, end to end: splits per seed -> teacher -> students -> evaluation -> run folder.

A study trains the teacher, then every student from the same initial weights (per seed), and
compares them on the test split. The student trained without distillation is always part of
it, so the table says plainly what distillation bought, and whether the difference exceeds
the seed-to-seed noise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ..data import Splits
from ..engine import History, Runtime, fit
from ..export import export
from ..files import atomic_write, make_dir
from ..methods import objective
from ..metrics import classification_metrics, fidelity, latency_ms, mean_std, predict_logits
from ..models import count_params, size_mb
from ..report import ConfusionDisplay, CurvesDisplay, PredictionGridDisplay, results_markdown, save_figure, slug
from ..teachers import CachedTeacher
from ..weights import save_weights
from .folders import teacher_cache_dir
from .specs import ModelSpec
from .verdicts import verdicts

log = logging.getLogger("kdistill")

ONNX = ("onnx_ms_b1", "onnx_ms_b64", "onnx_mb")
METRICS = ("accuracy", "macro_f1", "agreement", "kl_to_teacher", "latency_ms", "onnx_ms_b1", "onnx_ms_b64", "onnx_mb",
           "speedup")


def run_study(load: Callable[[int], Splits], teacher: ModelSpec, students: list[ModelSpec], *, out, seeds=(0,),
              title: str = "kdistill study", config: dict | None = None, quiet: bool = False,
              resume: bool = False, cache_dir=None) -> dict | None:
    """Run the study for every seed and write the run folder ``out``.

    ``load(seed)`` returns the splits for a seed. The first student whose objective needs no
    teacher is the baseline the others are compared with. Every model checkpoints each epoch
    into ``out/checkpoints``; with ``resume`` each continues from its checkpoint. The teacher's
    outputs are cached in :func:`~kdistill.study.folders.teacher_cache_dir` (``cache_dir``).
    Returns the results dictionary that is also written to ``out/results.json`` (``None`` on
    ranks other than 0 under torchrun, which train but write nothing).
    """
    out = Path(out)
    is_main = Runtime.current().is_main
    specs = {s.name: s for s in (teacher, *students)}
    if is_main:
        for sub in ("weights", "onnx", "checkpoints"):
            make_dir(out / sub, inside=out)  # never a link out of the run folder
        atomic_write(out / "config.json", json.dumps(config or {}, indent=2, default=str) + "\n")
    per_seed: dict[str, list[dict]] = {}
    histories, checks, warnings, first = [], [], [], None
    for seed in seeds:
        data = load(seed)
        runs, check = _train_seed(seed, data, teacher, students, out, quiet, resume, cache_dir)
        if not is_main:
            continue
        measured = _measure_seed(seed, data, runs, specs, out)
        checks.append(check)
        warnings += [w for w in [check["message"]] + [r["warning"] for r in measured.values()] if w]
        for name, r in measured.items():
            per_seed.setdefault(name, []).append({"seed": seed, **r["metrics"]})
            histories += [json.dumps({"model": name, "seed": seed, **rec}) + "\n" for rec in r["history"]]
        first = first or (data, measured)
    if not is_main:
        return None
    atomic_write(out / "history.jsonl", "".join(histories))
    data, measured = first
    alone = next(s.name for s in students if not _distilled(s))
    distilled = [s.name for s in students if s.name != alone]
    results = {"title": title, "dataset": data.name, "classes": data.classes, "seeds": list(seeds),
               "split_sizes": data.info.get("sizes"), "unlabeled": data.info.get("unlabeled", 0),
               "models": [_summary(spec, per_seed[name]) for name, spec in specs.items() if name in per_seed],
               "comparisons": verdicts(per_seed, alone, distilled), "teacher_checks": checks,
               "warnings": warnings}
    atomic_write(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write(out / "results.md", results_markdown(results))
    _plots(out, data, measured, [n for n in specs if n in measured],
           [n for n in distilled if n in measured] or [alone])
    return results


def _distilled(spec: ModelSpec) -> bool:
    return any(t.method.needs_teacher for t in objective(spec.objective))


def _train_seed(seed: int, data: Splits, teacher_spec: ModelSpec, students: list[ModelSpec], out: Path,
                quiet: bool, resume: bool, cache_dir=None) -> tuple[dict, dict]:
    """Train every model for one seed (on every rank under torchrun), each with a checkpoint
    in the run folder so that an interrupted run can be resumed: the teacher, the students
    trained alone, then — unless the teacher is unfit to teach (:func:`check_teacher`) — the
    distilled students. Returns the runs and the teacher's check."""
    shape, k = data.input_shape, data.num_classes

    def train(spec: ModelSpec, model, teacher=None) -> History:
        if not spec.fit:
            return History([])
        folder = out / "checkpoints" / f"{slug(spec.name)}-seed{seed}"
        if Runtime.current().is_main:
            make_dir(folder, inside=out)
        options = {**spec.train, "seed": seed, "quiet": quiet, "resume": resume,  # the study's own settings win
                   "checkpoint_dir": str(folder)}
        return fit(model, data, objective=spec.objective, teacher=teacher, **options)

    def student(spec: ModelSpec, teacher=None):
        torch.manual_seed(seed)  # every student starts from the same weights within a seed
        model = spec.build(shape, k)
        runs[spec.name] = (model, train(spec, model, teacher))

    torch.manual_seed(seed)
    teacher = teacher_spec.build(shape, k)
    runs = {teacher_spec.name: (teacher, train(teacher_spec, teacher))}
    for spec in students:
        if not _distilled(spec):
            student(spec)
    check = check_teacher(seed, data, teacher, [runs[s.name][0] for s in students if not _distilled(s)])
    if check["collapsed"]:
        log.error("%s", check["message"])
        return runs, check
    if check["message"]:
        log.warning("%s", check["message"])
    cached = CachedTeacher(teacher, cache_dir=teacher_cache_dir(out, cache_dir))  # one pass per split, all students
    for spec in students:
        if _distilled(spec):
            student(spec, cached)
    first_use = {}
    for entry in cached.entries:
        first_use.setdefault(entry["entry"], entry)
    check["cache"] = list(first_use.values())  # what the teacher's cached outputs hold and cost
    return runs, check


def check_teacher(seed: int, data: Splits, teacher, alone: list, collapse: float = 0.95) -> dict:
    """Is the teacher fit to teach? On the validation split: has it collapsed onto (nearly) one
    class — at least ``collapse`` of its predictions in one class that holds at least 5 points
    less of the labels — and is it better than the students trained alone?"""
    split = data.val if data.val is not None else data.train
    logits, labels = predict_logits(teacher, split)
    pred = logits.argmax(1)
    top = int(pred.mode().values)
    share, truth = float((pred == top).float().mean()), float((labels == top).float().mean())
    accuracy = float((pred == labels).float().mean())
    best_alone = max((float((predict_logits(m, split)[0].argmax(1) == labels).float().mean()) for m in alone),
                     default=None)
    check = {"seed": seed, "split": "val" if data.val is not None else "train", "teacher_accuracy": accuracy,
             "alone_accuracy": best_alone, "top_class": data.classes[top], "top_share": share,
             "collapsed": share >= collapse and share >= truth + 0.05, "message": None, "cache": []}
    if check["collapsed"]:
        check["message"] = (f"seed {seed}: the teacher predicts class {data.classes[top]!r} for {share:.0%} of the "
                            f"{check['split']} split, which holds {truth:.0%} of it: it has collapsed and would teach "
                            f"only that class, so no student is distilled from it on this seed. Retrain it (e.g. "
                            f"a lower learning rate or more epochs) or load a better one.")
    elif best_alone is not None and accuracy <= best_alone:
        check["message"] = (f"seed {seed}: the teacher's {check['split']} accuracy ({accuracy:.3f}) is no better than "
                            f"the student alone's ({best_alone:.3f}): distilling it can pass on little but its "
                            f"mistakes. Train the teacher longer or larger, or use a better one.")
    return check


def _measure_seed(seed: int, data: Splits, runs: dict, specs: dict[str, ModelSpec], out: Path) -> dict:
    """Evaluate every trained model of one seed on the test split and save its weights."""
    shape = data.input_shape
    teacher_name = next(iter(runs))
    logits_t, labels = predict_logits(runs[teacher_name][0], data.test)
    measured = {}
    for name, (model, history) in runs.items():
        log.info("seed %d: %s trained for %d epoch(s)", seed, name, len(history.epochs))
        logits, _ = predict_logits(model, data.test)
        m = classification_metrics(logits, labels, data.classes)
        m["epochs_trained"] = len(history.epochs)
        m["epoch_kept"] = history.best_epoch + 1 if history.best_epoch is not None else len(history.epochs)
        m.update(fidelity(logits, logits_t), **dict.fromkeys(("params", "size_mb", "latency_ms", *ONNX)))
        module = isinstance(model, torch.nn.Module)  # else a teacher used as loaded (e.g. scikit-learn): run only
        if module:
            m.update(params=count_params(model), size_mb=size_mb(model), latency_ms=latency_ms(model, shape))
            m.update(_onnx_metrics(model, shape, out / "onnx" / f"{slug(name)}-seed{seed}.onnx"))
        classes = logits.argmax(1).unique()
        warning = (f"seed {seed}: {name} predicts one class ({data.classes[int(classes[0])]!r}) for every test "
                   f"sample" if len(classes) == 1 else None)
        if warning:
            log.warning("%s", warning)
        measured[name] = {"metrics": m, "model": model, "history": history.epochs, "logits": logits,
                          "warning": warning}
        info = None if specs[name].arch is None else {  # what `kdistill export` needs to rebuild the model
            "arch": specs[name].arch, "input_shape": list(shape), "classes": data.classes, "dataset": data.name,
            "split": data.info}
        if module:
            save_weights(model, out / "weights" / f"{slug(name)}-seed{seed}.safetensors", info)
    for r in measured.values():
        fast, slow = r["metrics"]["onnx_ms_b64"], measured[teacher_name]["metrics"]["onnx_ms_b64"]
        r["metrics"]["speedup"] = slow / fast if slow is not None and fast is not None else None
    return measured


def _onnx_metrics(model, shape, path: Path) -> dict:
    """ONNX file size and onnxruntime p50 latency per batch of 1 and of 64 (parity-checked)."""
    r = export(model, shape, path)
    return {"onnx_ms_b1": r["latency"]["batch1"]["p50_ms"], "onnx_ms_b64": r["latency"]["batch64"]["p50_ms"],
            "onnx_mb": r["size_mb"]}


def _summary(spec: ModelSpec, seeds: list[dict]) -> dict:
    """A model's entry of ``results.json``: sizes, hyperparameters, mean and std of every metric
    over the seeds it was trained on."""
    entry = {"name": spec.name, "params": seeds[0]["params"], "size_mb": seeds[0]["size_mb"],
             "hyperparams": spec.hyperparams, "std": {}}
    for key in METRICS:
        values = [m[key] for m in seeds]
        entry[key], entry["std"][key] = (None, None) if None in values else mean_std(values)
    entry["per_class"] = seeds[0]["per_class"]
    entry["per_seed"] = [{k: m[k] for k in ("seed", *METRICS, "epochs_trained", "epoch_kept")} for m in seeds]
    return entry


def _plots(out: Path, data: Splits, measured: dict, names: list[str], distilled: list[str]) -> None:
    for name in names:
        history = measured[name]["history"]
        if history:  # a model used as loaded has no training curves
            save_figure(out / f"curves-{slug(name)}.png", [CurvesDisplay(history, "accuracy"),
                                                           CurvesDisplay(history, "loss")],
                        title=f"{name}: training curves (seed of the first run)", panel=(5, 3.8))
    save_figure(out / "confusion.png", [ConfusionDisplay(measured[n]["metrics"]["confusion"], data.classes, n)
                                        for n in names])
    if len(data.input_shape) != 3:
        return  # a prediction grid shows images; tables have none
    best = max(distilled, key=lambda n: measured[n]["metrics"]["accuracy"])
    n = min(16, len(data.test))
    rows = [data.test[i] for i in range(n)]
    images = torch.stack([r[0] for r in rows]).numpy()
    true = [int(r[1]) for r in rows]
    pred = measured[best]["logits"][:n].argmax(1).tolist()
    save_figure(out / "predictions.png", [PredictionGridDisplay(images, pred, true, data.classes)],
                title=f"{best}: first {n} test images (green right, red wrong)", panel=(8.4, 9.2))
