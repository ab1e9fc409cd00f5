"""Train the DDP-equality model (see tests/test_runtime.py) and, on rank 0, save its weights.

Run as ``torchrun --standalone --nproc-per-node N tests/scripts/ddp_fit.py OUT.safetensors``.
"""

import sys

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from kdistill.data import split_arrays
from kdistill.engine import Runtime, fit
from kdistill.models import mlp


def problem():
    """A 3-class task and a fresh model, identical in every process."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 64)
    x = rng.normal(0, 3, size=(3, 6))[y] + rng.normal(0, 1, size=(len(y), 6))
    data = split_arrays(x, y, ["a", "b", "c"], seed=0, val_size=0.25, test_size=0.0)
    torch.manual_seed(0)
    return data, mlp(6, 3, hidden=[16])


OPTIONS = dict(epochs=3, batch_size=16, lr=0.01, seed=5, quiet=True)

if __name__ == "__main__":
    torch.set_num_threads(1)
    data, model = problem()
    history = fit(model, data, **OPTIONS)
    if dist.get_rank() == 0:
        save_file(model.state_dict(), sys.argv[1], metadata={"val_accuracy": str(history.epochs[-1]["val_accuracy"]),
                                                       "world_size": str(dist.get_world_size())})
    Runtime.current().shutdown()
