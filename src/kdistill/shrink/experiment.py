"""``kdistill shrink EXPERIMENT``: the search of an experiment file's ``student.shrink`` section,
with its data, its teacher (trained once, or loaded) and the recipe of its first distilled
student (kd at alpha 0.5, T 4 where none distils)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from .. import config
from ..config import Experiment, train_options
from ..data import read_source
from ..engine import fit
from ..study import load_splits, read_unlabeled, teacher_spec
from .search import shrink

log = logging.getLogger("kdistill")


def shrink_experiment(exp: Experiment | str | Path, out=None, *, overrides=(), storage: str | None = None,
                      study_name: str | None = None, worker: bool = False, quiet: bool = False,
                      cache_dir=None) -> dict:
    """Run the shrink search of ``exp`` (an experiment or its file) into ``runs/<name>-shrink``
    (or ``out``); ``storage`` and ``study_name`` override the section's (shared by every worker)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the summary lists every trial
    if not isinstance(exp, Experiment):
        exp = config.load(exp, overrides)
    cfg = exp.student.shrink if exp.student is not None else None
    if cfg is None:
        raise ValueError("the experiment has no student.shrink section; add one, e.g. student: {shrink: {budget: "
                         "{params: 0.1}}}")
    source = read_source(exp.data, exp.path)
    data = load_splits(exp, exp.seeds[0], source, read_unlabeled(exp, source))
    spec = teacher_spec(exp)
    torch.manual_seed(exp.seeds[0])
    teacher = spec.build(data.input_shape, data.num_classes)
    if not isinstance(teacher, nn.Module):
        raise ValueError(f"kdistill shrink prunes a PyTorch teacher; this one is {type(teacher).__name__}: give a "
                         f"PyTorch teacher (teacher.model, teacher.weights)")
    if spec.fit:
        log.info("training the teacher once (every candidate distils from its cached outputs)")
        fit(teacher, data, objective=spec.objective, seed=exp.seeds[0], quiet=quiet, **spec.train)
    student = next((s for s in exp.students if s.distilled), None)
    objective = student.objective() if student is not None else None
    model = exp.student_model(student) if student is not None else exp.student
    options = cfg.search_options()
    if options["family"] is None and "model" in exp.student.model_fields_set:
        options["family"] = {"model": exp.student.model, "options": dict(exp.student.options)}
    return shrink(teacher, data, **options, objective=objective, seeds=exp.seeds,
                  out=out or Path("runs") / f"{exp.name}-shrink", storage=storage or cfg.storage,
                  study_name=study_name or cfg.study_name, worker=worker, quiet=quiet, cache_dir=cache_dir,
                  teacher_arch=spec.arch, title=exp.title or f"{exp.name}: the student searched",
                  **train_options(exp.train, model.train, student.train if student is not None else None))


def summary_table(summary: dict) -> tuple[str, list[str], list[list[str]]]:
    """The candidates as the CLI shows them: title, header, rows (smallest first)."""
    alone = {r["of"]: f"{r['val_accuracy']:.4f}" for r in summary.get("references") or []}
    rows = [[r["name"], f"{r['figure']:,.6g}", f"{r['params']:,}", f"{r['val_accuracy']:.4f}",
             alone.get(r["name"], "–"), r["state"]] for r in sorted(summary["candidates"], key=lambda r: r["figure"])]
    return (f"shrink candidates ({summary['budget']['label']}; validation accuracy)",
            ["candidate", summary["budget"]["measure"], "params", "distilled", "alone", "state"], rows)


def summary_lines(summary: dict) -> list[str]:
    """What the CLI says after the table: the chosen student, or that a worker is done."""
    if summary["folder"] is None:
        return ["worker done: every candidate of the shared study has its trial"]
    chosen = summary["chosen"]
    return [f"chosen: {chosen['name']} ({chosen['params']:,} parameters), test accuracy "
            f"{chosen['test_accuracy']:.4f} (the same architecture alone {summary['alone_test_accuracy']:.4f}); "
            f"the Pareto front: {summary['folder']}/pareto.md and pareto.png"]
