"""An experiment file, run: its data source, split per seed, its models as specs, the study and
the report, in a run folder (the same path as :func:`~kdistill.study.comparison.compare`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .. import config
from ..config import Experiment, train_options
from ..data import Source, read_source, split_source, unlabeled_inputs
from ..data.synthetic import with_synthetic
from ..files import atomic_write
from .check import check_models
from .comparison import check_trackers, data_info, run_in_folder, trackers_from
from .defaults import is_table, synthetic_options
from .folders import check_cache_dir, check_same_experiment
from .specs import student_spec, teacher_spec


def load_splits(exp: Experiment, seed: int, source: Source, unlabeled=None):
    """The splits of ``source`` for ``seed`` as the experiment's ``data`` section asks;
    ``unlabeled`` holds the inputs of ``data.unlabeled`` (see :func:`read_unlabeled`)."""
    data = exp.data
    splits = split_source(source, seed=seed, val_size=data.val_size, test_size=data.test_size,
                          train_fraction=data.train_fraction, unlabeled=unlabeled, unlabeled_rest=data.unlabeled_rest,
                          augment=data.augment.model_dump(exclude_none=True) if data.augment is not None else None)
    synthetic = synthetic_of(exp, splits)
    return splits if synthetic is None else with_synthetic(splits, seed=seed, **synthetic)


def synthetic_of(exp: Experiment, splits) -> dict | None:
    """The synthetic rows ``data.synthetic`` asks for these splits (``auto``: the default on a table)."""
    given = exp.data.synthetic
    return synthetic_options(given.model_dump(exclude_none=True) if hasattr(given, "model_dump") else given,
                             is_table(splits))


def read_unlabeled(exp: Experiment, source: Source):
    """The raw inputs ``data.unlabeled`` names (read once for every seed), or ``None``."""
    cfg = exp.data.unlabeled
    if cfg is None:
        return None
    strict = exp.data.images.strict if exp.data.images is not None else False
    return unlabeled_inputs(source, strict=strict, **{cfg.kind: exp.path(getattr(cfg, cfg.kind))})


def run_experiment(exp: Experiment | str | Path, out=None, *, overrides=(), quiet: bool = False,
                   resume: bool = False, cache_dir=None) -> tuple[dict | None, Path]:
    """Run an experiment into a new run folder and write its report, as ``kdistill run`` does.

    Parameters
    ----------
    exp : Experiment, str or Path
        An :class:`~kdistill.config.Experiment`, or the path of its YAML file.
    out : str or Path, optional
        The run folder (default ``runs/<name>``; never overwritten: ``-2``, ``-3``... are used).
    overrides : sequence of str
        ``--set``-style ``KEY=VALUE`` overrides of the file, e.g. ``["train.epochs=5"]``.
    quiet : bool
        No progress bar or per-model log lines.
    resume : bool
        Continue the interrupted run in ``out`` from its checkpoints (refused if the experiment
        differs from the one the run started with).
    cache_dir : str or Path, optional
        Keep the teacher-output cache there, for later runs with the same teacher and data
        (default ``$KDISTILL_CACHE_DIR``, else ``RUN_DIR/teacher-cache``, removed at the end).

    Returns
    -------
    results : dict or None
        The content of ``results.json`` (``None`` on ranks other than 0 under torchrun).
    folder : Path
        The run folder.
    """
    given = exp
    if not isinstance(exp, Experiment):
        exp = config.load(exp, overrides)
    elif overrides:
        raise ValueError("overrides apply to an experiment file's path; change the Experiment object instead")
    exp.refuse_search("kdistill run")
    asked = Path(out) if out is not None else Path("runs") / exp.name

    def setup(folder):  # once the run folder is claimed, before the teacher trains
        source, unlabeled = _checked_source(exp, folder, resume)
        return (lambda seed: load_splits(exp, seed, source, unlabeled)), (lambda: _summary(exp, source, unlabeled))

    return run_in_folder(setup, teacher_spec(exp), [student_spec(exp, s) for s in exp.students], out=asked,
                         seeds=exp.seeds, title=exp.title or f"{exp.name}: teacher -> student",
                         config=resolved_config(exp), quiet=quiet, resume=resume, cache_dir=cache_dir,
                         trackers=trackers_from(_tracking(exp)), device=train_options(exp.train).get("device", "cpu"),
                         resume_command=lambda folder: _resume_command(given, overrides, folder, cache_dir))


def _summary(exp: Experiment, source: Source, unlabeled) -> dict:
    """``data.json``: the source's class counts (``all``: every sample read) after those of the
    first seed's train, val and test splits, as :func:`~kdistill.compare` shows them."""
    summary = data_summary(source)
    splits = data_info(load_splits(exp, exp.seeds[0], source, unlabeled))["class_counts"]
    return {**summary, "class_counts": {**splits, **summary.get("class_counts", {})}}


