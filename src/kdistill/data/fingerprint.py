"""Fingerprints of data: a hash of the inputs exactly as a teacher receives them, so anything
stored per sample (cached teacher outputs) is never served for other inputs."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .batching import batches


def hash_tensor(h, t: Tensor) -> None:
    """Feed ``t``'s dtype, shape and bytes to the hash ``h``."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")


def dataset_fingerprint(dataset: Dataset) -> str:
    """Hash of the inputs exactly as the teacher receives them, in index order.

    A dataset with a ``fingerprint()`` method (for instance one that hashes its file list and
    transform instead of decoding every image) is trusted to provide it.
    """
    if hasattr(dataset, "fingerprint"):
        return str(dataset.fingerprint())
    h = hashlib.sha256(f"n={len(dataset)}".encode())
    for x, _, _ in batches(dataset, 512):
        hash_tensor(h, x)
    return h.hexdigest()


