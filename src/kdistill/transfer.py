"""Models for transfer learning: build by name or import path, load weights safely, freeze layers.

Weights come from safetensors files or PyTorch state dicts read with
``torch.load(weights_only=True)``: arbitrary pickled objects are never loaded.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from pathlib import Path

import torch
from torch import nn

from . import models
from .serialize import read_safetensors
from .teachers import freeze

log = logging.getLogger("kdistill")

ZOO = {"mlp": models.mlp, "cnn": models.cnn}


def resolve_factory(name: str):
    """The model factory for ``name``: ``"mlp"``, ``"cnn"`` or ``"package.module:attribute"``."""
    if name in ZOO:
        return ZOO[name]
    if ":" not in name:
        raise ValueError(f"model {name!r} is neither a built-in model ({', '.join(ZOO)}) nor an import path "
                         f"'package.module:factory'")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model {name!r}: cannot import module {module_name!r} ({exc})") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model {name!r}: module {module_name!r} has no callable {attr!r}")
    if not (inspect.isfunction(factory) or (inspect.isclass(factory) and issubclass(factory, nn.Module))):
        # Not a security boundary (see the README's trust model), but it stops a file from naming
        # a builtin or a class such as os:system or subprocess:Popen as its "model".
        kind = "class that is not a torch.nn.Module" if inspect.isclass(factory) else type(factory).__name__
        raise ValueError(f"model {name!r}: {attr!r} is a {kind}; a model must be a Python function returning a "
                         f"torch.nn.Module, or an nn.Module subclass")
    return factory


def build_model(name: str, options: dict, input_shape, num_classes: int) -> nn.Module:
    """Call the factory with ``options``, adding ``input_shape`` and ``num_classes`` when it takes them."""
    factory = resolve_factory(name)
    params = _parameters(factory)
    kwargs = dict(options)
    for key, value in (("input_shape", tuple(input_shape)), ("num_classes", num_classes)):
        if key in params and key not in kwargs:
            kwargs[key] = value
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def option_names(name: str) -> list[str] | None:
    """Keyword options the factory accepts (``None`` when it takes ``**kwargs``)."""
    params = _parameters(resolve_factory(name))
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return [p for p in params if p not in ("input_shape", "num_classes")]


def _parameters(factory) -> dict:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {"kwargs": inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)}


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a state dict saved with ``torch.save``
    (read with ``weights_only=True``; a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"cannot read weights {path} as a state dict with torch.load(weights_only=True) (a "
                         f"truncated or corrupt file, or one holding objects other than tensors, which are never "
                         f"unpickled): {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return blob


def load_weights(model: nn.Module, path, partial: bool = False) -> list[str]:
    """Load ``path`` into ``model``. Every tensor must match unless ``partial``: then tensors whose
    name and shape match are loaded and the rest keep their fresh values. Returns the names not loaded."""
    state = read_state_dict(path)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    tied = _tied(own)
    fresh = sorted(k for k in set(own) - set(matching) if not tied.get(k, set()) & set(matching))
    extra = sorted(set(state) - set(matching))
    if not partial and (fresh or extra):
        raise ValueError(f"weights {path} do not match the model (another architecture or input size?): "
                         f"{_mismatch(state, own)}; set weights_partial: true to load only the tensors that match "
                         f"(e.g. a new classifier head)")
    if not matching:
        raise ValueError(f"weights {path}: no tensor matches the model by name and shape")
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


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, in definition order (the "layers")."""
    return [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]


def freeze_layers(model: nn.Module, modules=(), first: int = 0) -> list[str]:
    """Freeze the named ``modules`` and the first ``first`` layers (see :func:`layer_names`):
    their parameters stop requiring grad and they stay in eval mode (batch-norm statistics kept).
    Returns the names frozen."""
    named = dict(model.named_modules())
    unknown = [m for m in modules if m not in named or not m]
    if unknown:
        raise ValueError(f"cannot freeze {unknown}: no such module; modules are {', '.join(n for n in named if n)}")
    layers = layer_names(model)
    if first > len(layers):
        raise ValueError(f"cannot freeze the first {first} layers: the model has {len(layers)} ({', '.join(layers)})")
    chosen = list(dict.fromkeys([*modules, *layers[:first]]))
    for name in chosen:
        freeze(named[name])
    if chosen and not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"freezing {chosen} leaves no trainable parameter; freeze fewer layers, or set fit: false "
                         f"to use the loaded model as it is")
    return chosen
