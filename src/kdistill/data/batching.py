"""Batches of ``(x, y, index)``: the one way every part of kdistill reads a dataset."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, default_collate

from .splits import ArrayDataset


def global_batches(n: int, batch_size: int, shuffle: bool, seed: int) -> list[torch.Tensor]:
    """Index tensors of the global batches of one pass over ``n`` items (seeded shuffling)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def fetch(dataset: Dataset, idx: torch.Tensor):
    """``(x, y, idx)`` for the items ``idx``: sliced from memory for an ``ArrayDataset``, else
    read item by item and collated."""
    if isinstance(dataset, ArrayDataset):
        return dataset.x[idx], dataset.y[idx], idx
    return default_collate([dataset[i] for i in idx.tolist()])


def batches(dataset: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0):
    """Yield ``(x, y, index)`` batches of ``dataset``, in order unless ``shuffle``."""
    for idx in global_batches(len(dataset), batch_size, shuffle, seed):
        yield fetch(dataset, idx)
