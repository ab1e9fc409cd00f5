"""``kdistill tune``: the sweep, its answer, and the answer tested.

1. The teacher is trained once (or loaded) and its outputs cached for every split a trial trains
   or validates on (views included) before any trial runs.
2. The student alone is searched over learning rates and budgets; the distilled recipes over
   methods, their options, the label term's weight, learning rates, budgets and the pool, and on
   tables over students, synthetic rows and out-of-fold teacher outputs (:mod:`.space`), all
   scored on validation (:mod:`.trials`).
3. The best candidates are re-run with other seeds, and a distilled recipe is the answer only if
   it beats the student alone by more than that noise (:mod:`.decide`).
4. The answer and the student alone are trained on every seed of the experiment (on the sweep's
   split, with the sweep's teacher) and compared on test by the study's paired verdict.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ..config import Experiment
from ..config.tune import TuneConfig
from ..files import atomic_write, make_dir
from ..report import SpaceDisplay, TrialsDisplay, save_figure, write_report
from ..study import ModelSpec, finish_run_dir, free_dir, run_study, teacher_spec, write_data_summary
from ..weights import load_weights
from .context import KINDS, TEACHER_FILE, Context, default_baseline_trials, finished, rerun, run
from .decide import candidates, decide, pending
from .trials import check_target, recipe_data, recipe_spec, target_student

log = logging.getLogger("kdistill")

MARKER = "tune-experiment.json"
ALONE = "student alone"


def tune(exp: Experiment, trials: int | None = None, out=None, storage: str | None = None, quiet: bool = False,
         cache_dir=None, jobs: int = 1, teacher=None) -> dict:
    """Run (or resume) the sweep of ``exp``, decide its answer on validation, and test it.

    Parameters
    ----------
    exp : Experiment
        The experiment; its ``tune`` section gives the search (defaults apply without one).
    trials : int, optional
        Finished distilled trials wanted (overrides ``tune.trials``); a resumed sweep runs only the
        missing ones.
    out : path, optional
        Run folder, ``runs/<name>-tune`` by default. A folder holding a sweep of the same
        experiment is resumed; any other existing folder is left alone (``out-2`` is used).
    storage : str, optional
        Optuna database URL (overrides ``tune.storage``); default ``sqlite:///<out>/tune.db``.
    cache_dir : path, optional
        Teacher-output cache folder (see :func:`~kdistill.study.teacher_cache_dir`).
    jobs : int
        Processes running trials at once, sharing the storage.
    teacher : optional
        A trained teacher (anything :func:`~kdistill.as_teacher` takes; PyTorch, scikit-learn and
        ONNX teachers are fingerprinted by content, others need a ``fingerprint()`` for the output
        cache) used instead of the experiment's, as it is.

    Returns
    -------
    dict
        The summary also written to ``tune.json`` (the answer, its test accuracy, the share of the
        teacher-alone gap it recovers, the sweep's cost), with the trials and the study's results.
    """
    exp.refuse_search("kdistill tune")
    cfg = exp.tune or TuneConfig()
    check_target(exp, teacher)
    wanted = _count("trials", trials if trials is not None else cfg.trials)
    jobs = capped_jobs(_count("jobs", jobs))
    folder = _folder(exp, out)
    url = storage or cfg.storage or f"sqlite:///{_database(folder)}"
    ctx = Context(exp, folder, url, cfg.study_name or exp.name, quiet, None if cache_dir is None else str(cache_dir),
                  teacher)
    studies = {kind: ctx.study(kind) for kind in KINDS}  # a bad storage fails here, before any training
    try:
        return _sweep(ctx, studies, cfg, wanted, jobs)
    except SweepInterrupted:
        raise
    except KeyboardInterrupt as exc:
        raise SweepInterrupted(folder, url) from exc


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep: its finished trials are kept in the storage; ``folder`` and
    ``storage`` say where, and running the same sweep again continues it."""

    def __init__(self, folder: Path, storage: str, command: str | None = None):
        self.folder, self.storage = folder, storage
        again = command or f"tune(exp, out={str(folder)!r}, storage={storage!r})"
        super().__init__(f"the sweep was interrupted; its finished trials are kept in {storage} and the run folder "
                         f"is {folder}: continue it with {again}")


def capped_jobs(jobs: int) -> int:
    """``jobs`` worker processes, at most one per core this process may run on (more only
    compete for the same cores: measured, 8 workers on 2 cores took 12 times as long)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jobs > cores:
        log.warning("--jobs %d is more than the %d core(s) available; running %d worker(s)", jobs, cores, cores)
        return cores
    return jobs


def _sweep(ctx, studies: dict, cfg, wanted: int, jobs: int) -> dict:
    """The sweep once its studies are open: trials, re-runs, the decision, the final study."""
    exp, folder = ctx.exp, ctx.folder
    start = time.perf_counter()
    opened = ctx.open()
    data, teachers, space, source, _ = opened
    builds = _prime(teachers, data, cfg, space)
    baseline = default_baseline_trials(cfg, wanted, len(space.names), not all(space.students.values()))
    for kind, count in (("alone", baseline), ("distilled", wanted)):
        run(ctx, kind, count, jobs, opened)
    cands = candidates(studies["distilled"], studies["alone"], cfg.top)
    seeds = [exp.seeds[0] + 1 + i for i in range(cfg.repeats)]
    rerun(ctx, pending(studies["repeats"], cands, seeds), jobs, opened)
    labels = {c.key: space.recipe(c.params, c.kind == "distilled", c.student).label() for c in cands}
    decision = decide(studies["repeats"], cands, seeds, labels)
    log.info("%s", decision["sentence"])
    cost = _cost(folder, time.perf_counter() - start, builds, studies)
    rows = trial_rows(studies)
    _plots(folder, rows)
    final_start = time.perf_counter()
    results, names = _final(ctx, opened, {c.key: c for c in cands}, decision)
    cost["final_seconds"] = round(time.perf_counter() - final_start, 1)
    summary = _summary(ctx, decision, results, names, cost, studies)
    atomic_write(folder / "trials.json", json.dumps(rows, indent=2) + "\n")
    atomic_write(folder / "tune.json", json.dumps(summary, indent=2) + "\n")
    write_data_summary(folder, source)
    write_report(folder)
    finish_run_dir(folder)
    return {**summary, "folder": str(folder), "trials": rows, "results": results}


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


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
    """What must not change for a sweep to resume: everything but how many trials and re-runs
    are wanted, and where the storage is."""
    dump = exp.model_dump(mode="json")
    for key in ("trials", "baseline_trials", "top", "repeats", "storage"):
        (dump.get("tune") or {}).pop(key, None)
    return dump


def _prime(teachers: dict, data, cfg: TuneConfig, space) -> int:
    """Build the teachers' cache entries every trial will read — the training sets with and
    without the pool, and the validation split — before any trial (and any worker) starts, so
    each teacher passes over each once (synthetic rows are new data: a trial that adds them has
    the teacher label them once, counted by the trial). Returns how many entries were built now."""
    pool = data.unlabeled is not None
    uses = set(cfg.unlabeled_choices) | ({True} if any(space.students.values()) else set()) if pool else {False}
    built = 0
    for cached in teachers.values():
        before = len(cached.entries)
        for dataset in [data.training(distilled=use) for use in sorted(uses)] + [data.val]:
            cached.for_dataset(dataset, augmented=dataset is not data.val and data.augment is not None)
        built += sum(e["build_seconds"] is not None for e in cached.entries[before:])
    return built


def _cost(folder: Path, seconds: float, builds: int, studies: dict) -> dict:
    """The sweep's cost so far, summed over every (resumed) run of it: wall time, teacher passes
    over a dataset (cache builds, plus epochs a live teacher ran on every batch), and the
    trials' own training time."""
    path = folder / "tune-cost.json"
    before = json.loads(path.read_text()) if path.is_file() else {"sweep_seconds": 0.0, "cache_builds": 0}
    cost = {"sweep_seconds": round(before["sweep_seconds"] + seconds, 1),
            "cache_builds": before["cache_builds"] + builds}
    attrs = [t.user_attrs for s in studies.values() for t in s.get_trials(deepcopy=False)]
    cost["live_teacher_epochs"] = sum(a.get("live_teacher_epochs", 0) for a in attrs)
    cost["trial_cache_builds"] = sum(a.get("cache_builds", 0) for a in attrs)
    cost["teacher_passes"] = cost["cache_builds"] + cost["live_teacher_epochs"] + cost["trial_cache_builds"]
    cost["trial_seconds"] = round(sum(a.get("seconds", 0.0) for a in attrs), 1)
    cost["trainings"] = sum(1 for a in attrs if "seconds" in a)
    atomic_write(path, json.dumps({k: cost[k] for k in ("sweep_seconds", "cache_builds")}) + "\n")
    return cost


def trial_rows(studies: dict) -> list[dict]:
    """Every trial of the sweep as a plain dict (study, number, state, value, params, seed)."""
    return [{"study": kind, "number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "seed": t.user_attrs.get("seed"), "candidate": t.user_attrs.get("candidate"),
             "seconds": t.user_attrs.get("seconds"), "worker": t.user_attrs.get("worker")}
            for kind, study in studies.items() for t in study.get_trials(deepcopy=False)]


def _plots(folder: Path, rows: list[dict]) -> None:
    distilled = [r for r in rows if r["study"] == "distilled"]
    alone = [r for r in rows if r["study"] == "alone" and r["state"] == "COMPLETE"]
    baseline = max((r["value"] for r in alone), default=None)
    save_figure(folder / "tune-objective.png", [TrialsDisplay(distilled, baseline=baseline)], panel=(7, 3.8))
    params = [p for p in ("student", "method", "alpha", "lr", "steps", "unlabeled", "labeled_share", "synthetic",
                          "synthetic_size", "oof")
              if any(p in r["params"] for r in distilled)]
    params += sorted({p for r in distilled for p in r["params"] if "." in p})
    if params:
        panels = [SpaceDisplay(distilled, p, baseline, alone=alone) for p in params]
        save_figure(folder / "tune-space.png", panels, cols=3, panel=(4.6, 3.6))


def _final(ctx: Context, opened, by_key: dict, decision: dict) -> tuple[dict, dict]:
    """The student alone's best recipe (of the best distilled recipe's own student) and the best
    distilled one, trained on every seed of the experiment on the sweep's split (with the best
    distilled recipe's synthetic rows, which the student alone does not train on) with the
    sweep's teacher (out-of-fold where that recipe's is), compared on test."""
    exp = ctx.exp
    data, _, space, _, raw = opened
    base = by_key[decision["baseline"]]
    alone = space.recipe(base.params, False, base.student)
    specs = [recipe_spec(exp, alone, data, name=ALONE)]
    names = {"chosen": ALONE, "distilled": None, "student": target_student(exp, alone.student).name}
    best, oof = decision.get("best_distilled"), False
    if best is not None:
        recipe = space.recipe(by_key[best].params, True)
        chosen = decision["choice"] == "distilled"
        whose = f" {recipe.student}" if recipe.student is not None else ""
        names["distilled"] = f"tuned {recipe.method}{whose} ({'chosen' if chosen else 'not chosen'})"
        names["chosen"] = names["distilled"] if chosen else ALONE
        if chosen:
            names["student"] = target_student(exp, recipe.student).name
        data, oof = recipe_data(data, recipe, exp.seeds[0]), bool(recipe.oof)
        specs.append(recipe_spec(exp, recipe, data, name=names["distilled"]))
    if len(exp.seeds) > 1:
        log.info("final evaluation: every seed uses the sweep's split (the teacher was trained on it); seeds vary "
                 "initial weights and batch order")
    results = run_study(lambda seed: data, _teacher_spec(ctx, raw, oof), specs, out=ctx.folder, seeds=exp.seeds,
                        config=exp.model_dump(mode="json"), quiet=ctx.quiet, resume=True, cache_dir=ctx.cache_dir,
                        title=f"{exp.title or exp.name}: the sweep's answer on test")
    return results, names


def _teacher_spec(ctx: Context, raw: dict, oof: bool = False) -> ModelSpec:
    """The sweep's teacher as the final study's: used as loaded, never trained again (a
    scikit-learn one as the sweep fitted it, serving its out-of-fold outputs where ``oof``)."""
    spec = teacher_spec(ctx.exp)
    if ctx.teacher is not None:
        return ModelSpec(spec.name, lambda shape, k: ctx.teacher, fit=False, hyperparams={"teacher": "given"})
    if ctx.fits_sklearn_teacher:
        hyper = {**spec.hyperparams, "trained": "once, by the sweep"}
        hyper.update({"outputs": f"out-of-fold ({raw[True].folds} folds)"} if oof else {})
        return ModelSpec(spec.name, lambda shape, k: raw[oof], fit=False, folds=0, hyperparams=hyper)
    if not spec.fit:
        return spec
    path = ctx.folder / "weights" / TEACHER_FILE

    def build(shape, k):
        model = spec.build(shape, k)
        load_weights(model, path)
        return model

    return ModelSpec(spec.name, build, fit=False, arch=spec.arch,
                     hyperparams={**spec.hyperparams, "trained": "once, by the sweep"})


def _summary(ctx: Context, decision: dict, results: dict, names: dict, cost: dict, studies: dict) -> dict:
    models = {m["name"]: m for m in results["models"]}
    teacher = models[teacher_spec(ctx.exp).name]["accuracy"]
    alone = models[ALONE]["accuracy"]
    chosen = models[names["chosen"]]["accuracy"]
    gap = (chosen - alone) / (teacher - alone) if teacher > alone else None
    return {"study_name": ctx.base_name, "answer": decision["sentence"], "choice": decision["choice"],
            "chosen_model": names["chosen"], "distilled_model": names["distilled"], "student": names["student"],
            "test_accuracy": chosen,
            "alone_test_accuracy": alone, "teacher_test_accuracy": teacher, "gap_recovered": gap,
            "decision": decision, "cost": cost, "finished": {k: finished(s) for k, s in studies.items()},
            "comparisons": results["comparisons"]}


def answer_lines(summary: dict) -> list[str]:
    """The sweep's answer and what it bought on test, in two sentences."""
    gap, cost = summary["gap_recovered"], summary["cost"]
    models = {m["name"]: m["accuracy"] for m in summary["results"]["models"]}
    shown = [f"{summary['chosen_model']} {summary['test_accuracy']:.4f} (the answer)"]
    if summary["choice"] == "distilled":
        shown.append(f"student alone {summary['alone_test_accuracy']:.4f}")
    elif summary["distilled_model"]:
        shown.append(f"{summary['distilled_model']} {models[summary['distilled_model']]:.4f}")
    return [f"Answer: {summary['answer']}",
            f"On test: {', '.join(shown)}, teacher {summary['teacher_test_accuracy']:.4f}"
            + ("" if gap is None else f"; {gap:.0%} of the teacher-alone gap recovered")
            + f". Sweep: {cost['sweep_seconds']:.0f} s, {cost['trainings']} trainings, {cost['teacher_passes']} "
              f"teacher pass(es)."]
