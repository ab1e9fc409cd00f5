"""Datasets and splits. Every item is ``(x, y, index)``: the index is the item's position in its
dataset, so that anything looked up per sample (cached teacher outputs) stays aligned with
shuffled batches.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from .normalize import as_float, standardizer
from .tables import table_encoder


class ArrayDataset(Dataset):
    """An in-memory dataset of tensors ``x`` (samples first) and integer labels ``y``.

    The engine batches it by slicing the tensors directly, without a ``DataLoader``.
    """

    def __init__(self, x, y, name: str = "data"):
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.y = _integer_labels(y, name)
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"{name}: x has {self.x.shape[0]} samples but y has {self.y.shape[0]}; they must match"
            )
        if self.y.ndim != 1:
            raise ValueError(f"{name}: y must be a 1-d vector of class indices, got shape {tuple(self.y.shape)}")
        bad = ~torch.isfinite(self.x).reshape(len(self.x), -1).all(dim=1) if len(self.x) else self.y.bool()
        if bad.any():
            rows = bad.nonzero().flatten()[:5].tolist()
            raise ValueError(f"{name}: x holds NaN or inf in {int(bad.sum())} sample(s), first at rows {rows}")
        self.name = name

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], i


@dataclass
class Splits:
    """Train, validation and test datasets over the same classes.

    ``val`` may be ``None`` (no early stopping then); ``test`` may be ``None`` for training only.
    ``augment``, when given, maps a batch of training inputs to an augmented batch; the engine
    applies it to training batches only, never to validation or test.
    ``unlabeled`` holds inputs without labels (a transfer set): distilled students train on the
    train split and them together, label terms seeing only the labelled samples; anything
    trained without a teacher ignores them. ``views``, when given, turns a training set into
    fixed views per sample (:class:`~kdistill.data.views.ViewDataset`): ``views(dataset, labeled)``.
    :meth:`training` gives the training set of either kind of model.
    """

    train: Dataset
    val: Dataset | None
    test: Dataset | None
    classes: list[str]
    name: str = "data"
    info: dict = field(default_factory=dict)
    augment: Callable | None = None
    unlabeled: Dataset | None = None
    views: Callable | None = None
    _training: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0][0].shape)

    def training(self, distilled: bool = False, views: bool = True) -> Dataset:
        """The training set of a model: the train split (with ``unlabeled`` after it for a
        distilled one), as fixed views when the splits have ``views`` (unless ``views=False``).
        Built once and reused, so every student of a study reads the same cached teacher outputs."""
        key = (distilled and self.unlabeled is not None, views and self.views is not None)
        if key not in self._training:
            base = combine(self.train, self.unlabeled) if key[0] else self.train
            self._training[key] = self.views(base, len(self.train)) if key[1] else base
        return self._training[key]

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"{self.name!r} has {self.num_classes} class(es) {self.classes}; a classifier needs at "
                             f"least 2 classes")
        labels = {}
        for split in ("train", "val", "test"):
            ds = getattr(self, split)
            if ds is None:
                if split == "train":
                    raise ValueError("the train split is required, got None")
                continue
            if len(ds) == 0:
                raise ValueError(f"the {split} split of {self.name!r} is empty; every split needs at least one sample")
            labels[split] = ds.y if isinstance(ds, ArrayDataset) else _checked_labels(ds, f"{self.name}.{split}")
            check_labels(labels[split], self.num_classes, f"{self.name}.{split}")
        if self.unlabeled is not None:
            _check_unlabeled(self.unlabeled, self.input_shape, self.name)
        present = torch.unique(labels["train"])
        if len(present) < 2:
            raise ValueError(f"the train split of {self.name!r} holds only class {self.classes[int(present[0])]!r} "
                             f"(classes: {self.classes}); training needs samples of at least 2 classes: check the "
                             f"labels, the target column or the class folders")


def unlabeled_set(x, name: str = "unlabeled") -> ArrayDataset:
    """Inputs without labels as a dataset: every label is -1."""
    return ArrayDataset(x, torch.full((len(x),), -1, dtype=torch.long), name=name)


def combine(train: Dataset, unlabeled: Dataset) -> Dataset:
    """``train`` followed by ``unlabeled`` as one dataset (indices ``0..len(train)-1`` labelled,
    then the unlabelled ones, whose labels are -1); ``labeled`` says where the labels end."""
    if isinstance(train, ArrayDataset) and isinstance(unlabeled, ArrayDataset):
        both = ArrayDataset(torch.cat([train.x, unlabeled.x]),
                            torch.cat([train.y, torch.full((len(unlabeled),), -1, dtype=torch.long)]),
                            name=f"{train.name}+{unlabeled.name}")
    else:
        both = _Concat(train, unlabeled)
    both.labeled = len(train)
    return both


class _Concat(Dataset):
    def __init__(self, train: Dataset, unlabeled: Dataset):
        self.train, self.unlabeled = train, unlabeled

    def __len__(self) -> int:
        return len(self.train) + len(self.unlabeled)

    def __getitem__(self, i):
        if i < len(self.train):
            return self.train[i]
        return self.unlabeled[i - len(self.train)][0], -1, i


def _check_unlabeled(ds: Dataset, shape: tuple, name: str) -> None:
    if len(ds) == 0:
        raise ValueError(f"the unlabeled data of {name!r} is empty; give inputs, or leave it out")
    found = tuple(ds[0][0].shape)
    if found != shape:
        raise ValueError(f"the unlabeled inputs of {name!r} have shape {found} but the labelled ones {shape}; they "
                         f"must be read the same way (size, color, features)")


def _checked_labels(ds: Dataset, where: str) -> torch.Tensor:
    """The labels of a dataset, after checking that its items are ``(x, y, index)`` and that the
    indices are ``0..n-1``, each once: anything looked up by index (cached teacher outputs)
    would otherwise be misaligned."""
    labels, indices = [], []
    for i in range(len(ds)):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ValueError(f"{where}: item {i} is a {type(item).__name__}, not an (x, y, index) triple; every "
                             f"item must carry its dataset index")
        labels.append(int(item[1]))
        indices.append(int(item[2]))
    values, counts = np.unique(indices, return_counts=True)
    if len(values) != len(ds) or values[0] != 0 or values[-1] != len(ds) - 1:
        repeated = values[counts > 1][:5].tolist()
        detail = (f"index {repeated[0]} appears {int(counts[counts > 1][0])} times (repeated: {repeated})" if repeated
                  else f"they run from {int(values[0])} to {int(values[-1])}")
        raise ValueError(f"{where}: item indices must be 0..{len(ds) - 1}, each exactly once, but {detail}; give "
                         f"item i the index i (cached teacher outputs are looked up by index)")
    return torch.as_tensor(labels)


def _integer_labels(y, name: str) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if y.is_floating_point():
        bad = (~torch.isfinite(y) | (y != torch.round(y))).nonzero().flatten()
        if len(bad):
            rows = bad[:5].tolist()
            raise ValueError(f"{name}: labels must be whole class indices, but {len(bad)} are not (first "
                             f"{y[bad[0]].item()!r} at row {rows[0]}; rows {rows}); encode classes as 0..K-1")
    return y.to(torch.long)


def check_labels(y: torch.Tensor, num_classes: int, where: str) -> None:
    """Raise if any label in ``y`` lies outside ``[0, num_classes)``."""
    if len(y) == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{where}: labels must lie in [0, {num_classes - 1}] for {num_classes} classes, "
            f"found values from {lo} to {hi}"
        )


def _check_fraction(name: str, value: float, low_open: bool = True) -> float:
    v = float(value)
    if not (0.0 < v <= 1.0 if low_open else 0.0 <= v < 1.0):
        allowed = "(0, 1]" if low_open else "[0, 1)"
        raise ValueError(f"{name} must lie in {allowed}, got {value!r}")
    return v


def split_arrays(x, y, classes, *, name="data", seed=0, val_size=0.15, test_size=0.2,
                 train_fraction=1.0, standardize=False, unlabeled=None, unlabeled_rest=False) -> Splits:
    """Stratified, seeded train/val/test split of in-memory arrays.

    Parameters
    ----------
    x : array-like
        Inputs, one sample per row (any shape after the first axis).
    y : array-like
        Class indices, or the class names of ``classes`` (mapped to their index).
    classes : sequence of str
        The class names, in the order of the model's outputs.
    name : str
        The data's name in messages and reports.
    seed : int
        Seed of the splits.
    val_size, test_size : float
        Shares of the whole set held out for validation and test.
    train_fraction : float in (0, 1]
        Stratified share of the train split to keep (scarce labels); validation and test stay
        whole so that scores remain comparable.
    standardize : bool
        Scale features with the train split's mean and standard deviation (tabular data).
    unlabeled : array-like, optional
        Inputs without labels, for distillation.
    unlabeled_rest : bool
        Keep the training inputs that ``train_fraction`` drops, as unlabelled inputs.

    Returns
    -------
    Splits
    """
    return split_parts({"all": (x, label_indices(y, classes))}, classes, name=name, seed=seed, val_size=val_size,
                       test_size=test_size, train_fraction=train_fraction,
                       prepare=standardizer if standardize else None,
                       unlabeled=unlabeled, unlabeled_rest=unlabeled_rest)


def split_parts(parts: dict, classes, *, name="data", seed=0, val_size=0.15, test_size=0.2, train_fraction=1.0,
                prepare: Callable | None = None, info: dict | None = None, unlabeled=None,
                unlabeled_rest: bool = False) -> Splits:
    """Seeded, stratified splits from ``{"all": (x, y)}`` or ``{"train": (x, y)[, "val": ...][, "test": ...]}``.

    A missing validation or test part is carved out of ``train`` (``val_size`` and ``test_size``
    are then shares of ``train``; of the whole with ``"all"``). ``x`` is an array or a pandas
    ``DataFrame`` (encoded by :func:`~kdistill.data.tables.table_encoder` unless ``prepare`` is
    given). ``prepare(x_train)`` returns a function applied to every split's ``x``, fitted
    on the train split alone (standardization, normalization, encoders); a ``layout`` attribute of
    that function (where each table column lies in the features) is kept in ``info["layout"]``. ``unlabeled`` holds
    inputs without labels; with ``unlabeled_rest`` the training samples that ``train_fraction``
    drops join them (their labels are dropped), so a scarce-label split keeps its inputs.
    """
    val_size = _check_fraction("val_size", val_size, low_open=False)
    test_size = _check_fraction("test_size", test_size, low_open=False)
    train_fraction = _check_fraction("train_fraction", train_fraction)
    unknown = sorted(set(parts) - {"all", "train", "val", "test"})
    if unknown or ("all" in parts) == ("train" in parts):
        raise ValueError(f"parts must be {{'all': ...}} or {{'train': ...[, 'val'][, 'test']}}, "
                         f"got keys {sorted(parts)}")
    _check_lengths(parts, name)
    source = parts.get("all", parts.get("train"))
    x, y = source[0], np.asarray(source[1])
    idx = np.arange(len(y))
    given = {k: (parts[k][0], np.asarray(parts[k][1])) for k in ("val", "test") if k in parts}
    if "all" in parts and val_size + test_size >= 1.0:
        raise ValueError(f"val_size + test_size must be < 1, got {val_size} + {test_size}")
    test_share = 0.0 if "test" in given else test_size
    rest, test_idx = (_split(idx, y, test_share, seed, classes, f"test split of {name!r}") if test_share
                      else (idx, idx[:0]))
    val_share = 0.0 if "val" in given else val_size / (1 - test_share)
    train_idx, val_idx = (_split(rest, y, val_share, seed + 1, classes, f"validation split of {name!r}") if val_share
                          else (rest, rest[:0]))
    dropped = train_idx[:0]
    if train_fraction < 1.0:
        keep = max(len(classes), int(round(train_fraction * len(train_idx))))
        if keep < len(train_idx):
            train_idx, dropped = train_test_split(train_idx, train_size=keep, stratify=y[train_idx],
                                                  random_state=seed + 2)
    chosen = {"train": (_take(x, train_idx), y[train_idx]), "val": (_take(x, val_idx), y[val_idx]),
              "test": (_take(x, test_idx), y[test_idx]), **given}
    if prepare is None and hasattr(x, "iloc"):
        prepare = table_encoder()  # a DataFrame: numeric, categorical and missing values encoded
    transform = prepare(chosen["train"][0]) if prepare is not None else as_float
    sets = {part: ArrayDataset(transform(px), py, name=f"{name}.{part}") if len(py) else None
            for part, (px, py) in chosen.items()}
    pool = [transform(u) for u in ([_take(x, dropped)] if unlabeled_rest and len(dropped) else [])
            + ([unlabeled] if unlabeled is not None else [])]
    extra = unlabeled_set(np.concatenate(pool), f"{name}.unlabeled") if pool else None
    sizes = [len(chosen[p][1]) for p in ("train", "val", "test")]
    return Splits(sets["train"], sets["val"], sets["test"], list(classes), name=name, unlabeled=extra,
                  info={**(info or {}), **({"layout": transform.layout} if hasattr(transform, "layout") else {}),
                        "seed": seed, "train_fraction": train_fraction, "sizes": sizes,
                        "unlabeled": len(extra) if extra is not None else 0})


def _check_lengths(parts: dict, name: str) -> None:
    """One label per sample in every part: slicing by index would otherwise drop rows silently."""
    for part, (x, y) in parts.items():
        if len(x) != len(y):
            raise ValueError(f"{name}: x has {len(x)} samples but y has {len(y)} labels (part {part!r}); they "
                             f"must match, one label per sample")


def _take(x, idx):
    return x.iloc[idx] if hasattr(x, "iloc") else np.asarray(x)[idx]


def _split(idx, y, size, seed, classes, what: str):
    try:
        return train_test_split(idx, test_size=size, stratify=y[idx], random_state=seed)
    except ValueError as exc:
        values, counts = np.unique(y[idx], return_counts=True)
        few = [f"{classes[int(v)]!r} ({int(c)})" if 0 <= int(v) < len(classes) else f"{v!r} ({int(c)})"
               for v, c in zip(values, counts) if c < 2]
        if few:
            raise ValueError(f"cannot carve a stratified {what}: class(es) {', '.join(few)} have fewer than 2 "
                             f"samples (counts in brackets) where every class needs at least 2 (3 when both "
                             f"validation and test are carved out); add samples or remove the class") from exc
        raise ValueError(f"cannot carve a stratified {what} ({size:.3g} of {len(idx)} samples over "
                         f"{len(values)} classes): {exc}") from exc


def label_indices(y, classes, what: str = "y") -> np.ndarray:
    """Labels as class indices: integers in ``range(len(classes))`` as they are, or the class
    names themselves (strings or other values found in ``classes``) mapped to their index."""
    y = np.asarray(y)
    if y.dtype.kind in "iu" or y.size == 0:
        return y
    if y.dtype.kind == "b":
        raise TypeError(f"{what} holds booleans; give class indices (0..{len(classes) - 1}) or class names")
    if y.dtype.kind == "O" and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in y.flat):
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    index = {str(c): i for i, c in enumerate(classes)}
    values = y.astype(str)
    unknown = sorted(set(values.tolist()) - set(index))
    if unknown:
        raise ValueError(f"{what} holds label(s) {unknown[:5]} that are not among classes {list(classes)[:20]}; "
                         f"give class indices (0..{len(classes) - 1}) or names from classes")
    return np.array([index[v] for v in values.tolist()], dtype=np.int64)
