"""Teachers: anything that returns logits for a batch, behind one small protocol.

A PyTorch teacher is frozen in place: its parameters stop requiring grad, it is put in eval
mode, and its ``train()`` is overridden so that a wrapper's ``.train()`` cannot switch dropout
or batch-norm updates back on. It runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import types

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset


class Teacher:
    """Protocol of a teacher: ``logits(x, index)`` for a batch, plus optional class metadata.

    ``for_dataset(ds)`` returns the teacher to use on that dataset (a cached teacher returns a
    view that reads stored outputs by ``index``); the default is the teacher itself.
    """

    num_classes: int | None = None
    classes: list | None = None

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def for_dataset(self, dataset: Dataset) -> Teacher:
        return self

    def to(self, device) -> Teacher:
        return self


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
        m.train = types.MethodType(_stay_in_eval, m)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo :func:`freeze`: parameters require grad and ``train()`` works again."""
    for m in module.modules():
        m.__dict__.pop("train", None)
    module.requires_grad_(True)
    return module


class TorchTeacher(Teacher):
    """A frozen ``nn.Module`` teacher."""

    def __init__(self, module: nn.Module):
        self.module = freeze(module)

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        with torch.inference_mode():
            out = self.module(x)
        # A normal tensor: inference tensors cannot be saved for the student's backward pass.
        return out.clone()

    def to(self, device) -> TorchTeacher:
        self.module.to(device)
        return self


def as_teacher(obj) -> Teacher:
    """Wrap ``obj`` as a :class:`Teacher`. Accepts a ``Teacher`` or a ``torch.nn.Module``."""
    if isinstance(obj, Teacher):
        return obj
    if isinstance(obj, nn.Module):
        return TorchTeacher(obj)
    raise TypeError(f"cannot use {type(obj).__name__} as a teacher; expected a torch.nn.Module or a kdistill Teacher")
