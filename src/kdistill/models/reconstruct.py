"""Least-squares refit of a pruned student's layers to the teacher's outputs.

``FromTeacher(reconstruct=True)`` (inherited weights only) refits each pruned layer by least squares, as
in He et al., "Channel Pruning for Accelerating Very Deep Neural Networks" (ICCV 2017) and ThiNet
(Luo et al., ICCV 2017): in forward order, every 2-D convolution (ungrouped) or linear layer whose
inputs lost channels gets the weights (and bias) that best map what the pruned network now feeds
it to what the teacher's same layer gave on its kept channels, on a few shuffled training batches
(ridge-regularized; a refit that predicts held-out calibration batches worse than the pruned
weights is not taken). It is for a pruned model used with little or no training: on
``benchmarks/shrink.py``'s Fashion-MNIST teacher, a tenth of the parameters scored 0.22 on
validation before any training as pruned and 0.90 refit (a thirtieth: 0.10 and 0.84), but after
one epoch of distillation or three the two were within 0.25 points, either way. So it is off by
default.
"""

from __future__ import annotations

import torch
from torch import nn

RECONSTRUCT_POSITIONS = 32  # spatial positions per image a convolution is refit on
RIDGE = 1e-3  # the refit's ridge, relative to the mean diagonal of its Gram matrix


class _Stop(Exception):
    """Raised by a hook once the layer of interest has run: the rest of the forward pass is not needed."""


def _layer_io(model: nn.Module, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of layer ``name`` of ``model`` on ``x`` (the forward pass stops there)."""
    seen = {}

    def hook(module, inputs, output):
        seen["io"] = (inputs[0].detach(), output.detach())
        raise _Stop

    handle = dict(model.named_modules())[name].register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen["io"]


def _refittable(pruned: nn.Module, teacher: nn.Module, example: torch.Tensor) -> list[str]:
    """The convolutions (2-D, ungrouped, numeric padding) and linear layers whose inputs lost
    channels, each run once per forward pass, in the order the forward pass runs them."""
    calls: list[str] = []
    original = dict(teacher.named_modules())
    hooks = [m.register_forward_pre_hook(lambda mod, i, n=n: calls.append(n)) for n, m in pruned.named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            pruned(example)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for name in dict.fromkeys(calls):
        m, t = dict(pruned.named_modules())[name], original.get(name)
        if calls.count(name) != 1 or type(t) is not type(m) or m.weight.shape[1] == t.weight.shape[1]:
            continue
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or isinstance(m.padding, str) or m.padding_mode != "zeros"):
            continue
        out.append(name)
    return out


def _design(layer: nn.Module, x: torch.Tensor, y: torch.Tensor, rows: torch.Generator):
    """The least-squares problem of ``layer``: its inputs ``x`` as rows (a convolution's patches at
    a few spatial positions), with a column of ones for a bias, and the wanted outputs ``y``."""
    if isinstance(layer, nn.Conv2d):
        patches = nn.functional.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
        count = patches.shape[2]
        at = torch.randint(0, count, (patches.shape[0], min(RECONSTRUCT_POSITIONS, count)), generator=rows)
        a = torch.gather(patches, 2, at[:, None, :].expand(-1, patches.shape[1], -1)).transpose(1, 2)
        y = torch.gather(y.flatten(2), 2, at[:, None, :].expand(-1, y.shape[1], -1)).transpose(1, 2)
        a, y = a.reshape(-1, a.shape[2]), y.reshape(-1, y.shape[2])
    else:
        a, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    if layer.bias is not None:
        a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], 1)
    return a.double(), y.double()


def reconstruct(teacher: nn.Module, pruned: nn.Module, kept: dict, calibration) -> list[str]:
    """Refit, in place and in forward order, each layer of ``pruned`` whose inputs lost channels
    so that on ``calibration`` batches it maps the pruned network's inputs to the ``teacher``'s
    outputs of its kept channels (``kept``: output channel indices per layer name, from pruning).
    Both networks run in eval mode. Returns the names of the layers refit."""
    teacher.eval()
    mode = pruned.training
    pruned.eval()
    fit, held = calibration[: max(1, len(calibration) * 3 // 4)], calibration[max(1, len(calibration) * 3 // 4):]
    done = []
    for name in _refittable(pruned, teacher, calibration[0]):
        layer = dict(pruned.named_modules())[name]
        outputs = kept.get(name)
        sums = []
        for part in (fit, held):
            gram = cross = None
            rows = torch.Generator().manual_seed(0)
            for x in part:
                inputs, _ = _layer_io(pruned, name, x)
                _, wanted = _layer_io(teacher, name, x)
                if outputs is not None:
                    wanted = wanted.index_select(1 if isinstance(layer, nn.Conv2d) else wanted.dim() - 1,
                                                 torch.tensor(outputs))
                a, y = _design(layer, inputs, wanted, rows)
                gram = a.T @ a if gram is None else gram + a.T @ a
                cross = a.T @ y if cross is None else cross + a.T @ y
            sums.append((gram, cross))
        (gram, cross), (held_gram, held_cross) = sums
        current = layer.weight.detach().reshape(layer.weight.shape[0], -1).double()
        if layer.bias is not None:
            current = torch.cat([current, layer.bias.detach().double()[:, None]], 1)
        ridge = RIDGE * gram.diagonal().mean().clamp_min(1e-12)
        try:
            solved = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype), cross).T
        except RuntimeError:
            continue
        def error(w):  # squared error on the held-out rows, less their constant sum of squares
            return float((w @ held_gram * w).sum() - 2 * (w * held_cross.T).sum())

        if not torch.isfinite(solved).all() or (held_gram is not None and error(solved) >= error(current)):
            continue  # taken only where it predicts the held-out rows better
        with torch.no_grad():
            if layer.bias is not None:
                layer.bias.copy_(solved[:, -1].to(layer.bias.dtype))
                solved = solved[:, :-1]
            layer.weight.copy_(solved.reshape(layer.weight.shape).to(layer.weight.dtype))
        done.append(name)
    pruned.train(mode)
    return done
