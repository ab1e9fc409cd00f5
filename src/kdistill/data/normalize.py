"""Input scaling fitted on the train split alone: standardized table features, and per-channel
image normalization (given mean/std, or the train split's)."""

from __future__ import annotations

import numpy as np


def as_float(x):
    return np.asarray(x, dtype=np.float32)


def standardizer(x_train):
    """A ``prepare`` function: fitted on the train split's features, it standardizes any split's."""
    x_train = as_float(x_train)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return lambda x: ((as_float(x) - mean) / std).astype(np.float32)




class Normalize:
    """A ``prepare`` function for images ``(N, C, H, W)``: per-channel normalization with the
    given ``mean``/``std``, or the train split's when ``None``. ``fitted`` holds the statistics
    used (for un-normalizing, e.g. before augmentation or display)."""

    def __init__(self, mean=None, std=None):
        self.mean, self.std = mean, std
        self.fitted = None

    def __call__(self, x_train):
        x_train = np.asarray(x_train, np.float32)
        mean = np.asarray(self.mean if self.mean is not None else x_train.mean(axis=(0, 2, 3)), np.float32)
        std = np.asarray(self.std if self.std is not None else x_train.std(axis=(0, 2, 3)), np.float32)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        self.fitted = (mean.tolist(), std.tolist())
        return lambda x: ((np.asarray(x, np.float32) - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
