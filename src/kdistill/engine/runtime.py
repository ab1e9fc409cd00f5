"""Where and how the loop runs: device, precision and torch.distributed, in one small object.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), the runtime joins the process
group — gloo on CPU, nccl on CUDA — and the loop trains with ``DistributedDataParallel``: every
rank takes its share of each global batch, gradients are averaged by DDP, epoch metrics are
summed across ranks, and only rank 0 writes files, logs and shows progress.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

PRECISIONS = ("32", "bf16", "fp16")
_NO_AUTOCAST = contextlib.nullcontext()  # stateless, so one instance serves every step


@dataclass
class Runtime:
    """Device, precision and process-group facts of one process."""

    device: torch.device
    precision: str = "32"
    rank: int = 0
    world_size: int = 1

    @classmethod
    def create(cls, device: str = "auto", precision: str = "32") -> Runtime:
        """Resolve ``device`` (``"auto"`` picks CUDA when present) and join the process group
        when launched by torchrun. Raises when the precision does not fit the device."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and world > 1:
            device = f"cuda:{local}"
        dev = torch.device(device)
        if precision == "fp16" and dev.type != "cuda":
            raise ValueError(f"precision 'fp16' needs a CUDA device (it uses a gradient scaler), got device "
                             f"{device!r}; use precision 'bf16' on CPU")
        if world > 1 and not dist.is_initialized():
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                    timeout=datetime.timedelta(minutes=30))
        rank = dist.get_rank() if dist.is_initialized() else 0
        size = dist.get_world_size() if dist.is_initialized() else 1
        return cls(dev, precision, rank, size)

    @classmethod
    def current(cls) -> Runtime:
        """This process's rank in an already started process group (one process if none)."""
        if dist.is_initialized():
            return cls(torch.device("cpu"), "32", dist.get_rank(), dist.get_world_size())
        return cls(torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """Autocast context for forward passes (a no-op at full precision)."""
        if self.precision == "32":
            return _NO_AUTOCAST
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def grad_scaler(self):
        """A gradient scaler for fp16, else ``None``."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch of indices."""
        return batch if self.world_size == 1 else batch[self.rank::self.world_size]

    def share(self, n: int, batch: int) -> float:
        """Weight of a process's mean loss over ``n`` of a global batch of ``batch`` samples: DDP
        averages the processes' gradients equally, so an uneven split is weighted by its share,
        and every sample counts the same as in one process."""
        return n * self.world_size / batch

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process (collective): every rank then acts alike."""
        if not self.distributed:
            return flag
        return bool(self.all_sum(torch.tensor([float(flag)], device=self.device)) > 0)

    def update(self, loss: torch.Tensor, optimizer, scaler) -> None:
        """One optimizer step on ``loss``: backward (scaled under fp16), step, and update the scaler."""
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place (a no-op in one process)."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def shutdown(self) -> None:
        """Leave the process group together: every rank waits for the others, then destroys it
        (a rank exiting with gloo work or a DDP reducer still alive can abort at interpreter exit)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (pickled by torch.distributed between our own processes)."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def main_first(self):
        """Context in which rank 0 runs first and the others after it (e.g. to build a cache once)."""
        return _MainFirst(self)


class _MainFirst:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def __enter__(self):
        if not self.runtime.is_main:
            self.runtime.barrier()

    def __exit__(self, *exc):
        if self.runtime.is_main:
            self.runtime.barrier()
        return False
