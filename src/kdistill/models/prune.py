"""Structured pruning of a trained teacher into a student that inherits its weights.

Torch-Pruning's dependency graph (DepGraph: Fang et al., "DepGraph: Towards Any Structural
Pruning", CVPR 2023) removes whole channels and neurons, and with them every coupled slice of
the layers around them (batch norm, residual additions, concatenations, depthwise groups), so
the pruned network is a smaller dense one that runs anywhere. The final classifier is never
pruned: the student keeps the teacher's outputs. Importance is the L2 magnitude of each group's
weights, or the first-order Taylor estimate ``|w · dL/dw|`` (Molchanov et al., "Importance
Estimation for Neural Network Pruning", CVPR 2019) from cross-entropy gradients on a few
training batches; ``iterative_steps`` reaches the ratio in equal steps, the importance measured
anew after each.

``prune`` is the share of the parameters (or MACs) removed: 0.9 keeps a tenth. ``allocation``
spreads it over the layers: ``"uniform"`` prunes every layer by the same channel share,
``"global"`` ranks the channels of every layer together (each layer's importances normalized by
their mean, Torch-Pruning's global pruning), so layers whose channels matter less lose more (in
one step a layer may keep as little as one channel). Either way the share is found by bisection so that the student
meets the asked share; its layer sizes are data (:mod:`kdistill.models.shapes`).

``reconstruct=True`` (inherited weights only) then refits the pruned layers to the teacher's
outputs (:mod:`kdistill.models.reconstruct`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .build import unfreeze
from .shapes import resizable
from .zoo import count_params

IMPORTANCE = ("magnitude", "taylor")
TARGETS = ("params", "macs")
ALLOCATIONS = ("uniform", "global")
GLOBAL_MAX = 0.95  # Torch-Pruning's max_pruning_ratio: checked between iterative steps only, not within one
TAYLOR_BATCHES = 4  # training batches whose gradients estimate Taylor importance
RECONSTRUCT_BATCHES = 16  # training batches of 64 on which the pruned layers are refit (the last quarter held out)
BISECTIONS = 10


class PruningError(ValueError):
    """A model Torch-Pruning cannot prune as asked; the message names the layer."""


@dataclass(frozen=True)
class FromTeacher:
    """A student that starts as the trained teacher, structurally pruned (see :func:`prune`).

    ``prune`` is the share of the teacher's ``target`` (``"params"`` or ``"macs"``) removed;
    ``weights="inherit"`` keeps the teacher's surviving weights (weight inheritance),
    ``"fresh"`` draws them anew: the same pruned architecture trained from scratch;
    ``reconstruct=True`` refits the inherited layers to the teacher's outputs (see the module).
    """

    prune: float = 0.9
    importance: str = "magnitude"
    iterative_steps: int = 1
    target: str = "params"
    weights: str = "inherit"
    allocation: str = "uniform"
    reconstruct: bool = False

    def __post_init__(self):
        if isinstance(self.prune, bool) or not isinstance(self.prune, (int, float)) or not 0 < self.prune < 1:
            raise ValueError(f"prune = {self.prune!r}: the share of the teacher removed must be a number between 0 "
                             f"and 1 (exclusive), e.g. 0.9 keeps a tenth")
        for field, allowed in (("importance", IMPORTANCE), ("target", TARGETS), ("weights", ("inherit", "fresh")),
                               ("allocation", ALLOCATIONS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"{field} = {getattr(self, field)!r}: allowed values are {', '.join(allowed)}")
        if type(self.iterative_steps) is not int or not 1 <= self.iterative_steps <= 100:
            raise ValueError(f"iterative_steps = {self.iterative_steps!r}: must be an integer from 1 to 100")
        if type(self.reconstruct) is not bool:
            raise ValueError(f"reconstruct = {self.reconstruct!r}: must be true (refit the pruned layers to the "
                             f"teacher's outputs) or false (the weights as pruned)")

    @property
    def family(self) -> str:
        """The architecture (the same whether its weights are inherited or fresh)."""
        spread = "" if self.allocation == "uniform" else f", {self.allocation}"
        return f"pruned {self.prune:g} of {self.target} ({self.importance}, {self.iterative_steps} step(s){spread})"

    def start(self, teacher, data) -> nn.Module:
        """The student of this spec for a trained ``teacher`` (an ``nn.Module``) and its splits."""
        if not isinstance(teacher, nn.Module):
            raise PruningError(f"a student from_teacher is a pruned copy of a PyTorch teacher; this teacher is "
                               f"{type(teacher).__name__} (an ONNX, scikit-learn or other teacher used as loaded "
                               f"has no layers to prune)")
        batches = _batches(data) if self.importance == "taylor" else None
        example = next(iter(_batches(data, 1)))[0]
        refit = self.reconstruct and self.weights == "inherit"
        calibration = [x for x, _ in _batches(data, RECONSTRUCT_BATCHES)] if refit else None
        student = prune(teacher, example, ratio=self.prune, target=self.target, importance=self.importance,
                        iterative_steps=self.iterative_steps, batches=batches, allocation=self.allocation,
                        calibration=calibration)
        return fresh_weights(student) if self.weights == "fresh" else student


def _batches(data, n: int = TAYLOR_BATCHES, size: int = 64):
    """The first ``n`` batches of the training split in a fixed shuffled order (a split sorted by
    class would otherwise give batches of one class)."""
    from ..data import batches

    out = []
    for x, y, _ in batches(data.train, size, shuffle=True, seed=0):
        out.append((x, y))
        if len(out) == n:
            break
    return out


def fresh_weights(model: nn.Module) -> nn.Module:
    """``model`` with every layer's weights drawn anew (from the current torch seed), in place."""
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


