"""The one place that reads and writes model files.

- PyTorch weights are written as safetensors (tied tensors stored once, the model's
  architecture in the metadata) and read from safetensors or from a PyTorch state dict with
  ``torch.load(weights_only=True)``. Neither format can run code when read: a pickled object is
  never unpickled.
- scikit-learn models are written and read with skops; a file is loaded only when every type it
  holds beyond skops' own defaults is on ``TRUSTED_TYPES`` or on the caller's ``trusted`` list.
- Every file is written through :func:`kdistill.files.atomic_write` (re-exported here): beside
  its target, then renamed into place, so a failed write leaves what was there before and a
  symbolic link at the target is replaced, never followed.

What a kind of file holds is read from its first bytes, not from its name.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from .files import atomic_write, regular_file
from .models.shapes import check_shapes, resize
from .trust import NEVER_TRUSTED_BUILTINS, NEVER_TRUSTED_MODULES, TRUSTED_TYPES, check_trusted  # noqa: F401

log = logging.getLogger("kdistill")

META_KEY = "kdistill"  # safetensors metadata entry holding the architecture spec (JSON)


# --------------------------------------------------------------------------------------------
# What a file holds


def file_kind(path, what: str = "file") -> str:
    """``"skops"``, ``"safetensors"`` or ``"unknown"``, read from the file's first bytes (a FIFO
    or a device is refused by :func:`~kdistill.files.regular_file`, ``what`` naming it)."""
    with regular_file(path, what) as f:
        if zipfile.is_zipfile(f):
            f.seek(0)
            with zipfile.ZipFile(f) as z:
                return "skops" if "schema.json" in z.namelist() else "unknown"
        f.seek(0)
        head = f.read(8)
        if len(head) == 8:
            size = struct.unpack("<Q", head)[0]
            if 0 < size <= min(100_000_000, os.fstat(f.fileno()).st_size - 8):
                try:
                    json.loads(f.read(size))
                    return "safetensors"
                except ValueError:
                    pass
    return "unknown"


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        if path.exists():
            regular_file(path, "weights").close()  # raises, naming what is there instead
        raise FileNotFoundError(f"no file at {str(path)!r}")
    return path


# --------------------------------------------------------------------------------------------
# PyTorch weights


def read_safetensors(path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file.

    Raises
    ------
    ValueError
        If it is not a complete safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except SafetensorError as exc:
        raise ValueError(f"cannot read weights {path}: not a complete safetensors file ({exc}); it may be "
                         f"truncated or corrupt, or another format under a .safetensors name") from exc


def read_state_dict(path) -> dict[str, Tensor]:
    """The tensors of a safetensors file, or of a state dict saved with ``torch.save`` (read with
    ``weights_only=True``; a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped)."""
    path = _existing(path)
    kind = file_kind(path)
    if kind == "skops":
        raise ValueError(f"{str(path)!r} is not a weights file: it holds a scikit-learn model: load it with "
                         f"load_sklearn")
    if kind == "safetensors" or path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"cannot read weights {path}: neither a safetensors file nor a state dict readable with "
                         f"torch.load(weights_only=True) (a truncated or corrupt file, or one holding objects other "
                         f"than tensors; pickled objects are never unpickled): {str(exc)[:300]}") from exc
    for key in ("state_dict", "model"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(v, Tensor) for v in blob.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return blob


def load_weights(model: nn.Module, path, *, partial: bool = False) -> list[str]:
    """Load the weights in ``path`` into ``model``, in place.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or Path
        A safetensors file, or a state dict read with ``torch.load(weights_only=True)`` (a
        pickled object is never unpickled).
    partial : bool
        Load only the tensors that match by name and shape; the rest keep their fresh values.
        Otherwise every tensor must match. Tensors tied together in the model (one storage) count
        as loaded when one of them is.

    Returns
    -------
    list of str
        The names of the tensors not loaded.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    tied = _tied(own)
    fresh = sorted(k for k in set(own) - set(matching) if not tied.get(k, set()) & set(matching))
    extra = sorted(set(state) - set(matching))
    if not partial and (fresh or extra):
        raise ValueError(f"weights {path} do not fit {type(model).__name__} (another architecture or input size?): "
                         f"{_mismatch(state, own)}; pass partial=True (weights_partial: true in an experiment file) "
                         f"to load only the tensors that match (e.g. a new classifier head)")
    if not matching:
        raise ValueError(f"weights {path}: no tensor matches {type(model).__name__} by name and shape")
    model.load_state_dict(matching, strict=False)
    if fresh:
        log.info("loaded %d tensors from %s; %d keep fresh values (%s)", len(matching), path, len(fresh),
                 ", ".join(fresh[:5]))
    return fresh


