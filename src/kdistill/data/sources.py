"""Data sources: what an experiment file names (built-in, image folder, IDX files, table), read
once into memory as a :class:`Source`, then split per seed by :func:`split_source`.

The same functions serve Python users: ``load_images``, ``load_idx`` and ``load_table`` read
and split in one call, with exactly the normalization and augmentation ``kdistill run`` uses.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .augment import Augment
from .builtin import builtin_arrays
from .idx import idx_images, idx_inputs
from .images import EXTENSIONS, ImageFolder, UnlabeledImages
from .normalize import Normalize, standardizer
from .splits import Splits, split_parts
from .tables import read_inputs, read_table, table_encoder
from .views import ViewDataset

log = logging.getLogger("kdistill")


@dataclass
class Source:
    """A data source read once: its parts (``{"all": (x, y)}`` or ``train``/``val``/``test``),
    classes, how to prepare features fitted on train, and a summary for the run folder
    (``info``: class counts per part and the imbalance, plus what the reader adds)."""

    parts: dict
    classes: list[str]
    name: str
    prepare: Callable | None = None
    info: dict = field(default_factory=dict)
    images: bool = True

    def __post_init__(self):
        if "class_counts" not in self.info:
            self.info.update(class_summary(self.parts, self.classes))


def class_summary(parts: dict, classes: list[str]) -> dict:
    """Class counts per part and the imbalance ratio (largest / smallest class over all parts)."""
    counts = {part: _counts(y, classes) for part, (_, y) in parts.items()}
    total = [sum(c.get(name, 0) for c in counts.values()) for name in classes]
    return {"class_counts": counts, "imbalance": max(total) / min(total) if min(total) else float("inf")}


def _counts(y, classes) -> dict:
    values, counts = np.unique(y, return_counts=True)
    return {classes[int(v)]: int(c) for v, c in zip(values, counts)}


# --------------------------------------------------------------------------------------------
# Readers


def builtin_source(name: str) -> Source:
    """A dataset scikit-learn ships; tables are standardized with the train split's statistics."""
    x, y, classes, is_image = builtin_arrays(name)
    return Source({"all": (x, y)}, classes, name, None if is_image else standardizer, images=is_image)


def image_source(path, *, size=(64, 64), color: str = "grayscale", normalize: str = "dataset", mean=None, std=None,
                 strict: bool = False, extensions=EXTENSIONS) -> Source:
    """An image folder (see :class:`~kdistill.data.images.ImageFolder`), normalized per channel:
    ``normalize`` is ``"none"``, ``"dataset"`` (the train split's mean and std) or ``"fixed"``
    (the given ``mean`` and ``std``)."""
    folder = ImageFolder(path, size=size, color=color, strict=strict, extensions=extensions)
    _warn_skipped(folder, "image(s)")
    norms = {"none": None, "dataset": Normalize(), "fixed": Normalize(mean, std)}
    if normalize not in norms:
        raise ValueError(f"normalize must be one of {', '.join(norms)}, got {normalize!r}")
    return Source(folder.parts, folder.classes, Path(path).name, norms[normalize], folder.summary())


def idx_source(train_images, train_labels, test_images=None, test_labels=None, *, classes=None,
               max_train: int | None = None, max_test: int | None = None) -> Source:
    """IDX image and label files (MNIST format); a test pair is optional (else carved from train)."""
    if (test_images is None) != (test_labels is None):
        raise ValueError("give both test_images and test_labels, or neither (the test split is then carved from train)")
    parts = {"train": idx_images(train_images, train_labels, max_train)}
    if test_images is not None:
        parts["test"] = idx_images(test_images, test_labels, max_test)
    k = int(max(y.max() for _, y in parts.values())) + 1
    classes = list(classes) if classes else [str(i) for i in range(k)]
    if len(classes) < k:
        raise ValueError(f"classes names {len(classes)} classes but the labels go up to {k - 1}")
    return Source(parts, classes, Path(train_images).resolve().parent.name)


def table_source(path, target: str, *, features=None, categorical=None) -> Source:
    """A CSV or Parquet table, or a pandas ``DataFrame``: numeric features imputed and
    standardized, categorical ones one-hot encoded, both fitted on the train split (see
    :func:`~kdistill.data.tables.table_encoder`)."""
    frame, y, classes = read_table(path, target, features)
    name = "table" if hasattr(path, "iloc") else Path(path).stem
    return Source({"all": (frame, y)}, classes, name, table_encoder(categorical),
                  {"columns": list(frame.columns), "rows": len(frame)}, images=False)