def _checked_source(exp: Experiment, folder: Path, resume: bool) -> tuple[Source, object]:
    """The experiment's data and unlabelled inputs, read once all is checked that can be before
    the teacher trains: a resumed run's settings, and every model's dry step on the data."""
    if resume:  # every rank reads it, so that all refuse together
        check_same_experiment(folder, resolved_config(exp))
    source, unlabeled, _ = _read_and_check(exp)
    return source, unlabeled


def _read_and_check(exp: Experiment) -> tuple[Source, object, list[str]]:
    """The data source, the unlabelled inputs, and one line per model after its dry step on the
    first seed's split (see :func:`~kdistill.study.check.check_models`)."""
    source = read_source(exp.data, exp.path)
    unlabeled = read_unlabeled(exp, source)
    return source, unlabeled, check_models(exp, load_splits(exp, exp.seeds[0], source, unlabeled))


def _resume_command(exp, overrides, folder: Path, cache_dir) -> str:
    """The command that continues an interrupted run, with the same file, ``--set`` values and
    cache folder."""
    path = "EXPERIMENT.yaml" if isinstance(exp, Experiment) else str(exp)
    words = ["kdistill", "run", path, "--out", str(folder), "--resume"]
    words += [w for o in overrides or () for w in ("--set", o)]
    words += ["--cache-dir", str(cache_dir)] if cache_dir is not None else []
    return shlex.join(words)


def validate_experiment(exp: Experiment) -> list[str]:
    """What ``kdistill validate`` checks beyond the file: its data source (and unlabelled data)
    is read and split (the first seed), and every model is built and takes one dry step on it
    (see :func:`~kdistill.study.check.check_models`); the tracking folders and stores are opened.
    Returns one line per model."""
    check_trackers(trackers_from(_tracking(exp)))
    check_cache_dir()  # $KDISTILL_CACHE_DIR, where set
    return _read_and_check(exp)[2]


def _tracking(exp: Experiment) -> dict | None:
    """The experiment's ``tracking`` section, its local paths read from the file's folder."""
    t = exp.tracking
    if t is None:
        return None
    local = t.mlflow is not None and "://" not in t.mlflow and not t.mlflow.startswith("sqlite:")
    return {"tensorboard": t.tensorboard and str(exp.path(t.tensorboard)),
            "mlflow": str(exp.path(t.mlflow)) if local else t.mlflow, "experiment": t.experiment or exp.name}


def resolved_config(exp: Experiment) -> dict:
    """The experiment as ``config.json`` holds it: every data path made absolute, so that the
    run folder alone rebuilds the data (``kdistill export`` measures accuracy on its test split)."""
    dump = exp.model_dump(mode="json")
    data = dump["data"]
    keys = {"images": ("path",), "table": ("path",),
            "idx": ("train_images", "train_labels", "test_images", "test_labels")}
    for source, fields in keys.items():
        if data.get(source):
            for key in fields:
                if data[source].get(key) is not None:
                    data[source][key] = str(exp.path(data[source][key]).resolve())
    for section, key in (("teacher", "file"), ("teacher", "weights"), ("student", "weights")):
        if (dump.get(section) or {}).get(key) is not None:
            dump[section][key] = str(exp.path(dump[section][key]).resolve())
    return dump


def data_summary(source: Source) -> dict:
    """What ``data.json`` holds: class counts, imbalance and skipped files, for the report."""
    return {"name": source.name, "classes": source.classes, **source.info}


def write_data_summary(folder: Path, source: Source) -> None:
    """``data.json``: class counts, imbalance and skipped files, for the report."""
    atomic_write(Path(folder) / "data.json", json.dumps(data_summary(source), indent=2) + "\n")
