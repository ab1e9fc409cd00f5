"""Building a model from a spec: the zoo by name, a factory or a scikit-learn estimator class by
import path, and freezing.

Import paths are resolved with the experiment file's folder and the current folder importable
(:func:`importable`), appended to ``sys.path`` only while the module is imported.

Weights are read by :mod:`kdistill.weights`; freezing here is what keeps a teacher (or a frozen
prefix of a transfer-learned model) out of training: no grad, and eval mode that a wrapper's
``.train()`` cannot undo.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import os
import sys
from pathlib import Path

from torch import nn

from .zoo import cnn, mlp

ZOO = {"mlp": mlp, "cnn": cnn}

# Folders (besides the current one) from which import paths are resolved: an experiment file's own.
_FOLDERS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("kdistill_import_folders", default=())


@contextlib.contextmanager
def importable(*folders):
    """Resolve import paths inside this block with ``folders`` importable too (besides the
    current folder), e.g. the folder of the experiment file that names ``mynets:factory``."""
    token = _FOLDERS.set(tuple(dict.fromkeys([*_FOLDERS.get(), *(os.fspath(Path(f).resolve()) for f in folders)])))
    try:
        yield
    finally:
        _FOLDERS.reset(token)


def _import(module_name: str):
    """Import ``module_name`` with the current folder and the :func:`importable` folders appended to
    ``sys.path`` for the import only. Appended, so they never shadow installed packages; removed
    afterwards, so later imports elsewhere are unchanged (the module itself stays imported)."""
    added = [f for f in dict.fromkeys([os.getcwd(), *_FOLDERS.get()]) if f not in sys.path]
    sys.path.extend(added)
    try:
        return importlib.import_module(module_name)
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def is_estimator_class(obj) -> bool:
    """Whether ``obj`` is a scikit-learn classifier or regressor class."""
    if not inspect.isclass(obj):
        return False
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    return issubclass(obj, BaseEstimator) and issubclass(obj, (ClassifierMixin, RegressorMixin))


def resolve_factory(name: str):
    """The model factory for ``name``: ``"mlp"``, ``"cnn"`` or ``"package.module:attribute"``
    (a function returning a module, an ``nn.Module`` subclass, or a scikit-learn classifier or
    regressor class such as ``sklearn.tree:DecisionTreeClassifier``)."""
    if name in ZOO:
        return ZOO[name]
    if ":" not in name:
        raise ValueError(f"model {name!r} is neither a built-in model ({', '.join(ZOO)}) nor an import path "
                         f"'package.module:factory'")
    module_name, _, attr = name.partition(":")
    try:
        module = _import(module_name)
    except ImportError as exc:
        where = ", ".join([os.getcwd(), *_FOLDERS.get()])
        raise ValueError(f"model {name!r}: cannot import module {module_name!r} ({exc}); looked in the installed "
                         f"packages and in {where}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model {name!r}: module {module_name!r} has no callable {attr!r}")
    if not (inspect.isfunction(factory) or (inspect.isclass(factory) and issubclass(factory, nn.Module))
            or is_estimator_class(factory)):
        # Not a security boundary (see docs/background/trust.md), but it stops a file from naming
        # a builtin or a class such as os:system or subprocess:Popen as its "model".
        kind = "class that is not a torch.nn.Module" if inspect.isclass(factory) else type(factory).__name__
        raise ValueError(f"model {name!r}: {attr!r} is a {kind}; a model must be a Python function returning a "
                         f"torch.nn.Module, an nn.Module subclass, or a scikit-learn classifier or regressor class")
    return factory


def is_sklearn_model(name: str) -> bool:
    """Whether the model ``name`` names is a scikit-learn estimator class."""
    return is_estimator_class(resolve_factory(name))


def build_model(name: str, options: dict, input_shape, num_classes: int):
    """Call the factory with ``options``, adding ``input_shape`` and ``num_classes`` when it takes
    them. Returns an ``nn.Module``, or an unfitted scikit-learn estimator for an estimator class."""
    factory = resolve_factory(name)
    if is_estimator_class(factory):
        return factory(**options)
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


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no grad (stale gradients dropped), eval mode, and ``train()``
    keeps it in eval mode."""
    module.requires_grad_(False)
    for p in module.parameters():
        p.grad = None
    module.eval()
    for m in module.modules():
        # A partial of a module-level function, unlike a bound method, survives pickling.
        m.train = functools.partial(_stay_in_eval, m)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo :func:`freeze`: parameters require grad and ``train()`` works again."""
    for m in module.modules():
        m.__dict__.pop("train", None)
    module.requires_grad_(True)
    return module
