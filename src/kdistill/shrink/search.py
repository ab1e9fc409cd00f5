"""``kdistill.shrink``: the most accurate student within a budget, searched.

1. The budget is made absolute against the teacher (:mod:`.budget`); the candidates are pruned
   copies of the trained teacher and members of a family scaled to it (:mod:`.candidates`).
   They are made once, by the process that creates the search's study, and recorded in it, so
   every worker of a shared study trains the same candidates.
2. The teacher's outputs are cached once for the training set the candidates distil on (its
   unlabelled pool included) and for validation; every candidate reads them.
3. Each candidate is one trial of an Optuna study (a grid over the candidates) on a storage that
   several processes or machines may share; successive halving (Optuna's
   ``SuccessiveHalvingPruner``, reduction factor 3, rungs at epochs 1, 3, 9...) stops the weak
   ones after their first epochs, so the search costs a small multiple of one student's training.
4. The architectures on the front (or every candidate, or only the chosen: ``references``) are
   trained alone, from new weights on the labels, for their distilled twin's epochs, as trials of
   a second study (``<study_name>.alone.<id>``): the front's reference points, which show what
   distillation adds at each budget.
5. The chosen student (the most accurate on validation, or the smallest within ``tolerance`` of
   the teacher) and its architecture trained alone are the students of a study run by the same
   runner as ``kdistill run``: the run folder, report, verdicts and never-worse-than-alone
   comparison, weights (a pruned student's layer sizes stored as data), ONNX files and latency;
   ``shrink.json``, ``pareto.md`` and ``pareto.png`` hold the search and its Pareto front.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from torch import nn

from ..arguments import check_data, check_objective, check_seeds
from ..data import Splits
from ..engine import TrainConfig
from ..files import atomic_write
from ..methods import ALONE, kd_objective
from ..models import count_params
from ..models.prune import ALLOCATIONS, IMPORTANCE
from ..report import save_figure, write_report
from ..study import ModelSpec, run_in_folder, teacher_cache_dir
from ..study.specs import objective_shown
from ..teachers import CachedTeacher
from . import pareto
from .budget import Budget, check_budget, check_family
from .candidates import Candidate, candidates
from .measure import measured, resolve
from .trials import Objective, open_study, wait, work

log = logging.getLogger("kdistill")

CHOICES = ("accurate", "smallest")
REFERENCES = ("front", "all", "chosen")


def shrink(teacher: nn.Module, data: Splits, *, budget: dict, family: dict | None = None, objective=None,
           importance=("magnitude",), iterative_steps: int = 1, allocation=("uniform",), choose: str = "accurate",
           tolerance: float | None = None, references: str = "front", seeds=(0,), out=None, storage: str | None = None,
           study_name: str = "shrink", worker: bool = False, quiet: bool = False, cache_dir=None,
           teacher_arch: dict | None = None, title: str | None = None, **train) -> dict:
    """Search the most accurate student within ``budget``, distilled from ``teacher``.

    Parameters
    ----------
    teacher : nn.Module
        The trained teacher, used as it is (pruned copies inherit its weights).
    data : Splits
        The splits the teacher was trained on; a validation split is required (the search
        scores on it); an unlabelled pool is distilled on too.
    budget : dict
        ``{"params": 0.1}``, ``{"macs": 2e6}``, ``{"size_mb": 0.2}``, ``{"latency_ms": 0.2,
        "batch": 1}``... (see :mod:`kdistill.shrink.budget`).
    family : dict, optional
        ``{"model": NAME, "options": {...}, "width": [OPTION...]}`` scaled to the budget and
        trained from new weights (default: the zoo's ``cnn`` for images, ``mlp`` for tables).
    objective : list, optional
        The distillation recipe of every candidate (default ``kd_objective(0.5, 4)``).
    importance : sequence of {"magnitude", "taylor"}
        Pruning criteria tried (one pruned candidate per criterion and budget share).
    iterative_steps : int
        Pruning steps to reach each ratio.
    allocation : sequence of {"uniform", "global"}
        How each pruned candidate spreads the pruning over the layers: the same channel share in
        every layer, or the channels of all layers ranked together (one candidate per allocation,
        criterion and budget share).
    choose : {"accurate", "smallest"}
        The most accurate candidate on validation, or the smallest whose validation accuracy is
        within ``tolerance`` (accuracy points, e.g. 0.01) of the teacher's (else the most accurate).
    references : {"front", "all", "chosen"}
        Which architectures are also trained alone (new weights, labels only, as many epochs as
        their distilled twin) as the front's reference points, showing what distillation adds at
        each budget: those on the Pareto front, every candidate, or only the chosen one (which the
        final study trains alone in any case). Their cost is reported apart from the search's
        (``references_s``).
    seeds : sequence of int
        Seeds of the final study (the search uses the first).
    out : path, optional
        Run folder (default ``runs/shrink``; never overwritten).
    storage : str, optional
        Optuna database URL shared by every process of the search (default
        ``sqlite:///<out>/shrink.db``; ``postgresql+psycopg2://user@host/db`` for several machines).
    worker : bool
        Only run trials of the shared study (another process makes the final study).
    **train
        :class:`~kdistill.TrainConfig` options of every candidate (``epochs``, ``lr``, ...).

    Returns
    -------
    dict
        ``shrink.json``'s content (candidates, front, chosen, budget, cost) with the final
        study's ``results`` and ``folder``.
    """
    settings = _checked(teacher, data, budget, family, objective, importance, iterative_steps, choose, tolerance,
                        references, seeds, train, allocation)
    if worker:
        if storage is None:
            raise ValueError("worker=True (--worker) runs trials of a shared study, so it needs storage: the database "
                             "URL every process of the search uses")
        with tempfile.TemporaryDirectory(prefix="kdistill-shrink-") as tmp:  # a worker keeps no run folder
            summary = _search(teacher, data, settings, Path(tmp), storage, study_name, True, quiet, cache_dir)
        return {**_public(summary), "results": None, "folder": None}
    folder_holder: dict = {}
    chosen_spec, alone_spec = _placeholder("chosen"), _placeholder("alone")
    t_spec = ModelSpec("teacher", lambda shape, k: teacher, fit=False, arch=teacher_arch,
                       hyperparams={"model": type(teacher).__name__, "trained": "given"})

    def setup(folder: Path):
        summary = _search(teacher, data, settings, folder, storage, study_name, False, quiet, cache_dir)
        folder_holder["summary"] = summary
        chosen = summary["candidate"]
        _fill(chosen_spec, f"{chosen.name} (distilled)", chosen, settings, teacher_arch, distilled=True)
        _fill(alone_spec, f"{chosen.name} alone", chosen.alone(), settings, teacher_arch, distilled=False)
        return (lambda seed: data), (lambda: {"name": data.name, "classes": data.classes})

    results, folder = run_in_folder(setup, t_spec, [alone_spec, chosen_spec], out=out or "runs/shrink",
                                    seeds=tuple(settings["seeds"]), title=title or "shrink: the student searched",
                                    config={"shrink": _shown(settings)}, quiet=quiet, cache_dir=cache_dir,
                                    device=train.get("device", "cpu"))
    summary = folder_holder["summary"]
    final = {m["name"]: m for m in results["models"]}
    summary["chosen"]["test_accuracy"] = final[chosen_spec.name]["accuracy"]
    summary["chosen"]["onnx_ms_b1"] = final[chosen_spec.name]["onnx_ms_b1"]
    summary["chosen"]["onnx_ms_b64"] = final[chosen_spec.name]["onnx_ms_b64"]
    summary["alone_test_accuracy"] = final[alone_spec.name]["accuracy"]
    _references(Path(folder), summary, alone_spec.name)
    out_summary = _public(summary)
    header, rows = pareto.table_rows(summary["candidates"], summary["budget"]["measure"], summary["teacher"],
                                     summary["references"])
    out_summary["table"] = {"header": header, "rows": rows, "note": pareto.ALONE_NOTE.strip()}  # for the report
    atomic_write(Path(folder) / "shrink.json", json.dumps(out_summary, indent=2, default=str) + "\n")
    write_report(folder)  # again, now with the search and its front
    return {**out_summary, "results": results, "folder": str(folder)}


def _public(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "candidate"}


def _placeholder(name: str) -> ModelSpec:
    return ModelSpec(name, lambda shape, k: None)


def _fill(spec: ModelSpec, name: str, cand: Candidate, settings: dict, teacher_arch, distilled: bool) -> None:
    """The final study's spec of candidate ``cand`` (made once the search has chosen it)."""
    objective = settings["objective"] if distilled else list(ALONE)
    spec.name, spec.objective, spec.train = name, objective, dict(settings["train"])
    spec.family = cand.name
    cfg = TrainConfig(**settings["train"])
    spec.hyperparams = {**objective_shown(objective, distilled), "epochs": cfg.epochs, "lr": cfg.lr}
    if cand.pruned is not None:
        spec.start = cand.pruned.start
        spec.arch = teacher_arch
        spec.hyperparams = {"prune": round(cand.pruned.prune, 4), "weights": cand.pruned.weights, **spec.hyperparams}
    else:
        spec.build = lambda shape, k, c=cand: c.make(None, _Shape(shape, k))
        spec.arch = cand.arch
        spec.hyperparams = {**cand.arch["options"], **spec.hyperparams}


class _Shape:
    """What a family member's factory needs of the data: the input shape and the class count."""

    def __init__(self, shape, k):
        self.input_shape, self.num_classes = tuple(shape), k


def _checked(teacher, data, budget, family, objective, importance, steps, choose, tolerance, references, seeds,
             train, allocation) -> dict:
    """Every argument checked before anything trains or any folder is made."""
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be a trained torch.nn.Module (pruned copies inherit its weights), got "
                        f"{type(teacher).__name__}")
    check_data(data, seeded=False)
    if data.val is None:
        raise ValueError("data has no validation split; shrink scores its candidates on validation, so give one")
    check_budget(budget)
    family = check_family(family) if family is not None else _zoo(data)
    objective = objective if objective is not None else kd_objective(0.5, 4.0)
    check_objective(objective)
    importance = _choices("importance", importance, IMPORTANCE)
    allocation = _choices("allocation", allocation, ALLOCATIONS)
    if type(steps) is not int or not 1 <= steps <= 100:
        raise ValueError(f"iterative_steps = {steps!r}: must be an integer from 1 to 100")
    if choose not in CHOICES:
        raise ValueError(f"choose = {choose!r}: allowed values are {', '.join(CHOICES)}")
    if choose == "smallest" and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                 or not 0 <= tolerance < 1):
        raise ValueError(f"tolerance = {tolerance!r}: choose='smallest' needs the accuracy points the student may "
                         f"lose against the teacher, a number from 0 to 1 (e.g. 0.01)")
    own = sorted(k for k in ("seed", "checkpoint_dir", "resume") if k in train)
    if own:
        raise ValueError(f"{', '.join(own)}: shrink sets these for each candidate (seeds= gives the seeds; every "
                         f"candidate and reference is its own trial, so none resumes another's checkpoint); "
                         f"remove {'it' if len(own) == 1 else 'them'}")
    if references not in REFERENCES:
        raise ValueError(f"references = {references!r}: allowed values are {', '.join(REFERENCES)}")
    TrainConfig.from_kwargs(**train)
    return {"budget": dict(budget), "family": family, "objective": objective, "importance": importance,
            "allocation": allocation, "steps": steps, "choose": choose, "tolerance": tolerance,
            "references": references, "seeds": list(check_seeds(seeds)), "train": dict(train)}


