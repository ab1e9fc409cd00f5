"""Feature taps: the outputs of named submodules of an unmodified model, through forward hooks.

``FeatureTaps(model, ["features.3"])`` checks the names once; used as a context manager it
registers one forward hook per name on entry and removes them all on exit, so the model is
left exactly as it was::

    with FeatureTaps(model, ["features.3"]) as taps:
        logits = model(x)
    feats = taps.collect()  # {"features.3": Tensor}
"""

from __future__ import annotations

import difflib

from torch import Tensor, nn


def module_names(model: nn.Module) -> list[str]:
    """Dotted names of every submodule of ``model`` that can be tapped (the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


class FeatureTaps:
    """Forward hooks on the submodules of ``model`` named in ``names``.

    Parameters
    ----------
    model : nn.Module
        The model to tap; it is never modified beyond the hooks held while inside ``with``.
    names : sequence of str
        Dotted module names as in ``model.named_modules()`` (``"features.3"``,
        ``"layer2.0.conv1"``). A wrong name raises ``ValueError`` listing the valid ones.
    """

    def __init__(self, model: nn.Module, names):
        self.names = tuple(dict.fromkeys(names))
        modules = dict(model.named_modules())
        for name in self.names:
            if not name or name not in modules:
                raise ValueError(_unknown(name, model))
        self._modules = {name: modules[name] for name in self.names}
        self._handles: list = []
        self.outputs: dict[str, Tensor] = {}

    def __enter__(self) -> FeatureTaps:
        if not self.names:
            return self  # nothing to tap: the training step's fast path
        if self._handles:
            raise RuntimeError("these FeatureTaps are already active; leave the first `with` block first")
        self.outputs = {}
        self._handles = [module.register_forward_hook(self._hook(name)) for name, module in self._modules.items()]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if not isinstance(output, Tensor):
                raise TypeError(f"module {name!r} ({type(module).__name__}) returned {type(output).__name__}; "
                                f"a feature tap needs a module that returns one tensor")
            self.outputs[name] = output

        return hook

    def collect(self, clone: bool = False, dtype=None) -> dict[str, Tensor]:
        """The tapped outputs of the last forward pass, by name; ``clone=True`` copies them
        (turns inference-mode tensors into normal ones), ``dtype`` casts them. Raises if a
        module did not run."""
        if not self.names:
            return {}
        missing = [n for n in self.names if n not in self.outputs]
        if missing:
            raise RuntimeError(f"the tapped module(s) {missing} did not run in the forward pass, so their "
                               f"outputs are missing; tap modules that the model's forward calls (a teacher "
                               f"whose outputs are read from a cache runs no module at all)")
        out = {n: self.outputs[n].clone() if clone else self.outputs[n] for n in self.names}
        return out if dtype is None else {n: v.to(dtype) for n, v in out.items()}


def _unknown(name: str, model: nn.Module) -> str:
    valid = module_names(model)
    hint = difflib.get_close_matches(name, valid, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    return (f"{type(model).__name__} has no submodule named {name!r}{extra}; valid names: "
            f"{', '.join(valid) or 'none (the model has no submodules)'}")


def layer_table(model: nn.Module, input_shape) -> list[dict]:
    """Every submodule of ``model`` in definition order with its ``type``, its output ``shape``
    (per sample, for a batch of ``input_shape``; ``None`` if it did not run; the type's name for
    a non-tensor output) and its ``params`` (its own and its children's)."""
    import torch

    named = [(name, m) for name, m in model.named_modules() if name]
    shapes: dict[str, object] = {}

    def hook(name):
        def record(module, inputs, output):  # called in the order modules finish: the forward order
            shapes.pop(name, None)
            shapes[name] = tuple(output.shape[1:]) if isinstance(output, Tensor) else type(output).__name__
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in named]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *input_shape, device=next(iter(model.parameters()), torch.empty(0)).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    order = {name: i for i, name in enumerate(shapes)}
    return [{"name": name, "type": type(m).__name__, "shape": shapes.get(name), "order": order.get(name),
             "params": sum(p.numel() for p in m.parameters())} for name, m in named]


def _stages(rows: list[dict]) -> list[dict]:
    """Tap points in forward order: per spatial size of the feature maps ``(C, H, W)``, the
    shallowest module (fewest dots) last to output it, among those whose submodules all output
    that size (a block, not a container of several stages); for models without maps, the
    hidden vectors ``(D,)`` after activations."""
    ran = sorted((r for r in rows if isinstance(r["shape"], tuple)), key=lambda r: r["order"])
    maps = [r for r in ran if len(r["shape"]) == 3]
    if not maps:
        vectors = [r for r in ran if len(r["shape"]) == 1]
        last = vectors[-1]["shape"] if vectors else None
        return [r for r in vectors if r["shape"] != last and r["params"] == 0] or vectors[:-1]
    out = []
    for size in dict.fromkeys(r["shape"][1:] for r in maps):
        group = [r for r in maps if r["shape"][1:] == size]
        inside = [r for r in group if all(o["shape"] is None or len(o["shape"]) == 3 and o["shape"][1:] == size
                                          for o in ran if o["name"].startswith(r["name"] + "."))] or group
        depth = min(r["name"].count(".") for r in inside)
        out.append([r for r in inside if r["name"].count(".") == depth][-1])
    return out


def suggest_pairs(student: list[dict], teacher: list[dict]) -> list[tuple[dict, dict]]:
    """Layer pairs for feature methods, from two :func:`layer_table` listings: each student tap
    point with the teacher's of the same spatial size, else the one at the nearest relative depth."""
    s_points, t_points = _stages(student), _stages(teacher)
    if not s_points or not t_points:
        return []
    pairs = []
    for i, s in enumerate(s_points):
        same = [t for t in t_points
                if len(t["shape"]) == 3 and len(s["shape"]) == 3 and t["shape"][1:] == s["shape"][1:]]
        depth = (i + 1) / len(s_points)
        _, nearest = min(enumerate(t_points), key=lambda jt: abs((jt[0] + 1) / len(t_points) - depth))
        pairs.append((s, same[-1] if same else nearest))
    return pairs