def _tied(own: dict) -> dict[str, set[str]]:
    """For each tensor sharing its storage with others (tied weights), the names of the group.
    safetensors writes one tensor per group, and loading it fills every alias."""
    groups: dict = {}
    for name, t in own.items():
        if t.numel():
            groups.setdefault((t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)), []).append(name)
    return {name: set(g) for g in groups.values() if len(g) > 1 for name in g}


def _mismatch(state: dict, own: dict) -> str:
    """The first differences between a file's tensors and a model's, by name and shape."""
    shapes = [f"{k} {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
              for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    only_file, only_model = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    return (f"of another shape {shapes[:5] or 'none'}; only in the file {only_file[:5] or 'none'}; "
            f"only in the model {only_model[:5] or 'none'}")


def save_weights(model: nn.Module, path, info: dict | None = None) -> Path:
    """Write ``model``'s parameters and buffers to ``path`` as safetensors, atomically.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or Path
    info : dict, optional
        JSON-serialisable metadata stored in the file (the architecture spec, input shape,
        classes...), so that :func:`rebuild` can make the model from the file alone.

    Returns
    -------
    Path
        The path written.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_model

    meta = {META_KEY: json.dumps(info)} if info is not None else None

    def write(tmp: Path) -> None:
        try:
            save_model(model, str(tmp), metadata=meta)
        except SafetensorError as exc:  # an I/O failure inside safetensors' writer
            raise OSError(str(exc)) from exc

    return atomic_write(path, write)


def read_info(path) -> dict:
    """The kdistill metadata of a weights file written by :func:`save_weights` with ``info``,
    checked against :data:`INFO_SCHEMA`."""
    return _info(read_safetensors(path)[1], path)


# What rebuilding a model reads from a weights file's metadata: field -> (check, what is allowed).
INFO_SCHEMA = {
    "arch": (lambda v: isinstance(v, dict) and set(v) <= {"model", "options", "shapes"}
             and isinstance(v.get("model"), str) and isinstance(v.get("options", {}), dict)
             and check_shapes(v.get("shapes", {})),
             'a mapping {"model": NAME, "options": {...}, "shapes": {LAYER: {"type": KIND, SIZE: N}} (pruned)}'),
    "input_shape": (lambda v: isinstance(v, list) and 1 <= len(v) <= 4 and all(type(d) is int and d > 0 for d in v),
                    "a list of 1 to 4 positive integers"),
    "classes": (lambda v: isinstance(v, list) and len(v) >= 2 and all(isinstance(c, str) for c in v),
                "a list of at least 2 class names (strings)"),
}


def _info(meta: dict, path) -> dict:
    if META_KEY not in meta:
        raise ValueError(f"{path} holds no kdistill architecture metadata, so the model cannot be rebuilt; export "
                         f"it from Python with kdistill.export(model, input_shape, path)")
    try:
        info = json.loads(meta[META_KEY])
    except ValueError as exc:
        raise ValueError(f"{path}: its kdistill metadata is not valid JSON ({exc})") from exc
    for key, (check, allowed) in INFO_SCHEMA.items():
        problem = ("is missing" if not isinstance(info, dict) or key not in info
                   else None if check(info[key]) else f"is {info[key]!r}"[:200])
        if problem:
            raise ValueError(f"{path}: metadata field {key!r} {problem}; it must be {allowed} (the file was not "
                             f"written by kdistill's save_weights, or was changed since)")
    return info


def check_factories(names: Iterable[str], what: str = "--allow") -> list[str]:
    """Factory names (``"package.module:function"``) a caller allows a file to name, refused when
    one is not of that form or lies in a module kdistill never trusts (:func:`check_trusted`)."""
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{what} must be a list of factories, e.g. ['mynets:big_cnn'], got the string {names!r}")
    names = list(names)
    for name in names:
        module, sep, attr = name.partition(":") if isinstance(name, str) else ("", "", "")
        if not sep or not module or not attr:
            raise ValueError(f"{what} {name!r}: expected a factory 'package.module:function', e.g. mynets:big_cnn")
        check_trusted([f"{module}.{attr}"], what)
    return names


def rebuild(path, factory: str | None = None, allowed: Iterable[str] = ()) -> tuple[nn.Module, dict]:
    """The model a weights file holds, built from the architecture spec in its metadata (see
    :func:`save_weights`) and loaded strictly, in eval mode; returns it with the metadata.

    Nothing in the file chooses code: its metadata may only name a zoo model (built on the
    ``meta`` device first, so options that do not fit the tensors allocate nothing), or one of the
    factories the caller ``allowed`` (``"package.module:function"``, see :func:`check_factories`).
    ``factory`` builds every other architecture, whatever the file names. A pruned model's layer
    sizes are data (``arch["shapes"]``, see :func:`kdistill.models.shapes.resize`).
    """
    from .models import ZOO, build_model

    allowed = set(check_factories(allowed))
    state, meta = read_safetensors(path)
    info = _info(meta, path)
    arch = info["arch"]
    name = factory or arch["model"]
    if factory is None and name not in ZOO and name not in allowed:
        raise ValueError(f"{path}: its metadata names the model {name!r}, which is not in kdistill's zoo "
                         f"({', '.join(ZOO)}); a weights file never chooses code to run: if you trust the file and "
                         f"its architecture, allow the factory yourself (kdistill export --allow {name}, or "
                         f"--experiment FILE naming the experiment file that uses it; kdistill export --model {name} "
                         f"for one weights file; rebuild(path, allowed=[{name!r}]))")
    shape, k = tuple(info["input_shape"]), len(info["classes"])

    def build():
        try:
            model = build_model(name, arch.get("options", {}), shape, k)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{path}: the model its metadata describes ({name!r} with options "
                             f"{arch.get('options', {})}) cannot be built: {exc}") from exc
        return resize(model, arch.get("shapes", {}), state, str(path))

    if factory is None:  # a zoo model: checked on the meta device before anything is allocated
        with torch.device("meta"):
            _check_fit(build().state_dict(), state, path)
    model = build()
    _check_fit(model.state_dict(), state, path)
    model.load_state_dict(state, strict=False)
    return model.eval(), info


def _check_fit(own: dict, state: dict, path) -> None:
    tied = _tied(own) if not any(t.is_meta for t in own.values()) else {}
    missing = [k for k in own if k not in state and not tied.get(k, set()) & set(state)]
    if missing or set(state) - set(own) or any(tuple(state[k].shape) != tuple(own[k].shape) for k in state if k in own):
        raise ValueError(f"{path}: the weights do not fit the model their metadata describes: "
                         f"{_mismatch(state, own)}")


# --------------------------------------------------------------------------------------------
# scikit-learn models


def save_sklearn(model, path) -> Path:
    """Write a scikit-learn model to ``path`` with skops (never pickle), atomically.

    Parameters
    ----------
    model : estimator
        A scikit-learn model, or a :class:`~kdistill.sklearn.DistilledClassifier` with a
        scikit-learn teacher.
    path : str or Path

    Returns
    -------
    Path
        The path written.
    """
    import skops.io as sio

    return atomic_write(path, lambda tmp: sio.dump(model, tmp))


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

    path = _existing(path)
    found = file_kind(path)
    if found != "skops":
        hint = ("torch weights: load them with load_weights" if found == "safetensors" else
                "neither a skops nor a safetensors file (or one that is truncated or corrupt); pickle files are "
                "never read")
        raise ValueError(f"{str(path)!r} is not a skops file: it holds {hint}")
    allowed = set(TRUSTED_TYPES) | set(check_trusted(trusted))
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - allowed)
    if untrusted:
        raise ValueError(f"{str(path)!r} holds types that are not trusted: {', '.join(untrusted)}; if you trust "
                         f"the file's source, pass them in trusted=")
    return sio.load(path, trusted=sorted(allowed))