def _choices(field: str, given, allowed: tuple) -> list[str]:
    """``given`` (one value or several) as a list of distinct values of ``allowed``, else a
    ValueError naming the field, the value and what is allowed."""
    values = [given] if isinstance(given, str) else list(given) if isinstance(given, (list, tuple)) else None
    if not values or any(v not in allowed for v in values) or len(set(values)) != len(values):
        raise ValueError(f"{field} = {given!r}: give one or more of {', '.join(allowed)}, each once")
    return values


def _zoo(data: Splits) -> dict:
    if len(data.input_shape) == 3:
        return {"model": "cnn", "options": {"channels": [16, 32], "hidden": 64}, "width": ["channels", "hidden"]}
    return {"model": "mlp", "options": {"hidden": [64]}, "width": ["hidden"]}


def _shown(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k != "objective"} | {"objective": repr(settings["objective"])}


def _search(teacher, data, settings, folder: Path, storage, study_name, worker, quiet, cache_dir) -> dict:
    start = time.perf_counter()
    teacher = teacher.eval()
    seed = settings["seeds"][0]
    url = storage or f"sqlite:///{Path(folder).resolve() / 'shrink.db'}"
    key = _settings_key(settings)
    if quiet:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def make() -> dict:  # by the process that creates the study; every other one reads it
        budget = resolve(settings["budget"], teacher, data.input_shape)
        cands = candidates(teacher, budget, data, settings["family"], tuple(settings["importance"]),
                           settings["steps"], tuple(settings["allocation"]))
        return {"budget": asdict(budget), "teacher_figure": measured(teacher, budget.measure, data.input_shape,
                                                                     budget.batch),
                "candidates": [c.record() for c in cands]}

    study, made = open_study(url, study_name, key, make)
    budget = Budget(**made["budget"])
    cands = [Candidate.from_record(r, settings["family"]) for r in made["candidates"]]
    by_name = {c.name: c for c in cands}
    served = CachedTeacher(teacher, cache_dir=teacher_cache_dir(folder, cache_dir))
    built = time.perf_counter()
    cfg = TrainConfig(**settings["train"])
    for ds in (data.training(True, views=cfg.views), data.val):
        served.for_dataset(ds)
    cache_s, prepared = time.perf_counter() - built, time.perf_counter() - start
    searched = time.perf_counter()
    work(study, Objective(by_name, teacher, served, data, settings, seed, quiet), list(by_name))
    wait(study)
    search_s = time.perf_counter() - searched
    rows = _rows(study, by_name)
    teacher_row = {"name": "teacher", "kind": "teacher", "figure": made["teacher_figure"],
                   "params": count_params(teacher), "val_accuracy": _val_accuracy(teacher, data)}
    chosen = _choose(rows, settings["choose"], settings["tolerance"], teacher_row["val_accuracy"])
    referenced = time.perf_counter()
    references = _alone(url, f"{study_name}.alone.{study._study_id}", key, rows, chosen["name"], settings, by_name,
                        teacher, data, seed, quiet)
    summary = {"budget": {"given": settings["budget"], "measure": budget.measure, "limit": budget.limit,
                          "share": budget.share, "batch": budget.batch, "label": budget.label()},
               "candidates": rows, "front": [r["name"] for r in pareto.front(rows)], "teacher": teacher_row,
               "references": references, "chosen": dict(chosen), "choose": settings["choose"],
               "tolerance": settings["tolerance"], "seed": seed,
               "cost": {"prepare_s": prepared, "cache_build_s": cache_s, "search_s": search_s,
                        "trial_s": sum(r["seconds"] for r in rows), "epochs": sum(r["epochs"] for r in rows),
                        "one_student_epochs": cfg.epochs, "references_s": time.perf_counter() - referenced,
                        "reference_epochs": sum(r["epochs"] for r in references)},
               "candidate": by_name[chosen["name"]]}
    if not worker:
        _front_files(folder, summary)
    return summary


