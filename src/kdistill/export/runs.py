"""``kdistill export RUN``: every model of a run folder to ONNX in one command.

A run folder holds PyTorch weights (``weights/*.safetensors``, the architecture in their
metadata: a zoo model or the factory ``package.module:function`` and its options that the
experiment named) and scikit-learn models (``weights/*.skops``, the fitted estimator itself,
with ``weights/<stem>.json`` beside it: the data it was trained on and its distillation
settings). Nothing in the folder chooses code: a factory outside kdistill's zoo is built only
when the caller allows it, by name (``allow``) or by naming the experiment file that uses it
(``experiment``: every factory that file names, imported from the file's folder). A file that
cannot be exported is an error naming it and what to pass, unless ``skip``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..data import BUILTIN, Splits, batches, load_dataset, read_source, split_source
from ..files import atomic_write, make_dir
from ..models import ZOO, importable
from ..weights import check_factories, file_kind, load_sklearn, rebuild
from .estimators import export_estimator
from .runtime import ExportError, latency, session

log = logging.getLogger("kdistill")

SKIP_FLAG = "--skip-unexportable"


def experiment_factories(experiment) -> tuple[list[str], Path]:
    """The factories (``package.module:function``) an experiment file names for its teacher and
    students, and the folder they are imported from (the file's own)."""
    from ..config import load

    exp = load(experiment)
    models = [exp.teacher, exp.student, *(exp.student_model(s) for s in exp.students)]
    names = {m.model for m in models if m is not None and getattr(m, "model", None) and m.model not in ZOO}
    return sorted(n for n in names if ":" in n), Path(experiment).resolve().parent


def export_weights(path, out=None, *, int8: bool = False, threads: int | None = None, model: str | None = None,
                   allow=(), experiment=None, skip: bool = False) -> list[dict]:
    """Export a run folder's models (every ``weights/*.safetensors`` and ``weights/*.skops``) or
    one weights or skops file.

    ONNX files go to ``out`` (made if missing; default ``RUN_DIR/onnx`` for a run folder, else
    beside the file), with ``export.json`` holding every report (see :func:`kdistill.export`;
    a scikit-learn model's parity is the largest |probability difference| against
    ``predict_proba``). Accuracy is measured on the test split, and int8 quantization calibrated
    on training samples, whenever the data can be rebuilt: from the run folder's ``config.json``
    (any data source of an experiment file) or a built-in dataset's name. A run folder's report
    is rebuilt with the numbers.

    PyTorch models are rebuilt from the files' metadata, which may name a zoo model, or a factory
    the caller allows: ``allow`` (``["package.module:factory", ...]``) or ``experiment`` (the
    experiment file whose factories are allowed, imported from its folder); ``model`` builds one
    file with the factory named, whatever its metadata says.

    Raises
    ------
    ValueError
        If a file cannot be exported (its factory not allowed, its types not trusted, an
        operation the ONNX exporter cannot convert), naming each and what to pass, unless
        ``skip``: then each is skipped with a warning and the others are exported.
    """
    path = Path(path)
    allowed, folders = list(check_factories(allow)), []
    if experiment is not None:
        names, folder = experiment_factories(experiment)
        allowed, folders = allowed + names, [folder]
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"out {str(out)!r} (kdistill export --out) is a file, not a folder; give a folder for the "
                         f"ONNX files (it is made if missing)")
    run = path.is_dir()
    if run:
        files = sorted([*(path / "weights").glob("*.safetensors"), *(path / "weights").glob("*.skops")])
        if not files:
            raise ValueError(f"{path} is a folder without weights/*.safetensors or *.skops; give a run folder or a "
                             f"weights file")
    elif path.suffix in (".safetensors", ".skops") and path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path} is neither a run folder nor a .safetensors weights file (nor a .skops file)")
    with importable(*folders):
        loaded, problems = [], []
        for file in files:
            try:
                loaded.append((file, *_load(file, model, allowed)))
            except ValueError as exc:
                if not run:
                    raise
                problems.append((file, str(exc)))
        _refuse(problems, path, skip, len(files))
    folder = _folder(path, out, run)
    reports, rebuilt, failed = [], {}, []
    for file, net, info in loaded:
        key = json.dumps([str(file.parent.parent), info.get("dataset"), str(info.get("split"))])
        if key not in rebuilt:  # read once per split
            rebuilt[key] = _splits(info, file)
        try:
            report = _export_one(net, info, folder / f"{file.stem}.onnx", rebuilt[key], int8, threads)
        except ExportError as exc:
            if not run:
                raise
            failed.append((file, str(exc)))
            continue
        reports.append({"weights": str(file), **report})
    atomic_write(folder / "export.json", json.dumps(reports, indent=2) + "\n")
    if run and (path / "results.json").is_file() and folder == path / "onnx":
        from ..report import write_report

        write_report(path)
    _refuse(failed, path, skip, len(files), after=True)
    return reports