def read_source(data, resolve: Callable[[str], Path] = Path) -> Source:
    """Read the source an experiment file's ``data`` section names (once for all seeds) and log
    its class counts and imbalance; ``resolve`` turns the file's paths into real ones."""
    if data.builtin is not None:
        source = builtin_source(data.builtin.name)
    elif data.images is not None:
        cfg = data.images
        source = image_source(resolve(cfg.path), size=cfg.size, color=cfg.color, normalize=cfg.normalize,
                              mean=cfg.mean, std=cfg.std, strict=cfg.strict, extensions=cfg.extensions)
    elif data.idx is not None:
        cfg = data.idx
        test = [resolve(p) if p is not None else None for p in (cfg.test_images, cfg.test_labels)]
        source = idx_source(resolve(cfg.train_images), resolve(cfg.train_labels), *test, classes=cfg.classes,
                            max_train=cfg.max_train, max_test=cfg.max_test)
    else:
        cfg = data.table
        source = table_source(resolve(cfg.path), cfg.target, features=cfg.features, categorical=cfg.categorical)
    for part, counts in source.info["class_counts"].items():
        log.info("%s/%s: %s", source.name, part, ", ".join(f"{c}={n}" for c, n in counts.items()))
    log.info("class imbalance (largest / smallest class): %.2f", source.info["imbalance"])
    return source


def unlabeled_inputs(source: Source, *, images=None, idx=None, table=None, strict: bool = False,
                     extensions=EXTENSIONS):
    """Raw inputs without labels, read to match ``source``: a folder of ``images`` (any folders
    below it) or an ``idx`` file of images, read at the size and channels of the source's images;
    or a ``table`` with the source's feature columns. Give exactly one."""
    given = {k: v for k, v in (("images", images), ("idx", idx), ("table", table)) if v is not None}
    if len(given) != 1:
        raise ValueError(f"give exactly one unlabeled source out of images, idx, table; got "
                         f"{', '.join(given) or 'none'}")
    kind, path = next(iter(given.items()))
    first = next(iter(source.parts.values()))[0]
    if (kind == "table") == source.images:
        raise ValueError(f"unlabeled {kind} data cannot join the {'image' if source.images else 'table'} source "
                         f"{source.name!r}; give {'images or idx' if source.images else 'a table'}")
    if kind == "table":
        return read_inputs(path, list(first.columns))
    channels, height, width = first.shape[1:]
    if kind == "idx":
        x = idx_inputs(path)
        if x.shape[1:] != first.shape[1:]:
            raise ValueError(f"unlabeled IDX images {path} have shape {x.shape[1:]} but the labelled ones "
                             f"{first.shape[1:]}; they must be read the same way")
        return x
    folder = UnlabeledImages(path, size=(height, width), color="grayscale" if channels == 1 else "rgb",
                             strict=strict, extensions=extensions)
    _warn_skipped(folder, "unlabeled image(s)")
    return folder.x


# --------------------------------------------------------------------------------------------
# Splitting


def split_source(source: Source, *, seed: int = 0, val_size: float = 0.15, test_size: float = 0.2,
                 train_fraction: float = 1.0, augment: dict | None = None, unlabeled=None,
                 unlabeled_rest: bool = False) -> Splits:
    """The seeded, stratified splits of ``source``, prepared with statistics of the train split.

    ``augment`` holds :class:`~kdistill.data.augment.Augment` options for image sources (the
    augmentation works in display space, undoing the source's normalization first), plus
    ``views``, ``mixup`` and ``cutmix``. Without ``views`` the augmentation is attached to the
    splits and drawn afresh for every training batch; with ``views: K`` every training sample
    gets K fixed views, seeded by ``seed`` (:class:`~kdistill.data.views.ViewDataset`).
    ``unlabeled`` (raw inputs read like the source's, e.g. by :func:`unlabeled_inputs`) and
    ``unlabeled_rest`` give the splits unlabelled inputs (see
    :func:`~kdistill.data.splits.split_parts`).
    """
    splits = split_parts(source.parts, source.classes, name=source.name, seed=seed, val_size=val_size,
                         test_size=test_size, train_fraction=train_fraction, prepare=source.prepare,
                         info=dict(source.info), unlabeled=unlabeled, unlabeled_rest=unlabeled_rest)
    if isinstance(source.prepare, Normalize):  # to show images as read (report), and to augment them
        mean, std = source.prepare.fitted
        splits.info["normalization"] = {"mean": mean, "std": std}
    if augment is not None:
        options = dict(augment)
        views, mixup, cutmix = (options.pop(k, None) for k in ("views", "mixup", "cutmix"))
        if len(splits.input_shape) != 3:
            raise ValueError(f"data.augment: augmentation needs images (channels, height, width); "
                             f"{source.name!r} gives samples of shape {splits.input_shape}")
        mean, std = source.prepare.fitted if isinstance(source.prepare, Normalize) else (None, None)
        warp = Augment(**options, mean=mean, std=std)
        if views is None:
            if mixup is not None or cutmix is not None:
                raise ValueError("data.augment: mixup and cutmix mix fixed partners per view; set views: K too")
            splits.augment = warp
        else:
            splits.views = functools.partial(_views, views=views, augment=warp, mixup=mixup, cutmix=cutmix, seed=seed)
    return splits


