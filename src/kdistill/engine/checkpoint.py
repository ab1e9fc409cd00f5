"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model and method connectors, optimizer, schedule, gradient scaler,
stateful callbacks (early stopping), history, RNG states and the *position*: the epoch and the
number of its batches already done (non-zero only for a checkpoint written on Ctrl-C), with
that epoch's partial sums. It is written atomically (a temporary file in the same folder, then
a rename) and read with ``torch.load(weights_only=True)``, which never unpickles objects.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT = "last.pt"


def stateful(callbacks) -> dict:
    """Callbacks with saved state, keyed by class name (and rank among same-named ones), so that
    adding or removing other callbacks between a run and its resume cannot mismatch them."""
    keyed, seen = {}, {}
    for cb in callbacks:
        if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
            name = type(cb).__qualname__
            keyed[f"{name}:{seen.get(name, 0)}"] = cb
            seen[name] = seen.get(name, 0) + 1
    return keyed


def check_writable(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written there, before any training time is spent."""
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OSError(exc.errno, f"checkpoint_dir {folder} cannot be written: {exc.strerror or exc}; choose a "
                                 f"writable folder") from exc


def save(path: Path, blob: dict) -> None:
    """Write ``blob`` to ``path`` atomically; on failure the previous checkpoint is kept."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write checkpoint {path}: {exc.strerror or exc}; the previous "
                                 f"checkpoint is kept") from exc


def load(path: Path, device) -> dict:
    """Read a checkpoint, telling an unreadable file from one of another run."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the same to the user
        raise ValueError(f"cannot resume from {path}: the file is truncated or corrupt, or not a kdistill "
                         f"checkpoint ({type(exc).__name__}: {str(exc)[:200]}); delete it to start afresh") from exc
