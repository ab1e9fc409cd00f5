"""One experiment, end to end: data -> teacher -> students -> evaluation -> run folder.

A study trains the teacher, then every student from the same initial weights (per seed), and
compares them on the test split. The student trained without distillation is always part of
it, so the table says plainly what distillation bought, and whether the difference exceeds
the seed-to-seed noise.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import as_file
from pathlib import Path

import torch
from safetensors.torch import save_file
from scipy.stats import t as student_t

from . import report
from .cache import ENV_VAR, CachedTeacher
from .data import Splits
from .engine import History, Runtime, fit
from .methods import objective
from .export import export
from .metrics import classification_metrics, fidelity, latency_ms, mean_std, predict_logits
from .models import count_params, size_mb

log = logging.getLogger("kdistill")

METRICS = ("accuracy", "macro_f1", "agreement", "kl_to_teacher", "latency_ms", "onnx_ms_b1", "onnx_ms_b64", "onnx_mb",
           "speedup")


@dataclass
class ModelSpec:
    """How to build and train one model of a study.

    ``objective`` is the engine's weighted term list; any term needing a teacher makes the
    model a distilled student. ``hyperparams`` are what the results table shows. ``fit=False``
    uses the model as built (a teacher whose weights were loaded). ``arch`` is the model's
    ``{"model": name, "options": {...}}`` spec for :func:`kdistill.transfer.build_model`, stored in
    its weights file so that ``kdistill export`` can rebuild it.
    """

    name: str
    build: Callable[[tuple, int], torch.nn.Module]
    objective: list = field(default_factory=lambda: [("ce", 1.0)])
    train: dict = field(default_factory=dict)
    hyperparams: dict = field(default_factory=dict)
    fit: bool = True
    arch: dict | None = None


def free_dir(path) -> tuple[Path, bool]:
    """``path`` if it does not exist or is empty, else the first free ``path-2``, ``path-3``...
    Returns the folder and whether it differs from the one asked for."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return path, False
    n = 2
    while Path(f"{path}-{n}").exists():
        n += 1
    return Path(f"{path}-{n}"), True


INCOMPLETE = "INCOMPLETE"
CACHE = "teacher-cache"  # inside the run folder: shared by the students (and sweep trials) of a run


def open_run_dir(asked, resume: bool = False, runtime: Runtime | None = None) -> Path:
    """The folder a run writes to, created and marked ``INCOMPLETE`` until the run finishes.

    Without ``resume`` an existing non-empty folder is never reused: the next free ``asked-N``
    is used and named in a warning. With ``resume`` ``asked`` must be an interrupted run. Under
    torchrun, rank 0 decides and every rank gets the same folder. The folder is proven writable
    before any data is read.
    """
    rt = runtime or Runtime.current()
    folder = None
    if rt.is_main:
        folder = _choose_run_dir(Path(asked), resume)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / INCOMPLETE).write_text(f"started {time.strftime('%Y-%m-%d %H:%M:%S')}; this run has not "
                                             f"finished: continue it with --resume\n")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write the run folder {folder}: {exc.strerror or exc}; choose a "
                                     f"writable --out") from exc
    return rt.broadcast(folder)


def _choose_run_dir(asked: Path, resume: bool) -> Path:
    if resume:
        if (asked / INCOMPLETE).exists():
            log.info("resuming the interrupted run in %s", asked)
            return asked
        state = "holds a finished run" if (asked / "results.json").exists() else "holds no interrupted run"
        raise FileExistsError(f"cannot resume {asked}: it {state}; --resume continues a folder marked "
                              f"{INCOMPLETE} by an interrupted run")
    folder, moved = free_dir(asked)
    if moved:
        what = ("an interrupted run (continue it with --resume)" if (asked / INCOMPLETE).exists()
                else "a run")
        log.warning("%s already holds %s; writing to %s instead", asked, what, folder)
    return folder


def teacher_cache_dir(out: Path, cache_dir=None) -> Path:
    """Where a run caches its teacher's outputs: ``cache_dir``, else ``$KDISTILL_CACHE_DIR``
    (both kept, so a later run with the same teacher and data reuses them), else the run's own
    ``RUN_DIR/teacher-cache``, shared by its students and trials and removed when it finishes."""
    chosen = cache_dir or os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else Path(out) / CACHE


