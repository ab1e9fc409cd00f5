"""Ctrl-C as a request: stop after the current batch, save, and say how to continue."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from .runtime import Runtime


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after the current batch. ``epoch`` and ``batch`` (1-based) say
    where; ``checkpoint`` is the file saved there, or ``None`` without a ``checkpoint_dir``."""

    def __init__(self, epoch: int, batch: int, checkpoint: Path | None):
        self.epoch, self.batch, self.checkpoint = epoch, batch, checkpoint
        where = (f"saved to {checkpoint}; continue with resume=True" if checkpoint is not None
                 else "nothing was saved (no checkpoint_dir)")
        super().__init__(f"interrupted in epoch {epoch} after batch {batch}; {where}")


class Stop(Exception):
    """Raised inside an epoch when Ctrl-C asked to stop after the batch just completed."""


class Interrupt:
    """Turn the first Ctrl-C into a request to stop after the current batch (the second one
    interrupts at once). Only the main thread can install a signal handler; elsewhere no-op."""

    def __init__(self, runtime: Runtime):
        self.runtime, self.flag, self.previous = runtime, False, None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):  # respect an ignored SIGINT
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.flag = True
        signal.signal(signal.SIGINT, self.previous)

    def requested(self) -> bool:
        return self.runtime.any(self.flag)  # every rank stops at the same batch

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