def prune(model: nn.Module, example: torch.Tensor, *, ratio: float, target: str = "params",
          importance: str = "magnitude", iterative_steps: int = 1, batches=None,
          allocation: str = "uniform", calibration=None) -> nn.Module:
    """A structurally pruned copy of ``model`` with ``ratio`` of its ``target`` removed.

    Parameters
    ----------
    model : nn.Module
        The trained model (left untouched; frozen teachers are fine).
    example : Tensor
        An input batch, traced to build the dependency graph.
    ratio : float
        Share of the parameters (``target="params"``) or multiply-accumulates (``"macs"``) removed.
    importance : {"magnitude", "taylor"}
        Which channels go: the smallest by L2 norm, or by Taylor estimate on ``batches``
        (``(x, y)`` pairs; required for ``"taylor"``).
    iterative_steps : int
        Steps in which the ratio is reached, importance re-measured after each.
    allocation : {"uniform", "global"}
        The same channel share in every layer, or the channels of all layers ranked together.
    calibration : list of Tensor, optional
        Input batches on which the pruned layers are refit to ``model``'s outputs of their kept
        channels (see the module's docstring); ``None`` keeps the weights as pruned.

    Raises
    ------
    PruningError
        A layer Torch-Pruning cannot prune or kdistill cannot store as data (named), or a
        ratio no channel share reaches.
    """
    if importance == "taylor" and not batches:
        raise ValueError("importance='taylor' needs training batches (x, y) for its gradients")
    base = _copy(model)
    classifier = _classifier(base, example)
    _check_layers(base, classifier)
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation = {allocation!r}: allowed values are {', '.join(ALLOCATIONS)}")
    # a uniform share depends only on the shapes; a global one on the weights, the criterion (and its
    # batches), and the steps, since the ranking is measured anew after each
    spread = (None if allocation == "uniform"
              else (importance, iterative_steps, _digest(batches or []) if importance == "taylor" else None))
    key = (_identity(model, weights=allocation == "global"), tuple(example.shape[1:]), ratio, target, allocation,
           spread)
    if key not in _SHARES:
        _SHARES[key] = _channel_share(base, example, classifier, target, (1 - ratio) * _measure(base, example, target),
                                      allocation, importance, batches, iterative_steps)
    channel = _SHARES[key]
    pruned = _copy(model)
    classifier = dict(pruned.named_modules())[_name(base, classifier)]
    kept = _prune(pruned, example, classifier, channel, importance, iterative_steps, batches, allocation)
    _check_pruned(model, pruned, example)
    if calibration:
        from .reconstruct import reconstruct

        reconstruct(_copy(model), pruned, kept, calibration)
    return pruned


