"""The kinds of model a study holds, and how each is trained, run, measured and saved.

- ``torch``: an ``nn.Module``, trained by the engine (:func:`kdistill.fit`), exported to ONNX.
- ``sklearn``: a scikit-learn estimator, fitted on the flattened inputs when it learns alone,
  or distilled by :class:`~kdistill.sklearn.DistilledClassifier` when its objective needs a
  teacher (a boosted-tree classifier on a table with categorical columns takes them natively,
  see :func:`estimator_for`); exported to ONNX by :func:`~kdistill.export.export_estimator`
  (skl2onnx, onnxmltools) where a converter exists, else its ONNX columns stay empty ("–") with a
  warning.
- ``teacher``: a teacher used as loaded (an ONNX, skops or ``transformers`` file, any
  :class:`~kdistill.teachers.Teacher`): run, measured, never trained.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.base import is_classifier
from torch import nn

from ..categoricals import for_table
from ..data import Splits, batches
from ..data.synthetic import with_synthetic
from ..engine import History, fit
from ..export import ExportError, ParityError, export, export_estimator
from ..files import atomic_write
from ..methods import objective as terms_of
from ..metrics import latency_ms, median_ms, predict_logits
from ..models import count_params, size_mb
from ..sklearn import CHUNK, SYNTHETIC_PER_SAMPLE, DistilledClassifier, fit_on_teacher, soft_targets
from ..teachers import PROB_EPS, OnnxTeacher, SklearnTeacher, Teacher, check_classes
from ..weights import save_sklearn, save_weights

NO_ONNX = {"onnx_ms_b1": None, "onnx_ms_b64": None, "onnx_mb": None}


def kind(model) -> str:
    """``"torch"``, ``"sklearn"`` or ``"teacher"`` (used as loaded)."""
    if isinstance(model, nn.Module):
        return "torch"
    if isinstance(model, Teacher):
        return "teacher"
    if hasattr(model, "fit") and (hasattr(model, "predict_proba") or hasattr(model, "predict")):
        return "sklearn"
    raise TypeError(f"cannot use {type(model).__name__} in a study: a model is a torch.nn.Module, a scikit-learn "
                    f"estimator or a kdistill Teacher")


def kind_or_none(model) -> str | None:
    """:func:`kind`, or ``None`` for anything else."""
    try:
        return kind(model)
    except TypeError:
        return None


def seeded(estimator):
    """A scikit-learn estimator whose ``random_state`` is ``None`` gets the study's current seed
    (the one ``torch.manual_seed`` was given), so that seeds vary it as they vary initial weights."""
    params = estimator.get_params(deep=False)
    if "random_state" in params and params["random_state"] is None:
        estimator.set_params(random_state=torch.initial_seed())
    return estimator


def needs_teacher(objective) -> bool:
    """Whether an objective distils: a term needing a teacher, or DistilledClassifier options."""
    return isinstance(objective, dict) or any(t.method.needs_teacher for t in terms_of(objective))


def sklearn_options(objective) -> dict | None:
    """:class:`~kdistill.sklearn.DistilledClassifier` options of a scikit-learn student's
    objective; ``None`` when it learns alone. A term list distils in soft mode at the ``kd``
    term's temperature; a dict gives the options itself (``mode``, ``temperature``, ``augment``, ...)."""
    if isinstance(objective, dict):
        return dict(objective)
    terms = terms_of(objective)
    if not any(t.method.needs_teacher for t in terms):
        return None
    other = [t.name for t in terms if t.name not in ("ce", "kd")]
    if other:
        raise ValueError(f"a scikit-learn student is distilled by DistilledClassifier, which knows no method "
                         f"{other}; give it ce (alone) or kd (soft labels at the kd temperature), or options such "
                         f"as {{'mode': 'hard'}}")
    kd = next(t for t in terms if t.name == "kd")
    ce = sum(t.weight for t in terms if t.name == "ce")
    return {"mode": "soft", "temperature": float(kd.method.temperature), "alpha": kd.weight / (kd.weight + ce)}