def _folder(path: Path, out, run: bool) -> Path:
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)
    return make_dir(path / "onnx", inside=path) if run else path.parent


def _refuse(problems: list, path: Path, skip: bool, total: int, after: bool = False) -> None:
    for file, why in problems if skip else ():
        log.warning("skipping %s: %s", file, why)
    if problems and not skip:
        listed = "; ".join(f"{file.name}: {why}" for file, why in problems)
        done = " (the others were exported)" if after else " (nothing was exported)"
        raise ValueError(f"{len(problems)} of the {total} model files of {path} cannot be exported{done}: {listed}. "
                         f"Pass what each needs, or {SKIP_FLAG} (skip=True) to export the others")


def _load(file: Path, factory: str | None, allowed: list[str]):
    """The model a file holds, ready to export, and its metadata."""
    if file_kind(file, "model file") == "skops":
        sidecar = file.with_suffix(".json")
        info = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        return load_sklearn(file), info if isinstance(info, dict) else {}
    return rebuild(file, factory=factory, allowed=allowed)


def _export_one(net, info: dict, target: Path, data: Splits | None, int8: bool, threads) -> dict:
    test = None if data is None else data.test
    if isinstance(net, torch.nn.Module):
        from . import export

        return export(net, tuple(info["input_shape"]), target, int8=int8, test=test, threads=threads,
                      calibration=None if data is None else data.train)
    n_features = int(getattr(net, "n_features_in_", 0) or np.prod(info.get("input_shape") or [0]))
    x, y = _rows(test) if test is not None else (None, None)
    r = export_estimator(net, n_features, target, x_check=None if x is None else x[:1000])
    sess = session(target, threads)
    report = {"path": str(target), "size_mb": r["onnx_mb"], "parity_max_abs_diff": r["parity"],
              "latency": latency(sess, (n_features,))}  # p50 and p95, as a PyTorch model's report has
    if x is not None:
        proba = sess.run(["probabilities"], {"input": x.astype(np.float32)})[0]
        predicted = np.asarray(net.classes_)[proba.argmax(1)]
        report["accuracy"] = float((predicted.astype(np.int64) == y).mean())
    if int8:
        log.info("%s: a scikit-learn model has no int8 version; its float32 ONNX file is exported", target)
    return report


def _rows(dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x, y) for x, y, _ in batches(dataset, 1024)])
    x = torch.cat(xs)
    return x.reshape(len(x), -1).numpy(), torch.cat(ys).numpy()


def _splits(info: dict, file: Path) -> Splits | None:
    """The splits a weights file was trained on, rebuilt when they reload identically: from the
    ``data`` section of the run folder's ``config.json`` (its paths made absolute by the run; only
    that section is read, so nothing in the folder decides what is imported), or from a built-in
    dataset's name; ``None`` (with a warning) when neither is possible."""
    split = info.get("split") if isinstance(info.get("split"), dict) else {}
    config_file = file.parent.parent / "config.json"
    candidates = []
    if type(split.get("seed")) is int and config_file.is_file():
        candidates.append(lambda: _from_config(json.loads(config_file.read_text()), file.parent.parent, split))
    if info.get("dataset") in BUILTIN and type(split.get("seed")) is int:
        candidates.append(lambda: load_dataset(info["dataset"], seed=split["seed"],
                                               train_fraction=split.get("train_fraction", 1.0)))
    for make in candidates:
        try:
            data = make()
        except (TypeError, ValueError, OSError, KeyError) as exc:  # a changed file: the split cannot be made
            log.warning("%s: its data cannot be read again (%s)", file, str(exc).splitlines()[0])
            continue
        if data is not None and split.get("sizes") in (None, [len(data.train), len(data.val or []),
                                                                len(data.test or [])]):
            return data
    log.warning("%s: its test split cannot be rebuilt here, so accuracy is not measured", file)
    return None


def _from_config(raw: dict, run: Path, split: dict) -> Splits | None:
    """The splits of an experiment's ``data`` section for the recorded seed (None for a folder
    written by ``kdistill.compare``, whose data lives in Python)."""
    from ..config.data import DataConfig

    if not isinstance(raw.get("data"), dict):
        return None
    d = DataConfig.model_validate(raw["data"])
    return split_source(read_source(d, lambda value: Path(value) if Path(value).is_absolute() else run / value),
                        seed=split["seed"], val_size=d.val_size, test_size=d.test_size,
                        train_fraction=d.train_fraction)
