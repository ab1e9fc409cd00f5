"""The datasets scikit-learn ships (offline): digits as 1x8x8 images, iris, wine and
breast_cancer as tables."""

from __future__ import annotations

import numpy as np
from sklearn import datasets as skdatasets

from .splits import Splits, split_arrays

BUILTIN = ("digits", "iris", "wine", "breast_cancer")


def builtin_arrays(name: str) -> tuple[np.ndarray, np.ndarray, list[str], bool]:
    """``(x, y, classes, is_image)`` of a built-in dataset."""
    if name == "digits":
        bunch = skdatasets.load_digits()
        x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # 1x8x8 images in [0, 1]
        return x, bunch.target, [str(c) for c in bunch.target_names], True
    loader = {"iris": skdatasets.load_iris, "wine": skdatasets.load_wine,
              "breast_cancer": skdatasets.load_breast_cancer}[name]
    bunch = loader()
    return bunch.data.astype(np.float32), bunch.target, [str(c) for c in bunch.target_names], False


def load_dataset(name: str, *, seed: int = 0, train_fraction: float = 1.0, val_size: float = 0.15,
                 test_size: float = 0.2) -> Splits:
    """Load a built-in offline dataset as stratified, seeded splits.

    Parameters
    ----------
    name : {"digits", "iris", "wine", "breast_cancer"}
        ``digits`` gives 1x8x8 images in [0, 1]; the others are tabular, standardized with the
        train split's statistics.
    seed : int
        Seed of the splits.
    train_fraction : float in (0, 1]
        Stratified share of the train split to keep, to simulate scarce labels.
    val_size, test_size : float
        Shares of the whole dataset held out for validation and test.

    Returns
    -------
    Splits
        ``train``, ``val`` and ``test`` datasets of ``(x, y, index)`` items, with ``classes``,
        ``input_shape`` and ``num_classes``.
    """
    if name not in BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; built-in datasets are {', '.join(BUILTIN)}")
    x, y, classes, is_image = builtin_arrays(name)
    return split_arrays(x, y, classes, name=name, seed=seed, val_size=val_size, test_size=test_size,
                        train_fraction=train_fraction, standardize=not is_image)