_SHARES: dict = {}  # the channel share found for each key of prune(): a search prunes one teacher often


def _identity(model: nn.Module, weights: bool = False) -> tuple:
    """The model's architecture: its layer names and tensor shapes (a uniform channel share depends
    on nothing else), and with ``weights`` a digest of its values (a global ranking depends on them)."""
    shapes = tuple((name, tuple(t.shape)) for name, t in model.state_dict().items())
    return shapes + (_digest(model.state_dict().values()),) if weights else shapes


def _digest(tensors) -> str:
    """SHA-256 of the bytes of ``tensors`` (nested in tuples or lists), whatever their dtype."""
    import hashlib

    digest = hashlib.sha256()

    def add(t):
        if isinstance(t, (tuple, list)):
            for part in t:
                add(part)
        else:
            digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())

    add(list(tensors))
    return digest.hexdigest()


def _copy(model: nn.Module) -> nn.Module:
    return unfreeze(copy.deepcopy(model)).cpu().eval()


def _name(model: nn.Module, module: nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


def _classifier(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """The last linear or convolutional layer the forward pass runs: the one whose outputs are the logits."""
    ran = []
    hooks = [m.register_forward_hook(lambda mod, i, o: ran.append(mod)) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    try:
        with torch.no_grad():
            _forward(model, example)
    finally:
        for h in hooks:
            h.remove()
    if not ran:
        raise PruningError(f"{type(model).__name__} has no linear or convolutional layer to prune")
    return ran[-1]


def _check_layers(model: nn.Module, classifier: nn.Module) -> None:
    """Refuse a layer that holds weights but is of a kind whose sizes cannot be pruned and stored."""
    for name, m in model.named_modules():
        own = [p for p, v in m._parameters.items() if v is not None]
        if name and own and m is not classifier and resizable(m) is None:
            raise PruningError(f"layer {name!r} ({type(m).__name__}, parameters {', '.join(own)}) cannot be pruned: "
                               f"Torch-Pruning and kdistill's weights files handle convolutions, linear layers, "
                               f"batch/layer/group norm, PReLU and embeddings; make it one of those, or prune a model "
                               f"without it")


def _measure(model: nn.Module, example: torch.Tensor, target: str) -> float:
    if target == "params":
        return float(count_params(model))
    import torch_pruning as tp

    return float(tp.utils.count_ops_and_params(model, example)[0])


def _channel_share(model, example, classifier, target: str, goal: float, allocation: str = "uniform",
                   importance: str = "magnitude", batches=None, steps: int = 1) -> float:
    """The channel share (of every layer, or of all layers together) whose pruned model is the
    largest with at most ``goal`` of ``target``."""
    size_at = {}

    def size(share):
        trial = copy.deepcopy(model)
        clf = dict(trial.named_modules())[_name(model, classifier)]
        if allocation == "uniform":  # the sizes do not depend on which channels go
            _prune(trial, example, clf, share, "magnitude", 1, None)
        else:  # which channels go decides the sizes, step by step
            _prune(trial, example, clf, share, importance, steps, batches, allocation)
        size_at[share] = _measure(trial, example, target)
        return size_at[share]

    # Torch-Pruning leaves alone a layer that a share would empty, so sizes shrink with the share
    # only up to there: the first share of a coarse grid that fits, then bisection below it.
    low = 0.0
    for high in (i / 20 for i in range(1, 20)):
        if size(high) <= goal:
            break
        low = high
    else:
        smallest = min(size_at.values())
        raise PruningError(f"no {allocation} channel share reaches {goal:.0f} {target}: the smallest pruned model "
                           f"has {smallest:.0f}; ask for a smaller share removed")
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        if size(mid) <= goal:
            high = mid
        else:
            low = mid
    return high


def _prune(model, example, classifier, share: float, importance: str, steps: int, batches,
           allocation: str = "uniform") -> dict:
    """Prune ``model`` in place; returns, for each convolution or linear layer whose outputs lost
    channels, the indices of the original output channels it kept."""
    import torch_pruning as tp
    from torch_pruning._helpers import to_plain_idxs

    imp = (tp.importance.GroupTaylorImportance() if importance == "taylor"
           else tp.importance.GroupMagnitudeImportance(p=2))
    spread = ({"global_pruning": True, "max_pruning_ratio": GLOBAL_MAX} if allocation == "global"
              else {"global_pruning": False})
    try:
        pruner = tp.pruner.MetaPruner(model, example, importance=imp, pruning_ratio=share, iterative_steps=steps,
                                      ignored_layers=[classifier], **spread)
        names = {m: n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
        kept: dict[str, list[int]] = {}
        for _ in range(steps):
            if importance == "taylor":
                _gradients(model, batches)
            for group in pruner.step(interactive=True):
                removed: dict[str, set] = {}
                for dep, idxs in group:
                    module = dep.target.module
                    if pruner.DG.is_out_channel_pruning_fn(dep.handler) and module in names:
                        removed.setdefault(names[module], set()).update(int(i) for i in to_plain_idxs(idxs))
                for name, gone in removed.items():
                    before = kept.get(name) or list(range(dict(model.named_modules())[name].weight.shape[0]))
                    kept[name] = [c for i, c in enumerate(before) if i not in gone]
                group.prune()
    except PruningError:
        raise
    except Exception as exc:  # noqa: BLE001 - Torch-Pruning raises many kinds; the user needs the layer
        raise PruningError(f"Torch-Pruning cannot prune {type(model).__name__}: {exc}") from exc
    model.zero_grad(set_to_none=True)
    return kept


def _gradients(model: nn.Module, batches) -> None:
    model.zero_grad(set_to_none=True)
    for x, y in batches:
        labelled = y >= 0
        if labelled.any():
            nn.functional.cross_entropy(model(x[labelled]), y[labelled]).backward()


def _forward(model: nn.Module, x: torch.Tensor):
    """``model(x)``; a layer that fails is named."""
    current = []
    hooks = [m.register_forward_pre_hook(lambda mod, i, n=n: current.append(n)) for n, m in model.named_modules() if n]
    try:
        return model(x)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the layer
        raise PruningError(f"the pruned model fails in layer {current[-1] if current else '(top)'!r}: {exc}; "
                           f"Torch-Pruning cannot follow this layer's dependencies (an operation on channels it "
                           f"does not trace); leave it out with a smaller model, or prune a model without it") from exc
    finally:
        for h in hooks:
            h.remove()


def _check_pruned(original: nn.Module, pruned: nn.Module, example: torch.Tensor) -> None:
    """The pruned model runs, gives the same outputs' shape, and changed only layers whose sizes are data."""
    with torch.no_grad():
        before, after = _forward(_copy(original), example), _forward(pruned, example)
    if tuple(before.shape) != tuple(after.shape):
        raise PruningError(f"pruning changed the outputs' shape from {tuple(before.shape)} to {tuple(after.shape)}")
    old = dict(original.named_modules())
    for name, m in pruned.named_modules():
        changed = [p for p, v in m._parameters.items() if v is not None and p in old[name]._parameters
                   and tuple(v.shape) != tuple(old[name]._parameters[p].shape)]
        if changed and resizable(m) is None:
            raise PruningError(f"layer {name!r} ({type(m).__name__}) was resized by pruning, but its sizes cannot "
                               f"be stored as data in a weights file")
