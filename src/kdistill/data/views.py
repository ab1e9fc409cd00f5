"""Fixed views: augmentation as a seeded set of K views per sample, for consistent teaching.

Each sample ``i`` of a training set has K views ``(i, k)``, each fixed forever by parameters
drawn once from the seed: an affine warp and brightness factor (:class:`~kdistill.data.augment.Augment`),
and optionally a *mixup* or *cutmix* partner ``j`` with its mixing weight ``lam``. Each epoch
serves every sample one of its views, chosen by the epoch's seed. A view is an item of the
dataset (flat index ``i * K + k``), so a cached teacher stores one output per (sample, view)
— computed once and shared by every epoch, student, seed and sweep trial — and the student
always trains on exactly the view whose output it is given (Beyer et al., CVPR 2022, "Knowledge
distillation: a good teacher is patient and consistent").

Labels follow the mix: a view mixing ``i`` (weight ``lam``) and ``j`` has the label distribution
``lam * onehot(y_i) + (1 - lam) * onehot(y_j)`` (:meth:`ViewDataset.targets`) and, for accuracy
and methods that need one class, the class of the larger part. A labelled sample is mixed with
a labelled partner; an unlabelled one (label -1) with any sample, and stays unlabelled.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from .augment import Augment
from .batching import fetch, labels_of
from .fingerprint import dataset_fingerprint, hash_tensor


class ViewDataset(Dataset):
    """``views`` fixed views of each sample of ``base`` (items ``(x, y, index)``).

    Parameters
    ----------
    base : Dataset
        The samples; its first ``labeled`` items are labelled (all of them by default).
    views : int
        Views per sample, >= 1.
    augment : Augment, optional
        The warp and brightness ranges each view draws from (none: the sample as it is).
    mixup, cutmix : float, optional
        Alpha of the Beta(alpha, alpha) mixing weight of a partner sample, pixel-wise (mixup,
        Zhang et al., ICLR 2018) or as a pasted box (cutmix, Yun et al., ICCV 2019); at most one.
    seed : int
        Seed of every view's parameters.
    """

    def __init__(self, base: Dataset, views: int, augment: Augment | None = None, mixup: float | None = None,
                 cutmix: float | None = None, seed: int = 0, labeled: int | None = None):
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be an integer >= 1, got {views!r}")
        if mixup is not None and cutmix is not None:
            raise ValueError("give mixup or cutmix, not both: a view mixes one partner sample")
        for name, alpha in (("mixup", mixup), ("cutmix", cutmix)):
            if alpha is not None and not 0 < alpha < math.inf:
                raise ValueError(f"{name} must be a Beta alpha > 0, got {alpha!r}")
        self.base, self.k, self.warp, self.seed = base, views, augment, seed
        self.mixup, self.cutmix = mixup, cutmix
        self.n = len(base)
        self.labeled = self.n if labeled is None else labeled
        self.y = labels_of(base)
        self._draw()

    def __len__(self) -> int:
        return self.n * self.k

    def _draw(self) -> None:
        """Every view's parameters, drawn once in a fixed order from the seed."""
        g = torch.Generator().manual_seed(self.seed)
        total = len(self)
        self.theta, self.factor = (self.warp.draw(total, g) if self.warp is not None
                                   else (None, torch.ones(total)))
        alpha = self.mixup or self.cutmix
        self.partner = self.lam = self.box = None
        if alpha is None:
            return
        sample = torch.arange(total) // self.k
        labeled = sample < self.labeled
        pool = torch.where(labeled, torch.full_like(sample, max(self.labeled, 1)), torch.full_like(sample, self.n))
        self.partner = (torch.rand(total, generator=g) * pool).long().clamp_max(self.n - 1)
        beta = np.random.default_rng(self.seed).beta(alpha, alpha, total).astype(np.float32)
        self.lam = torch.from_numpy(beta)
        if self.cutmix is not None:
            self.box = torch.rand(total, 2, generator=g)  # box centre as a share of height and width

    def fetch(self, flat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, y, flat)`` of the views ``flat``: each sample warped, mixed with its partner."""
        x, y, _ = fetch(self.base, flat // self.k)
        x = self._warp(x, flat)
        if self.partner is None:
            return x, y, flat
        x_p, y_p, _ = fetch(self.base, self.partner[flat])
        x_p = self._warp(x_p, flat)
        lam = self.lam[flat]
        if self.cutmix is not None:
            mask, lam = self._boxes(flat, lam, x.shape[-2:])
            x = x * mask + x_p * (1 - mask)
        else:
            x = x * lam[:, None, None, None] + x_p * (1 - lam[:, None, None, None])
        y = torch.where((y >= 0) & (lam < 0.5), y_p, y)  # the class of the larger part (unlabelled stays -1)
        return x, y, flat

    def _warp(self, x: Tensor, flat: Tensor) -> Tensor:
        if self.warp is None:
            return x
        return self.warp.apply(x, self.theta[flat], self.factor[flat])

    def _boxes(self, flat: Tensor, lam: Tensor, size) -> tuple[Tensor, Tensor]:
        """Masks (1 keeps the sample, 0 takes the partner) of boxes of area ``1 - lam``, clipped
        to the image; the weights are corrected to the boxes' real areas."""
        h, w = size
        cut = torch.sqrt(1 - lam)
        centre = self.box[flat]
        rows, cols = torch.arange(h).float()[None, :], torch.arange(w).float()[None, :]
        top, bottom = centre[:, :1] * h - cut[:, None] * h / 2, centre[:, :1] * h + cut[:, None] * h / 2
        left, right = centre[:, 1:] * w - cut[:, None] * w / 2, centre[:, 1:] * w + cut[:, None] * w / 2
        inside = ((rows >= top) & (rows < bottom))[:, :, None] & ((cols >= left) & (cols < right))[:, None, :]
        lam = 1 - inside.flatten(1).float().mean(1)
        return (~inside).float()[:, None], lam

    def targets(self, flat: Tensor, num_classes: int) -> Tensor | None:
        """The label distributions of the views ``flat`` (zero rows for unlabelled samples), or
        ``None`` when views are not mixed (plain labels say it all)."""
        if self.partner is None:
            return None
        y, y_p = self.y[flat // self.k], self.y[self.partner[flat]]
        lam = self.lam[flat]
        if self.cutmix is not None:
            _, lam = self._boxes(flat, lam, self._size())
        labeled = (y >= 0)[:, None].float()
        mixed = (lam[:, None] * F.one_hot(y.clamp_min(0), num_classes)
                 + (1 - lam[:, None]) * F.one_hot(y_p.clamp_min(0), num_classes))
        return mixed * labeled

    def _size(self):
        return tuple(self.base[0][0].shape[-2:])

    def pick(self, samples: Tensor, seed: int) -> Tensor:
        """The flat indices of one view per sample in ``samples`` (a whole epoch's order), each
        view chosen at random by ``seed``."""
        choice = torch.randint(0, self.k, (self.n,), generator=torch.Generator().manual_seed(seed))
        return samples * self.k + choice[samples]

    def fingerprint(self) -> str:
        """Identity of every view: the base samples and every drawn parameter."""
        h = hashlib.sha256(f"views k={self.k} seed={self.seed} labeled={self.labeled} mixup={self.mixup} "
                           f"cutmix={self.cutmix} {self.warp!r} {dataset_fingerprint(self.base)}".encode())
        for t in (self.theta, self.factor, self.partner, self.lam, self.box):
            if t is not None:
                hash_tensor(h, t)
        return h.hexdigest()
