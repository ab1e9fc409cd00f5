"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model and method connectors, optimizer, schedule, gradient scaler,
stateful callbacks (early stopping), history, RNG states and the *position*: the epoch and the
number of its batches already done (non-zero only for a checkpoint written on Ctrl-C), with
that epoch's partial sums. It is written atomically (:func:`kdistill.files.atomic_write`) and
read with ``torch.load(weights_only=True)``, which never unpickles objects, and checked before
anything is loaded: every key present with the right type, and a position within the budget.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from ..files import atomic_write
from .sums import EpochSums

CHECKPOINT = "last.pt"

# What a checkpoint holds: key -> the types its value may have (None: may be missing in value).
KEYS = {"position": (list,), "partial": (dict, type(None)), "stopped": (bool,), "model": (dict,), "methods": (dict,),
        "optimizer": (dict,), "scheduler": (dict, type(None)), "scaler": (dict, type(None)), "callbacks": (dict,),
        "history": (list,), "rng": (Tensor,), "cuda_rng": (Tensor, type(None)), "config": (dict,)}


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test."):  # a new file: never a link's target
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"checkpoint_dir {folder} cannot be written: {exc.strerror or exc}; choose a "
                                 f"writable folder") from exc


def save(path: Path, blob: dict) -> None:
    """Write ``blob`` to ``path`` atomically; on failure the previous checkpoint is kept."""
    def write(tmp: Path) -> None:
        try:
            torch.save(blob, tmp)
        except RuntimeError as exc:  # torch's writer reports a full disk as a RuntimeError
            free = shutil.disk_usage(tmp.parent).free
            raise OSError(f"torch.save failed ({str(exc).splitlines()[0][:200]}; {free / 1e6:.1f} MB free on "
                          f"that disk)") from exc

    atomic_write(path, write, what="checkpoint ")


def load(path: Path, device, epochs: int, batches: int) -> dict:
    """Read a checkpoint and check it before anything is loaded from it: its keys and their
    types, and a position within ``epochs`` epochs of ``batches`` batches that agrees with its
    history. An unreadable file and one of another run are told apart."""
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read means the same to the user
        raise ValueError(f"cannot resume from {path}: the file is truncated or corrupt, or not a kdistill "
                         f"checkpoint ({type(exc).__name__}: {str(exc)[:200]}); delete it to start afresh") from exc
    problem = _problem(blob, epochs, batches)
    if problem:
        raise ValueError(f"cannot resume from {path}: {problem}; it is not a checkpoint of this run (or was "
                         f"damaged): delete it to start afresh")
    return blob


def _problem(blob, epochs: int, batches: int) -> str | None:
    if not isinstance(blob, dict):
        return f"it holds a {type(blob).__name__}, not a checkpoint's mapping"
    missing = sorted(set(KEYS) - set(blob))
    if missing:
        return f"it lacks the key(s) {missing}"
    wrong = [k for k, types in KEYS.items() if not isinstance(blob[k], types)]
    if wrong:
        return f"key {wrong[0]!r} holds a {type(blob[wrong[0]]).__name__}"
    position = blob["position"]
    if len(position) != 2 or not all(type(v) is int for v in position):
        return f"its position {position!r} is not [epoch, batch]"
    epoch, batch = position
    if not (0 <= epoch <= epochs and 0 <= batch <= batches and (batch == 0 or epoch < epochs)):
        return (f"its position (epoch {epoch}, batch {batch}) lies outside this run's budget of {epochs} epoch(s) "
                f"of {batches} batch(es)")
    if len(blob["history"]) != epoch:
        return f"its history holds {len(blob['history'])} epoch(s) but its position says {epoch}"
    return None


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
    """Load a checkpoint's contents (checked by :func:`load`) into ``trainer``, ``callbacks`` and
    ``state``; return its position."""
    try:
        _restore(trainer, blob, callbacks, state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:  # from the file's data
        raise ValueError(f"cannot resume from {path}: it does not match this model and objective "
                         f"({type(exc).__name__}: {str(exc)[:300]})") from exc
    return tuple(blob["position"])


def _restore(trainer, blob: dict, callbacks, state) -> None:
    trainer.model.load_state_dict(blob["model"])
    trainer.losses.load_state_dict(blob["methods"])
    trainer.optimizer.load_state_dict(blob["optimizer"])
    if trainer.scheduler is not None and blob["scheduler"] is not None:
        trainer.scheduler.load_state_dict(blob["scheduler"])
    if trainer.scaler is not None and blob["scaler"] is not None:
        trainer.scaler.load_state_dict(blob["scaler"])
    for key, cb in stateful(callbacks).items():
        if key in blob["callbacks"]:
            cb.load_state_dict(blob["callbacks"][key])
    torch.set_rng_state(blob["rng"].cpu())
    device = trainer.rt.device
    if blob["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(blob["cuda_rng"].cpu(), device)
    if blob["partial"] is not None and trainer.rt.is_main:  # the saved sums are over all ranks:
        trainer.sums = EpochSums(len(trainer.terms), device)  # rank 0 carries them, the others restart from zero
        trainer.sums.load_state_dict(blob["partial"])
    state.history, state.stop = list(blob["history"]), blob["stopped"]
