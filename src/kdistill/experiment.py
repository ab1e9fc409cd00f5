"""An experiment file, run: data source -> splits per seed -> model specs -> study -> report.

The pieces are public so that ``tune`` reuses them: :func:`read_source` reads the data once,
:func:`load_splits` splits it for a seed, :func:`model_specs` turns the file's models into
:class:`~kdistill.study.ModelSpec` objects.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import document
from .augment import Augment
from .config import Experiment, ModelConfig, StudentConfig, train_options
from .engine import Runtime, TrainingInterrupted
from .data import Splits, _load_sklearn, _standardizer, split_parts
from .files import idx_images, read_table, table_encoder
from .images import ImageFolder
from .study import INCOMPLETE, ModelSpec, finish_run_dir, open_run_dir, run_study
from .transfer import build_model, freeze_layers, load_weights

log = logging.getLogger("kdistill")


@dataclass
class Source:
    """A data source read once: its parts (``{"all": (x, y)}`` or ``train``/``val``/``test``),
    classes, how to prepare features fitted on train, and a summary for the run folder."""

    parts: dict
    classes: list[str]
    name: str
    prepare: object = None
    info: dict = field(default_factory=dict)
    images: bool = True


def read_source(exp: Experiment) -> Source:
    """Read the experiment's data source into memory (once for all seeds); log its class counts
    and imbalance."""
    source = _read(exp)
    if "class_counts" not in source.info:
        source.info.update(class_summary(source.parts, source.classes))
    for part, counts in source.info["class_counts"].items():
        log.info("%s/%s: %s", source.name, part, ", ".join(f"{c}={n}" for c, n in counts.items()))
    log.info("class imbalance (largest / smallest class): %.2f", source.info["imbalance"])
    return source


def class_summary(parts: dict, classes: list[str]) -> dict:
    """Class counts per part and the imbalance ratio (largest / smallest class over all parts)."""
    counts = {part: _counts(y, classes) for part, (_, y) in parts.items()}
    total = [sum(c.get(name, 0) for c in counts.values()) for name in classes]
    return {"class_counts": counts, "imbalance": max(total) / min(total) if min(total) else float("inf")}


def _read(exp: Experiment) -> Source:
    data = exp.data
    if data.builtin is not None:
        x, y, classes, is_image = _load_sklearn(data.builtin.name)
        prepare = None if is_image else _standardizer
        return Source({"all": (x, y)}, classes, data.builtin.name, prepare, images=is_image)
    if data.images is not None:
        return _image_source(exp)
    if data.idx is not None:
        return _idx_source(exp)
    cfg = data.table
    frame, y, classes = read_table(exp.path(cfg.path), cfg.target, cfg.features)
    return Source({"all": (frame, y)}, classes, Path(cfg.path).stem, table_encoder(cfg.categorical),
                  {"columns": list(frame.columns), "rows": len(frame)}, images=False)


def _image_source(exp: Experiment) -> Source:
    cfg = exp.data.images
    folder = ImageFolder(exp.path(cfg.path), size=cfg.size, color=cfg.color, strict=cfg.strict,
                         extensions=cfg.extensions)
    if folder.skipped:
        log.warning("skipped %d unreadable image(s), e.g. %s", len(folder.skipped), ", ".join(folder.skipped[:3]))
    norm = {"none": None, "dataset": _Normalize(), "fixed": _Normalize(cfg.mean, cfg.std)}[cfg.normalize]
    return Source(folder.parts, folder.classes, Path(cfg.path).name, norm, folder.summary())


def _idx_source(exp: Experiment) -> Source:
    cfg = exp.data.idx
    parts = {"train": idx_images(exp.path(cfg.train_images), exp.path(cfg.train_labels), cfg.max_train)}
    if cfg.test_images is not None:
        parts["test"] = idx_images(exp.path(cfg.test_images), exp.path(cfg.test_labels), cfg.max_test)
    k = int(max(y.max() for _, y in parts.values())) + 1
    classes = cfg.classes or [str(i) for i in range(k)]
    if len(classes) < k:
        raise ValueError(f"data.idx.classes names {len(classes)} classes but the labels go up to {k - 1}")
    return Source(parts, list(classes), exp.path(cfg.train_images).resolve().parent.name, None)


def _counts(y, classes) -> dict:
    values, counts = np.unique(y, return_counts=True)
    return {classes[int(v)]: int(c) for v, c in zip(values, counts)}


class _Normalize:
    """Per-channel image normalization: given ``mean``/``std``, or the train split's when ``None``."""

    def __init__(self, mean=None, std=None):
        self.mean, self.std = mean, std
        self.fitted = None

    def __call__(self, x_train):
        x_train = np.asarray(x_train, np.float32)
        mean = np.asarray(self.mean if self.mean is not None else x_train.mean(axis=(0, 2, 3)), np.float32)
        std = np.asarray(self.std if self.std is not None else x_train.std(axis=(0, 2, 3)), np.float32)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        self.fitted = (mean.tolist(), std.tolist())
        return lambda x: ((np.asarray(x, np.float32) - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


def load_splits(exp: Experiment, seed: int, source: Source) -> Splits:
    """The splits of ``source`` for ``seed``, with the training-batch augmentation attached."""
    data = exp.data
    splits = split_parts(source.parts, source.classes, name=source.name, seed=seed, val_size=data.val_size,
                         test_size=data.test_size, train_fraction=data.train_fraction, prepare=source.prepare,
                         info=dict(source.info))
    if data.augment is not None:
        if len(splits.input_shape) != 3:
            raise ValueError(f"data.augment: augmentation needs images (channels, height, width); "
                             f"{source.name!r} gives samples of shape {splits.input_shape}")
        mean, std = source.prepare.fitted if isinstance(source.prepare, _Normalize) else (None, None)
        splits.augment = Augment(**data.augment.model_dump(), mean=mean, std=std)
    return splits


# --------------------------------------------------------------------------------------------
# Models


def _builder(model: ModelConfig, where: str, exp: Experiment):
    def build(shape, k):
        net = build_model(model.model, model.options, shape, k)
        if model.weights is not None:
            load_weights(net, exp.path(model.weights), partial=model.weights_partial)
        if model.freeze is not None:
            frozen = freeze_layers(net, model.freeze.modules, model.freeze.first_layers)
            log.info("%s: frozen %s", where, ", ".join(frozen) or "nothing")
        return net

    return build


def _arch(model: ModelConfig) -> dict:
    """How ``kdistill export`` rebuilds the model from its weights file."""
    return {"model": model.model, "options": dict(model.options)}


def _hyperparams(student: StudentConfig | None, train: dict, options: dict) -> dict:
    shown = {k: v for k, v in options.items() if k in ("channels", "hidden")}
    if student is not None:
        terms = {m.name: m for m in student.methods}
        if set(terms) == {"ce", "kd"} and abs(terms["ce"].weight + terms["kd"].weight - 1) < 1e-9:
            shown["alpha"] = terms["kd"].weight
            shown["T"] = terms["kd"].options.get("temperature", 4.0)
        elif student.distilled:
            shown["objective"] = " + ".join(f"{m.weight:g}·{m.name}" for m in student.methods)
    return {**shown, "epochs": train.get("epochs", 20), "lr": train.get("lr", 1e-3)}


def teacher_spec(exp: Experiment) -> ModelSpec:
    """The teacher of the experiment as a study model spec."""
    t = exp.teacher
    train = train_options(exp.train, t.train)
    return ModelSpec(t.name, _builder(t, t.name, exp), train=train, fit=t.fit, arch=_arch(t),
                     hyperparams=_hyperparams(None, train, t.options) if t.fit else {"weights": t.weights})


def student_spec(exp: Experiment, s: StudentConfig, objective=None, **train_changes) -> ModelSpec:
    """Student ``s`` as a study model spec; ``objective`` and ``train_changes`` override the file's."""
    model = exp.student_model(s)
    train = {**train_options(exp.train, model.train, s.train), **train_changes}
    return ModelSpec(s.name, _builder(model, s.name, exp), objective=objective or [m.term() for m in s.methods],
                     train=train, hyperparams=_hyperparams(s, train, model.options), arch=_arch(model))


def run_experiment(exp: Experiment, out=None, quiet: bool = False, resume: bool = False,
                   cache_dir=None) -> tuple[dict | None, Path]:
    """Run the experiment into a new run folder (``runs/<name>`` unless ``out``; never overwritten)
    and write its report; with ``resume``, continue the interrupted run in ``out``. The teacher's
    outputs are cached in ``cache_dir`` (see :func:`~kdistill.study.teacher_cache_dir`). Returns
    the results (``None`` on ranks other than 0 under torchrun) and the folder."""
    asked = Path(out) if out is not None else Path("runs") / exp.name
    rt = Runtime.create(train_options(exp.train).get("device", "cpu"))  # joins the process group under torchrun
    folder = open_run_dir(asked, resume, rt)
    source = read_source(exp)
    teacher = teacher_spec(exp)
    students = [student_spec(exp, s) for s in exp.students]
    try:
        results = run_study(lambda seed: load_splits(exp, seed, source), teacher, students, out=folder,
                            seeds=exp.seeds, title=exp.title or f"{exp.name}: teacher -> student",
                            config=exp.model_dump(mode="json"), quiet=quiet, resume=resume, cache_dir=cache_dir)
    except TrainingInterrupted as exc:
        raise KeyboardInterrupt(f"interrupted in epoch {exc.epoch} after batch {exc.batch}, progress saved; the "
                                f"run folder {folder} is marked {INCOMPLETE}: continue it with kdistill run "
                                f"EXPERIMENT.yaml --out {folder} --resume") from exc
    if rt.is_main:
        write_data_summary(folder, source)
        document.write_report(folder)
        finish_run_dir(folder)
    return results, folder


def write_data_summary(folder: Path, source: Source) -> None:
    """``data.json``: class counts, imbalance and skipped files, for the report."""
    info = {"name": source.name, "classes": source.classes, **source.info}
    (Path(folder) / "data.json").write_text(json.dumps(info, indent=2) + "\n")


__all__ = ["Source", "load_splits", "read_source", "run_experiment", "student_spec", "teacher_spec"]