def _settings_key(settings: dict) -> dict:
    """What every process of one search must agree on (flat JSON, ``train.lr`` and so on: the
    training options resolved, so a default given or left out is the same): a process's own
    device and final-study seeds may differ."""
    train = asdict(TrainConfig.from_kwargs(**settings["train"]))
    shown = {k: v for k, v in _shown(settings).items() if k not in ("seeds", "train")}
    flat = {**shown, "seed": settings["seeds"][0],
            **{f"train.{k}": v for k, v in train.items() if k not in ("device", "quiet")}}
    return json.loads(json.dumps(flat, default=str))


def _alone(url, alone_name, key, rows, chosen: str, settings, by_name, teacher, data, seed, quiet) -> list[dict]:
    """The reference points of the front: each architecture named by ``settings["references"]``
    (those on the front, or every candidate) from new weights, trained alone for as many epochs
    as its distilled twin had (the search stops weak ones early), as trials of a second study
    (``<study_name>.alone.<id of the search's study>``: a search made anew never reads an old
    one's references) that every process shares. The chosen one is left to the final
    study, which trains it alone anyway."""
    named = {"front": pareto.front(rows), "all": rows}.get(settings["references"], [])
    epochs = {r["name"]: r["epochs"] for r in named if r["name"] != chosen and r["epochs"]}
    if not epochs:
        return []
    study, epochs = open_study(url, alone_name, key, lambda: epochs, halving=False)
    names = list(epochs)
    work(study, Objective(by_name, teacher, None, data, settings, seed, quiet, alone=epochs), names)
    wait(study)
    done = _finished(study, names, states=("COMPLETE",))
    return [{"name": f"{n} alone", "of": n, "kind": "alone", "figure": by_name[n].figure, "params": by_name[n].params,
             "val_accuracy": done[n].value, "epochs": done[n].user_attrs.get("epochs", 0),
             "seconds": done[n].user_attrs.get("seconds", 0.0)} for n in names if n in done]