def finish_run_dir(folder: Path) -> None:
    """Mark the run finished: checkpoints and cached teacher outputs are no longer needed once
    the weights are written."""
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    shutil.rmtree(folder / CACHE, ignore_errors=True)
    (folder / INCOMPLETE).unlink(missing_ok=True)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _train_seed(seed: int, data: Splits, teacher_spec: ModelSpec, students: list[ModelSpec], out: Path,
                quiet: bool, resume: bool, cache_dir=None) -> dict:
    """Train every model for one seed (on every rank under torchrun), each with a checkpoint
    in the run folder so that an interrupted run can be resumed."""
    shape, k = data.input_shape, data.num_classes

    def train(spec: ModelSpec, model, teacher=None) -> History:
        if not spec.fit:
            return History([])
        options = {**spec.train, "seed": seed, "quiet": quiet, "resume": resume,  # the study's own settings win
                   "checkpoint_dir": str(out / "checkpoints" / f"{_slug(spec.name)}-seed{seed}")}
        return fit(model, data, objective=spec.objective, teacher=teacher, **options)

    torch.manual_seed(seed)
    teacher = teacher_spec.build(shape, k)
    runs = {teacher_spec.name: (teacher, train(teacher_spec, teacher))}
    cached = CachedTeacher(teacher, cache_dir=teacher_cache_dir(out, cache_dir))  # one pass per split, all students
    for spec in students:
        torch.manual_seed(seed)  # every student starts from the same weights within a seed
        student = spec.build(shape, k)
        runs[spec.name] = (student, train(spec, student, cached))
    return runs


def _measure_seed(seed: int, data: Splits, runs: dict, specs: dict, out: Path) -> dict:
    """Evaluate every trained model of one seed on the test split and save its weights."""
    shape = data.input_shape
    teacher_name = next(iter(runs))
    logits_t, labels = predict_logits(runs[teacher_name][0], data.test)
    measured = {}
    for name, (model, history) in runs.items():
        log.info("seed %d: %s trained for %d epoch(s)", seed, name, len(history.epochs))
        logits, _ = predict_logits(model, data.test)
        m = classification_metrics(logits, labels, data.classes)
        m.update(fidelity(logits, logits_t))
        m["latency_ms"] = latency_ms(model, shape)
        m["epochs_trained"] = len(history.epochs)
        m.update(_onnx_metrics(model, shape, out / "onnx" / f"{_slug(name)}-seed{seed}.onnx"))
        measured[name] = {"metrics": m, "model": model, "history": history.epochs, "logits": logits}
        save_file({k_: v.contiguous() for k_, v in model.state_dict().items()},
                  out / "weights" / f"{_slug(name)}-seed{seed}.safetensors",
                  metadata=_weights_metadata(specs[name], data))
    for r in measured.values():
        r["metrics"]["speedup"] = measured[teacher_name]["metrics"]["onnx_ms_b64"] / r["metrics"]["onnx_ms_b64"]
    return measured


def _onnx_metrics(model, shape, path: Path) -> dict:
    """ONNX file size and onnxruntime p50 latency per batch of 1 and of 64 (parity-checked)."""
    r = export(model, shape, path)
    return {"onnx_ms_b1": r["latency"]["batch1"]["p50_ms"], "onnx_ms_b64": r["latency"]["batch64"]["p50_ms"],
            "onnx_mb": r["size_mb"]}


def _weights_metadata(spec: ModelSpec, data: Splits) -> dict[str, str] | None:
    """What ``kdistill export`` needs to rebuild the model from its weights file alone."""
    if spec.arch is None:
        return None
    return {"kdistill": json.dumps({"arch": spec.arch, "input_shape": list(data.input_shape),
                                    "classes": data.classes, "dataset": data.name, "split": data.info})}


def _verdicts(per_seed: dict[str, list[dict]], alone: str, students: list[str]) -> list[dict]:
    """Paired comparison of each distilled student with the student trained alone."""
    out = []
    for name in students:
        diffs = [a["accuracy"] - b["accuracy"] for a, b in zip(per_seed[name], per_seed[alone])]
        mean, std = mean_std(diffs)
        n = len(diffs)
        if n < 2:
            verdict = (f"{name} vs {alone}: {mean:+.3f} test accuracy on one seed; run with --seeds 3 or more "
                       f"to tell it from seed-to-seed noise.")
            significant = None
        else:
            # A paired t-test at the 5% level: |mean| beyond t(0.975, n-1) standard errors. With
            # few seeds that quantile is large (12.7 for 2 seeds, 4.3 for 3), as it must be.
            se = std / n ** 0.5
            significant = bool(abs(mean) > student_t.ppf(0.975, n - 1) * se if se > 0 else mean != 0)
            word = ("better" if mean > 0 else "worse") if significant else "no different, within noise,"
            verdict = (f"{name} vs {alone}: {mean:+.3f} ± {se:.3f} (paired over {n} seeds, t-test at 5%): {word} "
                       f"{'than' if significant else 'from'} the student alone.")
        out.append({"model": name, "baseline": alone, "accuracy_delta": mean, "accuracy_delta_std": std,
                    "seeds": n, "significant": significant, "verdict": verdict})
    return out