def train(spec, model, data: Splits, teacher: Teacher | None, *, seed: int, options: dict, callbacks=()):
    """Train ``model`` as ``spec`` says; returns the trained model (a scikit-learn student
    distilled comes back as its :class:`DistilledClassifier`) and its :class:`History`."""
    if not spec.fit:
        return model, History([])
    if kind(model) == "torch":
        return model, fit(model, data, objective=spec.objective, teacher=teacher, callbacks=callbacks, **options)
    model = estimator_for(spec, model, data)
    opts = sklearn_options(spec.objective)
    if opts is None:
        return model.fit(*arrays(data.train)), History([])
    if teacher.classes is not None:
        check_classes(teacher.classes, data.classes)
    return distil_estimator(model, data, teacher, seed=seed, **opts), History([])


def estimator_for(spec, model, data: Splits):
    """The estimator a study fits for ``spec`` on ``data``: a boosted-tree classifier on a table
    with categorical columns in :class:`~kdistill.categoricals.NativeCategoricals` unless
    ``spec.categoricals`` is ``"onehot"``; any other model as it is."""
    return for_table(model, data.info.get("layout"), spec.categoricals)


def distil_estimator(model, data: Splits, teacher: Teacher, *, seed: int, mode: str = "soft",
                     temperature: float = 1.0, alpha: float = 1.0, augment: str | None = None,
                     n_synthetic: int | None = None):
    """A scikit-learn student distilled on the training set a distilled model sees (the train
    split, then its unlabelled and synthetic inputs), from the teacher's outputs as served to
    every student (cached; out-of-fold on the labelled rows where the study cross-fitted the
    teacher). ``augment`` adds the student's own synthetic rows (``n_synthetic`` of them, default
    ``SYNTHETIC_PER_SAMPLE`` per training row). A classifier comes back as the fitted estimator
    itself, what one deploys; a regressor, which predicts probabilities, inside a
    :class:`DistilledClassifier` that turns them into a classifier's."""
    check = DistilledClassifier(None, model, mode=mode, temperature=temperature, augment=augment,
                                n_synthetic=n_synthetic)
    check._check_params()
    if augment is not None:
        size = (n_synthetic or SYNTHETIC_PER_SAMPLE * len(data.train)) / len(data.train)
        data = with_synthetic(data, augment, size, seed)
    train_set = data.training(distilled=True, views=False)
    view = teacher.for_dataset(train_set)
    xs, zs, ys = [], [], []
    with torch.inference_mode():
        for x, y, index in batches(train_set, CHUNK):
            xs.append(x.reshape(len(x), -1))
            zs.append(view.logits(x, index).double())
            ys.append(y)
    x, z, y = torch.cat(xs).numpy(), torch.cat(zs), torch.cat(ys).numpy()
    student = fit_on_teacher(model, x, soft_targets(z, mode=mode, temperature=temperature, labels=y, alpha=alpha))
    if is_classifier(student):
        return student
    return check.wrap(student, list(range(data.num_classes)), x.shape[1])


def arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    """A dataset's inputs flattened to ``(samples, features)`` and its labels, as NumPy arrays."""
    xs, ys = zip(*[(x, y) for x, y, _ in batches(dataset, 1024)])
    x = torch.cat(xs)
    return x.reshape(len(x), -1).numpy(), torch.cat(ys).numpy()


