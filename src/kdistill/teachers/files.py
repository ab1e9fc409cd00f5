"""Teachers from files, the kind recognised from the content: a scikit-learn model saved with
skops, an ONNX model, or a ``transformers`` model folder."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from ..weights import file_kind, load_sklearn
from .adapters import OnnxTeacher, SklearnTeacher
from .base import Teacher

KINDS = ("auto", "skops", "onnx", "transformers")
MAX_MB = 1024  # a teacher file larger than this is refused before it is read (its libraries read it whole)
MAX_MB_VAR = "KDISTILL_MAX_TEACHER_MB"  # raises (or lowers) that limit, in megabytes


def max_teacher_mb() -> float:
    """The size limit of a teacher file in MB: ``$KDISTILL_MAX_TEACHER_MB``, else :data:`MAX_MB`."""
    given = os.environ.get(MAX_MB_VAR)
    if given is None:
        return float(MAX_MB)
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"${MAX_MB_VAR} must be a positive number of megabytes, got {given!r}")
    return value


def check_teacher_path(path: Path) -> None:
    """The teacher file exists (a link loop and a broken link are said to be so) and is within
    the size limit (:func:`max_teacher_mb`; a folder counts its files), before anything reads it."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"teacher file {str(path)!r} is a link loop (symbolic links that lead back to "
                             f"themselves); point the link at the teacher file") from None
        if path.is_symlink():
            raise FileNotFoundError(f"teacher file {str(path)!r} is a broken link (to {os.readlink(path)!r}, which "
                                    f"does not exist); point it at the teacher file") from None
        raise FileNotFoundError(f"teacher file: no file at {str(path)!r}") from None
    files = [p for p in path.iterdir() if p.is_file()] if path.is_dir() else [path]
    size = sum(p.stat().st_size for p in files) / 1e6
    limit = max_teacher_mb()
    if size > limit:
        raise ValueError(f"teacher file {str(path)!r} is {size:,.1f} MB, above the limit of {limit:,.0f} MB that "
                         f"kdistill reads (a teacher file is read whole into memory); if you mean it, raise the "
                         f"limit with {MAX_MB_VAR}=<megabytes>")


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
    check_teacher_path(path)
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
