"""Image augmentation on batches with plain tensor ops (no torchvision).

One affine warp per image (rotation, shear, zoom, translation and flips composed into a single
2x3 matrix, applied with ``affine_grid``/``grid_sample``), then a brightness factor. It works in
display space: normalized inputs are un-normalized first and normalized again afterwards, so
that padding is black and brightness scales pixel values as in the case study.

Called on a batch, :class:`Augment` draws fresh random parameters (live augmentation); fixed
views (:mod:`kdistill.data.views`) draw them once per (sample, view) with :meth:`Augment.draw`
and apply them with :meth:`Augment.apply`, so the same view can be rebuilt at any time.
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
    translate : float
        Each image moves by up to this share of its width and height (uniform, per axis).
    brightness : (float, float), optional
        Pixel values are multiplied by a uniform factor in this range.
    horizontal_flip, vertical_flip : bool
        Flip each image with probability 0.5 along that axis.
    mean, std : sequence of float, optional
        Per-channel normalization of the inputs, undone before and redone after augmenting.
    """

    def __init__(self, rotation: float = 0.0, shear: float = 0.0, zoom: float = 0.0, translate: float = 0.0,
                 brightness: tuple[float, float] | None = None, horizontal_flip: bool = False,
                 vertical_flip: bool = False, mean=None, std=None):
        self.rotation, self.shear, self.zoom = float(rotation), float(shear), float(zoom)
        self.translate = float(translate)
        self.brightness = brightness
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.mean, self.std = mean, std

    def __call__(self, x: Tensor) -> Tensor:
        theta, factor = self.draw(len(x), device=x.device)
        return self.apply(x, theta, factor)

    def draw(self, n: int, generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
        """``n`` random 2x3 affine matrices (mapping output to input coordinates) and ``n``
        brightness factors, drawn from ``generator``."""
        def uniform(low, high):
            return torch.rand(n, generator=generator, device=device) * (high - low) + low

        def signs(enabled):
            flips = torch.randint(0, 2, (n,), generator=generator, device=device).float() * 2 - 1
            return flips if enabled else torch.ones(n, device=device)

        angle = uniform(-math.radians(self.rotation), math.radians(self.rotation))
        shear = torch.tan(uniform(-math.radians(self.shear), math.radians(self.shear)))
        scale = 1.0 + uniform(-self.zoom, self.zoom)
        shift = torch.stack([uniform(-self.translate, self.translate), uniform(-self.translate, self.translate)], 1)
        flip = torch.stack([signs(self.horizontal_flip), signs(self.vertical_flip)], 1)
        factor = uniform(*self.brightness) if self.brightness is not None else torch.ones(n, device=device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # rotation @ shear, then the inverse zoom (sampling a wider field shrinks the image)
        a = torch.stack([torch.stack([cos, cos * shear - sin], 1), torch.stack([sin, sin * shear + cos], 1)], 1)
        a = a / scale[:, None, None] * flip[:, None, :]
        return torch.cat([a, 2 * shift[:, :, None]], 2), factor  # shifts in [-1, 1] image coordinates

    def apply(self, x: Tensor, theta: Tensor, factor: Tensor) -> Tensor:
        """``x`` warped by the affine matrices ``theta`` and scaled by the brightness ``factor``."""
        if x.ndim != 4:
            raise ValueError(f"augmentation needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
        x = self._display(x)
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.brightness is not None:
            x = x * factor.to(x.device, x.dtype)[:, None, None, None]
        return self._normalized(x)

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
                f"translate={self.translate}, brightness={self.brightness}, "
                f"horizontal_flip={self.horizontal_flip}, vertical_flip={self.vertical_flip})")
