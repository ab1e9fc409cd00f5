"""Batches of ``(x, y, index)``: the one way every part of kdistill reads a dataset.

An epoch's plan is a list of index batches (:func:`epoch_plan`): seeded shuffling; on a training
set mixing labelled and unlabelled samples, optionally a fixed share of labelled ones per batch;
on fixed views, one view per sample and epoch.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, default_collate

from .splits import ArrayDataset


def global_batches(n: int, batch_size: int, shuffle: bool, seed: int) -> list[torch.Tensor]:
    """Index tensors of the global batches of one pass over ``n`` items (seeded shuffling)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def labeled_per_batch(batch_size: int, share: float) -> int:
    """How many labelled items a mixed batch of ``batch_size`` holds at ``labeled_share`` ``share``."""
    return min(batch_size - 1, max(1, round(share * batch_size)))


def mixed_steps(unlabeled: int, batch_size: int, share: float) -> int:
    """The batches of one epoch of :func:`mixed_batches` over ``unlabeled`` unlabelled items."""
    return math.ceil(unlabeled / (batch_size - labeled_per_batch(batch_size, share)))


def mixed_batches(labeled: int, n: int, batch_size: int, share: float, seed: int) -> list[torch.Tensor]:
    """Batches over ``n`` items whose first ``labeled`` are labelled, each holding
    ``round(share * batch_size)`` (at least 1) labelled items and unlabelled ones for the rest.

    An epoch is one pass over the unlabelled items, in a seeded order; the labelled items are
    drawn from seeded shuffles of them, one after another, as many as the epoch needs.
    """
    g = torch.Generator().manual_seed(seed)
    per_l = labeled_per_batch(batch_size, share)
    per_u = batch_size - per_l
    unlabeled = torch.randperm(n - labeled, generator=g) + labeled
    steps = mixed_steps(len(unlabeled), batch_size, share)
    stream = torch.cat([torch.randperm(labeled, generator=g) for _ in range(math.ceil(steps * per_l / labeled))])
    return [torch.cat([stream[b * per_l:(b + 1) * per_l], unlabeled[b * per_u:(b + 1) * per_u]])
            for b in range(steps)]


def epoch_plan(dataset: Dataset, batch_size: int, shuffle: bool, seed: int,
               labeled_share: float | None = None) -> list[torch.Tensor]:
    """The index batches of one epoch over ``dataset`` (see the module docstring).

    A dataset mixing labelled and unlabelled samples says so with ``labeled`` (its first
    ``labeled`` samples carry labels); one of fixed views has ``pick`` and ``n`` (samples).
    """
    n = getattr(dataset, "n", None) if hasattr(dataset, "pick") else len(dataset)
    labeled = getattr(dataset, "labeled", n)
    if shuffle and labeled_share is not None and 0 < labeled < n:
        plan = mixed_batches(labeled, n, batch_size, labeled_share, seed)
    else:
        plan = global_batches(n, batch_size, shuffle, seed)
    if hasattr(dataset, "pick"):
        flat = dataset.pick(torch.cat(plan), seed)
        plan = list(flat.split([len(b) for b in plan]))
    return plan


def fetch(dataset: Dataset, idx: torch.Tensor):
    """``(x, y, idx)`` for the items ``idx``: sliced from memory for an ``ArrayDataset``, built by
    the dataset's own ``fetch`` when it has one (fixed views), else read item by item and collated."""
    if isinstance(dataset, ArrayDataset):
        return dataset.x[idx], dataset.y[idx], idx
    if hasattr(dataset, "fetch"):
        return dataset.fetch(idx)
    return default_collate([dataset[i] for i in idx.tolist()])


def batches(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0):
    """Yield ``(x, y, index)`` batches of ``dataset``, in order unless ``shuffle``."""
    for idx in global_batches(len(dataset), batch_size, shuffle, seed):
        yield fetch(dataset, idx)


def labels_of(dataset: Dataset) -> torch.Tensor:
    """Every item's label, in index order."""
    if isinstance(dataset, ArrayDataset):
        return dataset.y
    return torch.cat([y for _, y, _ in batches(dataset, 1024)]).long()