def run_study(load: Callable[[int], Splits], teacher: ModelSpec, students: list[ModelSpec], *, out, seeds=(0,),
              title: str = "kdistill study", config: dict | None = None, quiet: bool = False,
              resume: bool = False, cache_dir=None) -> dict | None:
    """Run the study for every seed and write the run folder ``out``.

    ``load(seed)`` returns the splits for a seed. The first student whose objective needs no
    teacher is the baseline the others are compared with. Every model checkpoints each epoch
    into ``out/checkpoints``; with ``resume`` each continues from its checkpoint. The teacher's
    outputs are cached in :func:`teacher_cache_dir` (``cache_dir``). Returns the
    results dictionary that is also written to ``out/results.json`` (``None`` on ranks other
    than 0 under torchrun, which train but write nothing).
    """
    out = Path(out)
    is_main = Runtime.current().is_main
    specs_by_name = {s.name: s for s in (teacher, *students)}
    if is_main:
        (out / "weights").mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config or {}, indent=2, default=str) + "\n")
    per_seed: dict[str, list[dict]] = {}
    histories = []
    first = None
    for seed in seeds:
        data = load(seed)
        runs = _train_seed(seed, data, teacher, students, out, quiet, resume, cache_dir)
        if not is_main:
            continue
        measured = _measure_seed(seed, data, runs, specs_by_name, out)
        for name, r in measured.items():
            per_seed.setdefault(name, []).append(r["metrics"])
            histories += [json.dumps({"model": name, "seed": seed, **rec}) + "\n" for rec in r["history"]]
        if first is None:
            first = (data, measured)
    if not is_main:
        return None
    (out / "history.jsonl").write_text("".join(histories))
    specs = [teacher, *students]
    models = []
    for spec in specs:
        model = first[1][spec.name]["model"]
        entry = {"name": spec.name, "params": count_params(model), "size_mb": size_mb(model),
                 "hyperparams": spec.hyperparams, "std": {}}
        for key in METRICS:
            entry[key], entry["std"][key] = mean_std([m[key] for m in per_seed[spec.name]])
        entry["per_class"] = per_seed[spec.name][0]["per_class"]
        entry["per_seed"] = [{k: m[k] for k in (*METRICS, "epochs_trained")} for m in per_seed[spec.name]]
        models.append(entry)
    alone = next(s.name for s in students if not any(t.method.needs_teacher for t in objective(s.objective)))
    distilled = [s.name for s in students if s.name != alone]
    data = first[0]
    results = {"title": title, "dataset": data.name, "classes": data.classes, "seeds": list(seeds),
               "split_sizes": data.info.get("sizes"), "models": models,
               "comparisons": _verdicts(per_seed, alone, distilled)}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report.results_markdown(results))
    _plots(out, data, first[1], specs, distilled or [alone])
    return results


def _plots(out: Path, data: Splits, measured: dict, specs: list[ModelSpec], distilled: list[str]) -> None:
    for spec in specs:
        if not measured[spec.name]["history"]:
            continue  # used as loaded: no training curves
        report.plot_curves(measured[spec.name]["history"], out / f"curves-{_slug(spec.name)}.png",
                           f"{spec.name}: training curves (seed of the first run)")
    report.plot_confusions({s.name: measured[s.name]["metrics"]["confusion"] for s in specs}, data.classes,
                           out / "confusion.png")
    if len(data.input_shape) != 3:
        return  # a prediction grid shows images; tables have none
    best = max(distilled, key=lambda n: measured[n]["metrics"]["accuracy"])
    n = min(16, len(data.test))
    rows = [data.test[i] for i in range(n)]
    images = torch.stack([r[0] for r in rows]).numpy()
    true = [int(r[1]) for r in rows]
    pred = measured[best]["logits"][:n].argmax(1).tolist()
    report.plot_prediction_grid(images, pred, true, data.classes, out / "predictions.png",
                                f"{best}: first {n} test images (green right, red wrong)")


# --------------------------------------------------------------------------------------------
# The demo: the seed case study on scikit-learn's digits, as a bundled experiment file.


def demo_file():
    """The bundled experiment file of the demo (``kdistill/experiments/demo.yaml``)."""
    from importlib.resources import files

    return files("kdistill") / "experiments" / "demo.yaml"


def run_demo(out="runs/demo", seeds: int = 1, epochs: int | None = None, quiet: bool = False,
             cache_dir=None) -> tuple[dict, Path]:
    """The seed case study on ``digits`` (:func:`demo_file`): a CNN teacher, and a small CNN
    student trained alone and distilled at T=2 and T=6 (alpha=0.5). Never overwrites: an
    existing non-empty ``out`` makes it write to the next free ``out-N``. Returns the results
    and the folder used."""
    from . import config
    from .experiment import run_experiment

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    overrides = [f"seeds={list(range(seeds))}"] + ([f"train.epochs={epochs}"] if epochs is not None else [])
    with as_file(demo_file()) as path:
        exp = config.load(path, overrides)
    return run_experiment(exp, out=out, quiet=quiet, cache_dir=cache_dir)
