"""Teachers from files, the kind recognised from the content: a scikit-learn model saved with
skops, an ONNX model, or a ``transformers`` model folder."""

from __future__ import annotations

import json
from pathlib import Path

from ..weights import file_kind, load_sklearn
from .adapters import OnnxTeacher, SklearnTeacher
from .base import Teacher

KINDS = ("auto", "skops", "onnx", "transformers")


def teacher_file_kind(path) -> str:
    """``"skops"``, ``"onnx"``, ``"transformers"`` (a folder with a model ``config.json``),
    ``"safetensors"`` or ``"unknown"``, read from the content, never from the name."""
    path = Path(path)
    if path.is_dir():
        config = path / "config.json"
        try:
            ok = config.is_file() and "model_type" in json.loads(config.read_text())
        except (OSError, ValueError):
            ok = False
        return "transformers" if ok else "unknown"
    kind = file_kind(path, "teacher file")
    return "onnx" if kind == "unknown" and _is_onnx(path) else kind


def _is_onnx(path: Path) -> bool:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any parse failure means "not an ONNX model"
        return False
    return len(model.graph.node) > 0 and len(model.graph.output) > 0


def load_teacher_file(path, kind: str = "auto", *, output: str | None = None, classes=None,
                      output_name: str | None = None, trusted=()) -> Teacher:
    """The teacher a file holds.

    Parameters
    ----------
    path : str or Path
        A skops file, an ONNX file, or a folder saved by ``transformers``' ``save_pretrained``.
    kind : {"auto", "skops", "onnx", "transformers"}
        ``"auto"`` recognises the kind from the content.
    output : {"logits", "probabilities"}, optional
        What an ONNX model returns (logits by default).
    classes, output_name, trusted
        The class of each output column; the ONNX output to use; extra skops types to trust.
    """
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not path.exists():
        raise FileNotFoundError(f"teacher file: no file at {str(path)!r}")
    found = teacher_file_kind(path)
    if kind != "auto" and found != kind and not (kind == "onnx" and found == "unknown"):
        raise ValueError(f"teacher file {str(path)!r} was given as kind {kind!r}, but it holds {_what(found)}")
    if found == "skops":
        return SklearnTeacher(load_sklearn(path, trusted), classes)
    if found == "onnx" or (found == "unknown" and (kind == "onnx" or path.suffix == ".onnx")):
        # A damaged ONNX file (given as one, or named .onnx): onnxruntime's reason says more than "unknown kind".
        return OnnxTeacher(path, output or "logits", classes, output_name)
    if found == "transformers":
        from .hf import load_transformers

        return load_transformers(path, classes)
    raise ValueError(f"teacher file {str(path)!r} holds {_what(found)}; a teacher file is a scikit-learn model "
                     f"saved with skops, an ONNX model, or a transformers model folder")


def _what(kind: str) -> str:
    return {"skops": "a skops (scikit-learn) model", "onnx": "an ONNX model", "transformers": "a transformers model",
            "safetensors": "torch weights (give them as weights: with a model:)"}.get(
        kind, "none of the known kinds (skops, ONNX, transformers folder)")
