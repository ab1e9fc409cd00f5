"""Image augmentation on batches with plain tensor ops (no torchvision).

One random affine warp per image (rotation, shear, zoom and flips composed into a single 2x3
matrix, applied with ``affine_grid``/``grid_sample``), then a random brightness factor. It works
in display space: normalized inputs are un-normalized first and normalized again afterwards, so
that padding is black and brightness scales pixel values as in the case study.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class Augment:
    """Random augmentation of a batch ``(N, C, H, W)``; call it on training batches only.

    Parameters
    ----------
    rotation : float
        Maximum rotation in degrees; each image turns by a uniform angle in ``[-rotation, rotation]``.
    shear : float
        Maximum shear angle in degrees (horizontal shear).
    zoom : float
        Each image is scaled by a uniform factor in ``[1 - zoom, 1 + zoom]``.
    brightness : (float, float), optional
        Pixel values are multiplied by a uniform factor in this range.
    horizontal_flip, vertical_flip : bool
        Flip each image with probability 0.5 along that axis.
    mean, std : sequence of float, optional
        Per-channel normalization of the inputs, undone before and redone after augmenting.
    """

    def __init__(self, rotation: float = 0.0, shear: float = 0.0, zoom: float = 0.0,
                 brightness: tuple[float, float] | None = None, horizontal_flip: bool = False,
                 vertical_flip: bool = False, mean=None, std=None):
        self.rotation, self.shear, self.zoom = float(rotation), float(shear), float(zoom)
        self.brightness = brightness
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.mean, self.std = mean, std

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"augmentation needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
        x = self._display(x)
        theta = self.matrices(len(x), x.device)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.brightness is not None:
            lo, hi = self.brightness
            x = x * torch.empty(len(x), 1, 1, 1, device=x.device).uniform_(lo, hi)
        return self._normalized(x)

    def matrices(self, n: int, device=None) -> Tensor:
        """``n`` random 2x3 affine matrices mapping output to input coordinates."""
        def uniform(limit):
            return torch.empty(n, device=device).uniform_(-limit, limit)

        angle = uniform(math.radians(self.rotation))
        shear = torch.tan(uniform(math.radians(self.shear)))
        scale = 1.0 + uniform(self.zoom)
        flip_x = _signs(n, self.horizontal_flip, device)
        flip_y = _signs(n, self.vertical_flip, device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # rotation @ shear, then the inverse zoom (sampling a wider field shrinks the image)
        a = torch.stack([torch.stack([cos, cos * shear - sin], 1), torch.stack([sin, sin * shear + cos], 1)], 1)
        a = a / scale[:, None, None] * torch.stack([flip_x, flip_y], 1)[:, None, :]
        return torch.cat([a, torch.zeros(n, 2, 1, device=device)], 2)

    def _stats(self, x: Tensor):
        shape = (1, -1, 1, 1)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        return mean, std

    def _display(self, x: Tensor) -> Tensor:
        if self.mean is None:
            return x
        mean, std = self._stats(x)
        return x * std + mean

    def _normalized(self, x: Tensor) -> Tensor:
        if self.mean is None:
            return x
        mean, std = self._stats(x)
        return (x - mean) / std

    def __repr__(self) -> str:
        return (f"Augment(rotation={self.rotation}, shear={self.shear}, zoom={self.zoom}, "
                f"brightness={self.brightness}, horizontal_flip={self.horizontal_flip}, "
                f"vertical_flip={self.vertical_flip})")


def _signs(n: int, enabled: bool, device) -> Tensor:
    if not enabled:
        return torch.ones(n, device=device)
    return torch.randint(0, 2, (n,), device=device).float() * 2 - 1
