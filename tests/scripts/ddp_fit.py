"""The multi-process scenarios of tests/test_runtime.py, run by torchrun:

    torchrun --standalone --nproc-per-node N tests/scripts/ddp_fit.py MODE OUT_DIR

MODE ``full`` trains and, on rank 0, saves the weights and history; ``interrupt`` sends rank 0
a SIGINT in the middle of epoch 2 (with a checkpoint folder); ``resume`` continues that run and
saves like ``full``; ``nan`` poisons rank 1's model only, and every rank records whether it
raised NonFiniteLossError.
"""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from kdistill.data import split_arrays
from kdistill.engine import NonFiniteLossError, Runtime, TrainingInterrupted, fit
from kdistill.models import mlp


def problem():
    """A 3-class task and a fresh model, identical in every process."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 64)
    x = rng.normal(0, 3, size=(3, 6))[y] + rng.normal(0, 1, size=(len(y), 6))
    data = split_arrays(x, y, ["a", "b", "c"], seed=0, val_size=0.25, test_size=0.0)
    torch.manual_seed(0)
    return data, mlp(6, 3, hidden=[16])


OPTIONS = dict(epochs=3, batch_size=15, lr=0.01, seed=5, quiet=True)  # odd: shards of 8 and 7


class At:
    """Calls ``action`` on this rank after batch ``batch`` of epoch ``epoch``."""

    def __init__(self, rank, epoch, batch, action):
        self.rank, self.at, self.action = rank, (epoch, batch), action

    def on_batch_end(self, state):
        if Runtime.current().rank == self.rank and (state.epoch, state.batch) == self.at:
            self.action(state)


def poison(state):
    with torch.no_grad():
        state.model.classifier.bias.fill_(float("nan"))


def save(out: Path, model, history) -> None:
    rt = Runtime.current()
    if rt.is_main:
        save_file(model.state_dict(), out / "weights.safetensors", metadata={"world_size": str(rt.world_size)})
        (out / "history.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "seconds"}
                                                      for r in history.epochs]))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, out = sys.argv[1], Path(sys.argv[2])
    data, model = problem()
    ckpt = {"checkpoint_dir": str(out / "ckpt")}
    if mode == "full":
        save(out, model, fit(model, data, **OPTIONS))
    elif mode == "interrupt":
        ctrl_c = At(0, 1, 2, lambda state: os.kill(os.getpid(), signal.SIGINT))
        try:
            fit(model, data, callbacks=[ctrl_c], **ckpt, **OPTIONS)
        except TrainingInterrupted:
            (out / f"interrupted{Runtime.current().rank}").touch()
    elif mode == "resume":
        save(out, model, fit(model, data, resume=True, **ckpt, **OPTIONS))
    elif mode == "nan":
        try:
            fit(model, data, callbacks=[At(1, 0, 1, poison)], **OPTIONS)
        except NonFiniteLossError:
            (out / f"raised{Runtime.current().rank}").touch()
    Runtime.current().shutdown()