def _front_files(folder: Path, summary: dict) -> None:
    """``pareto.md`` and ``pareto.png``: the candidates, the front, the teacher and the references."""
    b, rows, teacher, refs = summary["budget"], summary["candidates"], summary["teacher"], summary["references"]
    atomic_write(Path(folder) / "pareto.md", f"# Shrink: {b['label']}\n\nChosen: **{summary['chosen']['name']}** "
                 f"({summary['choose']}).\n\n" + pareto.table(rows, b["measure"], teacher, refs))
    save_figure(Path(folder) / "pareto.png", [pareto.ParetoDisplay(rows, b["measure"], b["limit"], teacher, refs,
                                                                   summary["chosen"]["name"])],
                title="shrink: validation accuracy against the budget", panel=(6.4, 4.6))


def _references(folder: Path, summary: dict, alone: str) -> None:
    """The chosen architecture trained alone (the final study's, first seed) joins the front's
    references, at its best validation accuracy."""
    vals = [r.get("val_accuracy") for line in (folder / "history.jsonl").read_text().splitlines()
            if (r := json.loads(line))["model"] == alone and r["seed"] == summary["seed"]]
    vals = [v for v in vals if v is not None]
    if not vals:
        return
    chosen = summary["chosen"]
    ref = {"name": alone, "of": chosen["name"], "kind": "alone", "figure": chosen["figure"],
           "params": chosen["params"], "val_accuracy": max(vals), "epochs": len(vals)}
    summary["references"] = sorted([*summary["references"], ref], key=lambda r: r["figure"])
    _front_files(folder, summary)


