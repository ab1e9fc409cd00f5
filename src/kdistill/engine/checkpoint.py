"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model and method connectors, optimizer, schedule, gradient scaler,
stateful callbacks (early stopping), history, RNG states and the *position*: the epoch and the
number of its batches already done (non-zero only for a checkpoint written on Ctrl-C), with
that epoch's partial sums. It is written atomically (:func:`kdistill.weights.atomic_write`) and
read with ``torch.load(weights_only=True)``, which never unpickles objects.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..weights import atomic_write
from .sums import EpochSums

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
    atomic_write(path, lambda tmp: torch.save(blob, tmp), what="checkpoint ")


def load(path: Path, device) -> dict:
    """Read a checkpoint, telling an unreadable file from one of another run."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the same to the user
        raise ValueError(f"cannot resume from {path}: the file is truncated or corrupt, or not a kdistill "
                         f"checkpoint ({type(exc).__name__}: {str(exc)[:200]}); delete it to start afresh") from exc


def contents(trainer, position: tuple[int, int], callbacks, state, partial=None) -> dict:
    """The checkpoint of ``trainer`` at ``position`` = (epoch, batches of it done); ``partial``
    holds the epoch's sums so far over all ranks when stopped mid-epoch."""
    rt = trainer.rt
    return {
        "position": list(position), "partial": partial, "stopped": state.stop,
        "model": trainer.model.state_dict(), "methods": trainer.losses.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "callbacks": {key: cb.state_dict() for key, cb in stateful(callbacks).items()},
        "history": state.history, "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(rt.device) if rt.device.type == "cuda" else None,
        "config": asdict(trainer.cfg),
    }


def restore(trainer, blob: dict, path: Path, callbacks, state) -> tuple[int, int]:
    """Load a checkpoint's contents into ``trainer``, ``callbacks`` and ``state``; return its position."""
    try:
        trainer.model.load_state_dict(blob["model"])
        trainer.losses.load_state_dict(blob["methods"])
        trainer.optimizer.load_state_dict(blob["optimizer"])
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"cannot resume from {path}: it does not match this model and objective ({exc})") from exc
    if trainer.scheduler is not None and blob["scheduler"] is not None:
        trainer.scheduler.load_state_dict(blob["scheduler"])
    if trainer.scaler is not None and blob["scaler"] is not None:
        trainer.scaler.load_state_dict(blob["scaler"])
    for key, cb in stateful(callbacks).items():
        if key in blob["callbacks"]:
            cb.load_state_dict(blob["callbacks"][key])
    state.history, state.stop = list(blob["history"]), blob["stopped"]
    torch.set_rng_state(blob["rng"].cpu())
    device = trainer.rt.device
    if blob["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(blob["cuda_rng"].cpu(), device)
    if blob["partial"] is not None and trainer.rt.is_main:  # the saved sums are over all ranks:
        trainer.sums = EpochSums(len(trainer.terms), device)  # rank 0 carries them, the others restart from zero
        trainer.sums.load_state_dict(blob["partial"])
    return tuple(blob["position"])
