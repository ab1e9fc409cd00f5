"""Which teacher outputs each split is served: the policy the engine follows, kept out of its loop.

- Feature methods tap the teacher's layers, so they get the live teacher on every batch.
- Otherwise each split asks the teacher ``for_dataset(ds, augmented)``: a cached teacher reads
  stored outputs by index (per view, where the data has views), any other teacher runs live.
  The train split is ``augmented`` when the loop transforms its batches at random.
- The live teacher's outputs on the validation split (never augmented) are the same every
  epoch, so they are remembered in memory by index after the first epoch.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .base import Teacher


class Serving:
    """The teacher outputs a fit is served, by split: ``logits(ds, x, index)``; ``teacher`` is
    the teacher whose layers feature methods tap (the live one when they do)."""

    def __init__(self, teacher: Teacher, views: dict[int, Teacher]):
        self.teacher, self.views = teacher, views

    def logits(self, dataset: Dataset, x: Tensor, index: Tensor) -> Tensor:
        return self.views[id(dataset)].logits(x, index)


def serve(teacher: Teacher, data, train, *, tapped: bool, device, once=contextlib.nullcontext) -> Serving:
    """The :class:`Serving` of ``teacher`` for the training set ``train`` (the train split of
    ``data``, with its unlabelled inputs or as fixed views: see ``Splits.training``) and the val split.

    ``tapped`` says a method taps the teacher's features; ``once()`` is a context in which
    caches are built (under torchrun: by rank 0 first, then read by the others).
    """
    if tapped:
        teacher = teacher.live()  # tapped features need the teacher's layers to run on each batch
    teacher.to(device)
    splits = [ds for ds in (train, data.val) if ds is not None]
    with once():
        views = {id(ds): teacher.for_dataset(ds, augmented=ds is train and data.augment is not None)
                 for ds in splits}
    if data.val is not None and data.val is not train and not tapped:
        views[id(data.val)] = remember(views[id(data.val)], data.val)
    return Serving(teacher, views)


# Most values a remembered split may hold in memory (float32: 256 MB); larger splits run live.
MEMORY_LIMIT = 2**26


def remember(view: Teacher, dataset: Dataset) -> Teacher:
    """``view`` serving ``dataset``, with its outputs kept in memory once computed (see
    :class:`RememberedTeacher`); a cache view, or a dataset that augments its items, is returned as is."""
    if getattr(view, "stored", False) or getattr(dataset, "augment", None) is not None:
        return view
    return RememberedTeacher(view, len(dataset))


class RememberedTeacher(Teacher):
    """A frozen teacher's outputs on one unaugmented dataset, kept in memory by dataset index as
    they are first computed. The engine serves its validation split with it: the live teacher
    runs on that split in the first epoch only, as it would to build a cache, and its outputs
    are the same every epoch. A split of more than ``MEMORY_LIMIT`` values is not kept."""

    def __init__(self, teacher: Teacher, rows: int):
        self.teacher, self.rows = teacher, rows
        self.num_classes, self.classes = teacher.num_classes, teacher.classes
        self.table: Tensor | None = None
        self.known = torch.zeros(rows, dtype=torch.bool)
        self.keep = True

    def logits(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        if index is None or not self.keep:
            return self.teacher.logits(x, index)
        index = index.cpu()
        if self.table is not None and bool(self.known[index].all()):
            return self.table[index.to(self.table.device)]
        z = self.teacher.logits(x, index)
        if self.table is None:
            self.keep = self.rows * z[0].numel() <= MEMORY_LIMIT
            if not self.keep:
                return z
            self.table = torch.empty((self.rows, *z.shape[1:]), dtype=z.dtype, device=z.device)
        self.table[index.to(z.device)] = z
        self.known[index] = True
        return z

    def to(self, device) -> RememberedTeacher:
        self.teacher.to(device)
        self.table = None if self.table is None else self.table.to(device)
        return self