def _finished(study, names, states=("COMPLETE", "PRUNED")) -> dict:
    """Each of ``names``' first trial in ``states`` (a worker's surplus trial left out), by name."""
    out = {}
    for t in study.get_trials(deepcopy=False):
        name = t.user_attrs.get("candidate")
        if name in names and t.state.name in states and not t.user_attrs.get("surplus"):
            out.setdefault(name, t)
    return out


def _rows(study, by_name: dict) -> list[dict]:
    """One row per candidate: its figure, validation accuracy (best reached), epochs, state."""
    rows = []
    for name, t in _finished(study, by_name).items():
        value = t.value if t.state.name == "COMPLETE" else max(t.intermediate_values.values(), default=None)
        c = by_name[name]
        rows.append({"name": name, "kind": c.kind, "figure": c.figure, "params": c.params,
                     "val_accuracy": value, "epochs": t.user_attrs.get("epochs", 0),
                     "seconds": t.user_attrs.get("seconds", 0.0),
                     "state": "trained" if t.state.name == "COMPLETE" else "stopped early",
                     "process": t.user_attrs.get("process"),
                     "prune": c.pruned.prune if c.pruned else None,
                     "options": c.arch["options"] if c.arch else None})
    return rows


def _choose(rows: list[dict], choose: str, tolerance, teacher_accuracy: float) -> dict:
    """The most accurate fully trained candidate, or the smallest within ``tolerance`` of the teacher."""
    done = [r for r in rows if r["state"] == "trained"] or rows
    best = max(done, key=lambda r: (r["val_accuracy"], -r["figure"]))
    if choose == "smallest":
        close = [r for r in done if r["val_accuracy"] >= teacher_accuracy - tolerance]
        if close:
            return min(close, key=lambda r: (r["figure"], -r["val_accuracy"]))
        log.warning("no candidate is within %.4f of the teacher's validation accuracy (%.4f); choosing the most "
                    "accurate", tolerance, teacher_accuracy)
    return best


def _val_accuracy(model, data: Splits) -> float:
    from ..metrics import predict_logits

    logits, labels = predict_logits(model, data.val)
    return float((logits.argmax(1) == labels).float().mean())