def logits(model, dataset, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (``log p`` for scikit-learn models) and labels of ``dataset``, in order."""
    if kind(model) != "sklearn":
        return predict_logits(model, dataset)
    x, y = arrays(dataset)
    return torch.from_numpy(_sklearn_logits(model, x, k)).float(), torch.from_numpy(y)


def _sklearn_logits(model, x: np.ndarray, k: int) -> np.ndarray:
    proba = np.zeros((len(x), k))
    columns = np.asarray(model.classes_).astype(int)  # class indices: what the study fits on
    proba[:, columns] = model.predict_proba(x)
    return np.log(np.maximum(proba, PROB_EPS))


def latency(model, shape, k: int) -> float:
    """CPU milliseconds per sample: the median of 30 timed batches of 32, divided by 32."""
    if kind(model) == "torch":
        return latency_ms(model, shape)
    x = np.random.default_rng(0).standard_normal((32, *shape)).astype(np.float32)
    run = _runner(model, k)
    return median_ms(lambda: run(x), 30, 5) / 32


def _runner(model, k: int):
    if kind(model) == "sklearn":
        return lambda x: _sklearn_logits(model, x.reshape(len(x), -1), k)
    return lambda x: model.logits(torch.from_numpy(x))


def sizes(model) -> dict:
    """``params`` (PyTorch parameters; ``None`` for others) and ``size_mb`` (parameters and
    buffers; a scikit-learn model's skops file; an ONNX teacher's file)."""
    module = model if isinstance(model, nn.Module) else getattr(model, "module", None)
    if isinstance(module, nn.Module):
        return {"params": count_params(module), "size_mb": size_mb(module)}
    if isinstance(model, OnnxTeacher):
        return {"params": None, "size_mb": os.path.getsize(model.path) / 1e6}
    estimator = model.estimator if isinstance(model, SklearnTeacher) else model
    if kind(estimator) == "sklearn":
        import skops.io as sio

        return {"params": None, "size_mb": len(sio.dumps(deployable(estimator))) / 1e6}
    return {"params": None, "size_mb": None}


def onnx_metrics(model, shape, path: Path, test=None) -> dict:
    """ONNX file size and p50 latency per batch of 1 and of 64: a PyTorch model is exported
    (parity-checked) and run by onnxruntime; a scikit-learn model too, its parity checked on the
    rows of ``test`` (a dataset; random rows without it); an ONNX teacher is run from its own file.
    An export that fails its parity check leaves the columns empty and says why in ``onnx_warning``."""
    if kind(model) == "torch":
        try:
            r = export(model, shape, path)
        except ParityError as exc:  # a measurement column: the study's models and results are kept
            path.unlink(missing_ok=True)  # an unfaithful file is not left for deployment
            return {**NO_ONNX, "onnx_warning": f"{exc} (file removed; ONNX columns left empty)"}
        except ExportError as exc:  # an operation the exporter cannot convert: the same, nothing was written
            return {**NO_ONNX, "onnx_warning": f"no ONNX file: {exc} (ONNX columns left empty)"}
        return {"onnx_ms_b1": r["latency"]["batch1"]["p50_ms"], "onnx_ms_b64": r["latency"]["batch64"]["p50_ms"],
                "onnx_mb": r["size_mb"]}
    if kind(model) == "sklearn":
        try:
            rows = None if test is None or not len(test) else arrays(test)[0][:1000]
            r = export_estimator(deployable(model), int(np.prod(shape)), path, x_check=rows)
            return {key: r[key] for key in NO_ONNX}
        except ValueError as exc:  # no converter for it, or parity failed (nothing is written then)
            return {**NO_ONNX, "onnx_warning": f"no ONNX file: {exc}"}
    if isinstance(model, OnnxTeacher):
        rng = np.random.default_rng(0)
        out = {f"onnx_ms_b{b}": median_ms(lambda x=rng.standard_normal((b, *shape)).astype(np.float32):
                                           model._scores(x), 50, 5) for b in (1, 64)}
        return {**out, "onnx_mb": os.path.getsize(model.path) / 1e6}
    return dict(NO_ONNX)


def deployable(model):
    """What is saved of a model: a distilled scikit-learn student without its teacher."""
    if isinstance(model, DistilledClassifier):
        model = copy.copy(model)
        model.teacher = model.teacher_ = None
    return model


def save(model, folder: Path, stem: str, info: dict | None) -> Path | None:
    """Save a trained model in the run folder: safetensors (with ``info`` in its metadata when it
    names the architecture), or skops: the fitted estimator itself, ``info`` beside it as
    ``<stem>.json`` (the data it was trained on, its type and its distillation settings)."""
    info = dict(info or {})
    if kind(model) == "torch":
        return save_weights(model, folder / f"{stem}.safetensors", info if info.get("arch") else None)
    if kind(model) == "sklearn":
        estimator = deployable(model)
        info.pop("arch", None)
        info["estimator"] = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
        atomic_write(folder / f"{stem}.json", json.dumps(info, indent=2, default=str) + "\n")
        return save_sklearn(estimator, folder / f"{stem}.skops")
    return None  # a teacher used as loaded is the user's own file