def _views(base, labeled, **options) -> ViewDataset:
    return ViewDataset(base, labeled=labeled, **options)


def load_images(path, *, seed: int = 0, val_size: float = 0.15, test_size: float = 0.2, train_fraction: float = 1.0,
                augment: dict | None = None, **options) -> Splits:
    """Read an image folder and split it, as ``kdistill run`` does with ``data.images``.

    Parameters
    ----------
    path : str or Path
        ``root/{train,val,test}/<class>/*`` or ``root/<class>/*`` (then split here).
    seed : int
        Seed of the stratified splits.
    val_size, test_size : float
        Shares held out for validation and test (of train when the folder has a test split).
    train_fraction : float in (0, 1]
        Stratified share of the train split to keep (scarce labels).
    augment : dict, optional
        Augmentation of training batches (the keys of ``data.augment`` in an experiment file).
    **options
        ``size``, ``color``, ``normalize``, ``mean``, ``std``, ``strict``, ``extensions``, as
        in ``data.images``.

    Returns
    -------
    Splits
    """
    return split_source(image_source(path, **options), seed=seed, val_size=val_size, test_size=test_size,
                        train_fraction=train_fraction, augment=augment)


def load_idx(train_images, train_labels, test_images=None, test_labels=None, *, seed: int = 0,
             val_size: float = 0.15, test_size: float = 0.2, train_fraction: float = 1.0, augment: dict | None = None,
             **options) -> Splits:
    """Read MNIST-format IDX files (``.gz`` or not) and split them, as ``kdistill run`` does with
    ``data.idx``.

    Parameters
    ----------
    train_images, train_labels : str or Path
        The training images and their labels.
    test_images, test_labels : str or Path, optional
        A test split (else it is carved from train).
    seed : int
        Seed of the stratified splits.
    val_size, test_size : float
        Shares held out for validation and test.
    train_fraction : float in (0, 1]
        Stratified share of the train split to keep (scarce labels).
    augment : dict, optional
        Augmentation of training batches (the keys of ``data.augment``).
    **options
        ``classes`` (names of the labels 0..K-1), ``max_train``, ``max_test``.

    Returns
    -------
    Splits
    """
    source = idx_source(train_images, train_labels, test_images, test_labels, **options)
    return split_source(source, seed=seed, val_size=val_size, test_size=test_size, train_fraction=train_fraction,
                        augment=augment)


def load_table(path, target: str, *, seed: int = 0, val_size: float = 0.15, test_size: float = 0.2,
               train_fraction: float = 1.0, **options) -> Splits:
    """Read a table and split it, as ``kdistill run`` does with ``data.table``.

    The encoder is fitted on the train split alone: numbers are imputed (median) and
    standardized, strings and pandas categoricals are one-hot encoded (a category unseen in
    training encodes as all zeros); errors name the file and the column.

    Parameters
    ----------
    path : str, Path or pandas.DataFrame
        A CSV or Parquet file, or a ``DataFrame`` (numeric, categorical and missing values,
        string labels).
    target : str
        The label column.
    seed : int
        Seed of the stratified splits.
    val_size, test_size : float
        Shares of the whole table held out for validation and test.
    train_fraction : float in (0, 1]
        Stratified share of the train split to keep (scarce labels).
    **options
        ``features`` (the feature columns; default every other column) and ``categorical``
        (columns to one-hot encode; default the non-numeric ones).

    Returns
    -------
    Splits
    """
    return split_source(table_source(path, target, **options), seed=seed, val_size=val_size, test_size=test_size,
                        train_fraction=train_fraction)


def _warn_skipped(folder, what: str) -> None:
    """One warning naming the first unreadable files of an image folder and why."""
    if folder.problems:
        log.warning("skipped %d unreadable %s, e.g. %s", len(folder.problems), what,
                    "; ".join(f"{f} ({reason})" for f, reason in list(folder.problems.items())[:3]))
