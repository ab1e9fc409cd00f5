"""A model's layer sizes as data: what a pruned model stores in its weights file so that it can
be rebuilt from the trusted factory of its original architecture, with no code chosen by the file.

:func:`shapes_of` records, for each layer of a kind listed in :data:`RESIZABLE`, the size
attributes that structured pruning changes (channels, features, groups); :func:`resize` sets
them on a freshly built model of the original architecture and gives its parameters and buffers
the shapes of the file's tensors, before the weights are loaded strictly. The record is checked
field by field (:func:`check_shapes`): only known attributes, positive integers, and layers that
the trusted factory built and whose kind matches.
"""

from __future__ import annotations

import torch
from torch import nn

# Layer kinds whose sizes a pruned model may change, and the attributes that say them.
RESIZABLE: dict[type, tuple[str, ...]] = {
    nn.modules.conv._ConvNd: ("in_channels", "out_channels", "groups"),
    nn.Linear: ("in_features", "out_features"),
    nn.modules.batchnorm._NormBase: ("num_features",),
    nn.LayerNorm: ("normalized_shape",),
    nn.GroupNorm: ("num_groups", "num_channels"),
    nn.PReLU: ("num_parameters",),
    nn.Embedding: ("num_embeddings", "embedding_dim"),
}
ATTRIBUTES = frozenset(a for attrs in RESIZABLE.values() for a in attrs)


def resizable(module: nn.Module) -> tuple[str, ...] | None:
    """The size attributes of ``module``'s kind, or ``None`` when it is not a resizable layer."""
    return next((attrs for kind, attrs in RESIZABLE.items() if isinstance(module, kind)), None)


def shapes_of(model: nn.Module) -> dict[str, dict]:
    """``{layer name: {"type": class name, attribute: size...}}`` for every resizable layer."""
    out = {}
    for name, m in model.named_modules():
        attrs = resizable(m)
        if name and attrs:
            out[name] = {"type": type(m).__name__,
                         **{a: list(getattr(m, a)) if a == "normalized_shape" else int(getattr(m, a)) for a in attrs}}
    return out


def check_shapes(value) -> bool:
    """Whether ``value`` has the form :func:`shapes_of` writes (names, known attributes, sizes)."""
    def size(v):
        return type(v) is int and v > 0

    return isinstance(value, dict) and len(value) <= 100_000 and all(
        isinstance(name, str) and isinstance(rec, dict) and isinstance(rec.get("type"), str)
        and set(rec) - {"type"} <= ATTRIBUTES
        and all(size(v) or (k == "normalized_shape" and isinstance(v, list) and 1 <= len(v) <= 4
                            and all(size(d) for d in v)) for k, v in rec.items() if k != "type")
        for name, rec in value.items())


def resize(model: nn.Module, shapes: dict, state: dict, where: str = "weights") -> nn.Module:
    """Give ``model`` (just built by its trusted factory) the layer sizes ``shapes`` records, its
    parameters and buffers the shapes of ``state``'s tensors (empty, to be loaded next); in place.

    Raises
    ------
    ValueError
        A recorded layer that the model does not have, of another kind, or with attributes its
        kind does not take (``where`` names the file).
    """
    named = dict(model.named_modules())
    for name, rec in shapes.items():
        module = named.get(name) if name else None
        if module is None:
            raise ValueError(f"{where}: its pruned shapes name the layer {name!r}, which the model's factory does not "
                             f"build; layers: {', '.join(list(n for n in named if n)[:20])}")
        attrs = resizable(module)
        if attrs is None or type(module).__name__ != rec.get("type") or set(rec) - {"type"} - set(attrs):
            raise ValueError(f"{where}: its pruned shapes describe layer {name!r} as {rec.get('type')!r} with "
                             f"{sorted(set(rec) - {'type'})}, but the factory builds a {type(module).__name__} "
                             f"(sizes: {', '.join(attrs or ()) or 'none'})")
        for attr, size in rec.items():
            if attr != "type":
                setattr(module, attr, tuple(size) if attr == "normalized_shape" else size)
        for kind, tensors in (("parameter", module._parameters), ("buffer", module._buffers)):
            for key, old in list(tensors.items()):
                new = state.get(f"{name}.{key}")
                if old is None or new is None or tuple(new.shape) == tuple(old.shape):
                    continue
                fresh = torch.empty(tuple(new.shape), dtype=old.dtype, device=old.device)
                tensors[key] = nn.Parameter(fresh, requires_grad=old.requires_grad) if kind == "parameter" else fresh
    return model
