"""Saving and loading without pickle: scikit-learn models through skops, torch weights through
safetensors. Neither format can run code when read.

A skops file is loaded only when every type it holds beyond skops' own defaults is on
``TRUSTED_TYPES`` or on the caller's ``trusted`` list; anything else is refused by name. A file
of the other kind (or of neither) is a clear error naming what it holds and how to load it.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

from torch import Tensor, nn

# Types outside skops' defaults that kdistill's own models and the usual teachers and students
# hold: trees and forests, gradient boosting, MLPs, nearest neighbours, and DistilledClassifier.
TRUSTED_TYPES = (
    "kdistill.sklearn.DistilledClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
)


def file_kind(path) -> str:
    """``"skops"``, ``"safetensors"`` or ``"unknown"``, read from the file's first bytes."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return "skops" if "schema.json" in z.namelist() else "unknown"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) == 8:
            size = struct.unpack("<Q", head)[0]
            if 0 < size <= min(100_000_000, os.path.getsize(path) - 8):
                try:
                    json.loads(f.read(size))
                    return "safetensors"
                except ValueError:
                    pass
    return "unknown"


def _expect(path, kind: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {str(path)!r}")
    found = file_kind(path)
    if found != kind:
        hint = {"skops": "a scikit-learn model: load it with load_sklearn",
                "safetensors": "torch weights: load them with load_weights",
                "unknown": "neither a skops nor a safetensors file (or one that is truncated or corrupt); pickle "
                           "files are never read"}[found]
        raise ValueError(f"{str(path)!r} is not a {kind} file: it holds {hint}")
    return path


def save_sklearn(model, path) -> Path:
    """Write a scikit-learn model (or :class:`~kdistill.sklearn.DistilledClassifier` with a
    scikit-learn teacher) to ``path`` with skops. Returns the path."""
    import skops.io as sio

    return _replace(path, lambda tmp: sio.dump(model, tmp))


def load_sklearn(path, trusted: Iterable[str] = ()):
    """Read a scikit-learn model written by :func:`save_sklearn`.

    Parameters
    ----------
    path : str or Path
        A skops file.
    trusted : iterable of str
        Fully qualified type names to trust in addition to ``TRUSTED_TYPES``.

    Raises
    ------
    ValueError
        If the file is not a skops file, or holds types that are not trusted (they are named).
    """
    import skops.io as sio

    path = _expect(path, "skops")
    allowed = set(TRUSTED_TYPES) | set(trusted)
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - allowed)
    if untrusted:
        raise ValueError(f"{str(path)!r} holds types that are not trusted: {', '.join(untrusted)}; if you trust "
                         f"the file's source, pass them in trusted=")
    return sio.load(path, trusted=sorted(allowed))


def save_weights(module: nn.Module, path) -> Path:
    """Write ``module``'s parameters and buffers to ``path`` with safetensors. Returns the path."""
    from safetensors.torch import save_model

    return _replace(path, lambda tmp: save_model(module, str(tmp)))


def _replace(path, write) -> Path:
    """Write through ``write(tmp)`` to a temporary file beside ``path``, then rename it over
    ``path``: a failed write (a full disk, a read-only folder) leaves an existing file as it was."""
    from safetensors import SafetensorError

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        kept = f"; the existing {path.name} is unchanged" if path.is_file() else ""
        raise OSError(f"cannot write {str(path)!r}: {exc}{kept}; check that the folder exists and is writable and "
                      f"that the disk has free space") from exc
    return path


def read_safetensors(path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file; the one place kdistill reads one.

    Raises
    ------
    ValueError
        If there is no such file, or it is not a complete safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except SafetensorError as exc:
        raise ValueError(f"cannot read weights {path}: not a complete safetensors file ({exc}); it may be "
                         f"truncated or corrupt, or another format under a .safetensors name") from exc


def load_weights(module: nn.Module, path, strict: bool = True) -> nn.Module:
    """Load weights written by :func:`save_weights` into ``module`` (in place) and return it.

    Raises
    ------
    ValueError
        If the file is not a safetensors file, or (``strict``) its tensors do not match the
        module's names and shapes.
    """
    from safetensors.torch import load_model

    path = _expect(path, "safetensors")
    from safetensors import SafetensorError

    try:
        load_model(module, str(path), strict=strict)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {str(path)!r} do not fit {type(module).__name__}: {exc}") from exc
    except SafetensorError as exc:
        raise ValueError(f"cannot read {str(path)!r}: not a complete safetensors file ({exc}); it may be truncated "
                         f"or corrupt") from exc
    return module
