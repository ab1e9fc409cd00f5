"""An epoch's running totals: the loss sum of each term, correct predictions, labelled samples
and samples seen.

They stay on the device (no host sync per batch); predictions are counted a few batches at a
time, which is exact for integer counts under any grouping. Accuracy counts labelled samples
only (an unlabelled one has label -1). Under torchrun the totals are summed over processes
when read.
"""

from __future__ import annotations

import torch
from torch import Tensor

PENDING = 16  # batches whose predictions wait to be counted together (bounded memory)


class EpochSums:
    """Totals of one pass over a split, for ``terms`` loss terms, on ``device``."""

    def __init__(self, terms: int, device):
        self.terms, self.device = terms, device
        self.losses = torch.zeros(terms, device=device)
        self.counts = torch.zeros(2, device=device, dtype=torch.long)  # correct, labelled
        self.seen = 0
        self._pending: list[tuple[Tensor, Tensor]] = []

    def add(self, values: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Add one batch: its term values (means over the batch), logits and labels."""
        n = labels.shape[0]
        self.losses.add_(values.detach(), alpha=n)
        self.seen += n
        self._pending.append((logits.detach(), labels))
        if len(self._pending) == PENDING:
            self._count()

    def _count(self) -> None:
        if self._pending:
            logits = torch.cat([p[0] for p in self._pending])
            labels = torch.cat([p[1] for p in self._pending])
            labeled = labels >= 0
            self.counts.add_(torch.stack([((logits.argmax(1) == labels) & labeled).sum(), labeled.sum()]))
            self._pending.clear()

    def reduced(self, runtime) -> Tensor:
        """``[loss sums..., correct, labelled, seen]`` summed over processes (collective: every rank calls it)."""
        self._count()
        return runtime.all_sum(torch.cat([self.losses, self.counts.to(self.losses.dtype),
                                          torch.tensor([float(self.seen)], device=self.device)]))

    def record(self, prefix: str, names: list[str], weights: list[float], runtime) -> dict:
        """The epoch's record: the weighted loss, accuracy and each term's mean, keys prefixed."""
        totals = self.reduced(runtime).tolist()
        k = self.terms
        means = [v / max(totals[-1], 1.0) for v in totals[:k]]
        record = {prefix + "loss": sum(w * m for w, m in zip(weights, means)),
                  prefix + "accuracy": totals[k] / max(totals[k + 1], 1.0)}
        record.update({prefix + name: m for name, m in zip(names, means)})
        return record

    def state_dict(self, runtime) -> dict:
        """The totals so far over all processes (collective), for a checkpoint written mid-epoch."""
        totals = self.reduced(runtime)
        k = self.terms
        return {"sums": totals[:k].clone(), "counts": totals[k:k + 2].round().long(), "seen": int(totals[k + 2])}

    def load_state_dict(self, state: dict) -> None:
        self.losses = state["sums"].to(self.device)
        self.counts = state["counts"].to(self.device)
        self.seen = state["seen"]
