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
