"""``kdistill.load`` and ``kdistill.load_onnx``: the student a run recommends (or any model it
trained, by name), ready to predict.

The choice is the run's ``recommendation`` (see :mod:`kdistill.report.card`); the files are the
first seed's (``weights/<model>-seed<k>.safetensors`` or ``.skops``, ``onnx/<model>-seed<k>.onnx``).
Nothing read from the run folder chooses code: a PyTorch model is rebuilt from its weights'
metadata only when it names a zoo model or a factory the caller allows, and a scikit-learn
model is read by skops with kdistill's trusted types and the caller's.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..report.card import recommend
from ..report.tables import slug
from ..weights import META_KEY, file_kind, load_sklearn, read_safetensors, rebuild
from .runtime import session

__all__ = ["load", "load_onnx"]


def load(run, model: str | None = None, *, seed: int | None = None, allow=(), trusted=()):
    """The recommended (or named) model of a run folder, ready to predict.

    Parameters
    ----------
    run : str or Path
        A run folder written by ``kdistill run``, ``kdistill demo`` or :func:`kdistill.compare`.
    model : str, optional
        A model's name as the results table shows it (default: the run's recommendation).
    seed : int, optional
        Whose files (default: the run's first seed).
    allow : list of str
        Factories (``"package.module:function"``) a PyTorch model's metadata may name besides
        kdistill's zoo (see :func:`kdistill.weights.rebuild`).
    trusted : list of str
        Types a skops file may hold besides kdistill's trusted ones.

    Returns
    -------
    torch.nn.Module or estimator
        A PyTorch module in eval mode (it takes a batch of inputs shaped like the data and
        returns logits), or the fitted scikit-learn estimator (``predict``/``predict_proba`` on
        flattened rows; its classes are the class indices of ``results.json``'s ``classes``).

    Raises
    ------
    ValueError
        If ``run`` is not a run folder, ``model`` is not one of its models, or the model has no
        file to load (a teacher used as loaded is the user's own file).
    """
    path = _file(run, model, seed, "weights", (".safetensors", ".skops"))
    if file_kind(path, "model file") == "skops":
        return load_sklearn(path, trusted)
    if META_KEY not in read_safetensors(path)[1]:
        raise ValueError(f"{path} holds no architecture (a model given to kdistill.compare as an object, not as a "
                         f"function (input_shape, num_classes) -> model): build the model yourself and call "
                         f"kdistill.load_weights(model, {str(path)!r}), or run it with kdistill.load_onnx")
    return rebuild(path, allowed=allow)[0]


def load_onnx(run, model: str | None = None, *, seed: int | None = None, threads: int | None = None):
    """An ONNX Runtime (CPU) inference session of the recommended (or named) model's ONNX file.

    Parameters
    ----------
    run : str or Path
        A run folder, as for :func:`load`.
    model : str, optional
        A model's name (default: the run's recommendation).
    seed : int, optional
        Whose file (default: the run's first seed).
    threads : int, optional
        onnxruntime intra-op threads (default: its own choice).

    Returns
    -------
    onnxruntime.InferenceSession
        Its input is ``"input"`` (float32, a batch shaped like the data; rows of features for a
        scikit-learn model); a PyTorch model's output is its logits, a scikit-learn model's are
        ``"probabilities"`` and ``"label"``: ``session.run(None, {"input": x})``.

    Raises
    ------
    ValueError
        As :func:`load` does, and when the model has no ONNX file (its export failed: see the
        run's warnings).
    """
    return session(_file(run, model, seed, "onnx", (".onnx",)), threads)


def _file(run, model: str | None, seed: int | None, kind: str, suffixes: tuple) -> Path:
    folder = Path(run)
    results_file = folder / "results.json"
    if not results_file.is_file():
        raise ValueError(f"{str(run)!r} is not a run folder: it has no results.json (give the folder a kdistill run, "
                         f"demo or compare wrote)" if folder.exists() else f"no run folder at {str(run)!r}")
    results = json.loads(results_file.read_text())
    names = [m["name"] for m in results["models"]]
    if model is None:
        chosen = results.get("recommendation") or recommend(results, folder)
        if chosen is None:
            raise ValueError(f"{folder} has no student to recommend; name a model: one of {names}")
        model = chosen["model"]
    if model not in names:
        raise ValueError(f"model {model!r} is not in the run {folder}; its models are {names}")
    seeds = results["seeds"]
    if seed is None:
        seed = seeds[0]
    elif seed not in seeds:
        raise ValueError(f"seed {seed!r}: the run {folder} trained seeds {seeds}")
    for suffix in suffixes:
        path = folder / kind / f"{slug(model)}-seed{seed}{suffix}"
        if path.is_file():
            return path
    kept = next(m for m in results["models"] if m["name"] == model)
    why = ("it was used as loaded: its file is your own" if kept.get("kind") == "teacher"
           else "its export failed (see the run's warnings)" if kind == "onnx" else "the file is missing")
    raise ValueError(f"model {model!r} of the run {folder} has no {kind} file ({kind}/{slug(model)}-seed{seed}"
                     f"{'|'.join(suffixes)}): {why}")
