"""The ``data`` section of an experiment file: one source, splits, unlabelled inputs, augmentation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .section import Section


class AugmentConfig(Section):
    """Augmentation of training images (see :class:`kdistill.data.Augment`): random per batch, or
    ``views`` fixed views per sample (with ``mixup``/``cutmix``, see :mod:`kdistill.data.views`)."""

    rotation: float = Field(0.0, ge=0.0, le=180.0)
    """Largest rotation, in degrees (0 to 180)."""
    shear: float = Field(0.0, ge=0.0, lt=60.0)
    """Largest shear, in degrees (below 60)."""
    zoom: float = Field(0.0, ge=0.0, lt=1.0)
    """Scale drawn in [1 - zoom, 1 + zoom]."""
    translate: float = Field(0.0, ge=0.0, lt=1.0)
    """Largest shift, as a share of width and height."""
    brightness: list[float] | None = None
    """[low, high]: a brightness multiplier drawn in that range."""
    horizontal_flip: bool = False
    """Flip left-right with probability 0.5."""
    vertical_flip: bool = False
    """Flip upside down with probability 0.5."""
    views: int | None = Field(None, ge=1)
    """K: K fixed, seeded views per sample instead of random ones per batch (the teacher's outputs are cached per
    view)."""
    mixup: float | None = Field(None, gt=0.0)
    """alpha: each view mixes a fixed partner with a weight drawn from Beta(alpha, alpha) (needs views)."""
    cutmix: float | None = Field(None, gt=0.0)
    """alpha: each view pastes a box of a fixed partner, its area drawn from Beta(alpha, alpha) (needs views)."""

    @model_validator(mode="after")
    def _mixing(self):
        if self.mixup is not None and self.cutmix is not None:
            raise ValueError("give mixup or cutmix, not both: a view mixes one partner sample")
        if (self.mixup is not None or self.cutmix is not None) and self.views is None:
            raise ValueError("mixup and cutmix mix a fixed partner per view: set views: K too")
        return self

    @field_validator("brightness")
    @classmethod
    def _range(cls, v):
        if v is not None and (len(v) != 2 or not 0 < v[0] <= v[1]):
            raise ValueError(f"must be [low, high] with 0 < low <= high, got {v}")
        return v


class BuiltinData(Section):
    name: Literal["digits", "iris", "wine", "breast_cancer"]
    """A dataset scikit-learn ships (nothing is downloaded)."""


class ImageData(Section):
    path: str
    """root/{train,val,test}/<class>/* or root/<class>/* (then split automatically)."""
    size: list[int] = [64, 64]
    """[height, width] every image is resized to."""
    color: Literal["grayscale", "rgb"] = "grayscale"
    """grayscale: one channel (colour converted with Pillow's luma weights); rgb: three (grayscale repeated)."""
    normalize: Literal["none", "dataset", "fixed"] = "dataset"
    """none; dataset: the train split's mean and standard deviation; fixed: the given mean and std."""
    mean: list[float] | None = None
    """Per channel, with normalize: fixed."""
    std: list[float] | None = None
    """Per channel (> 0), with normalize: fixed."""
    strict: bool = False
    """true: an unreadable image is an error; false: it is skipped, named and counted."""
    extensions: list[str] = [".png", ".jpg", ".jpeg", ".bmp"]
    """File name endings read as images."""

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        if len(v) != 2 or min(v) < 1:
            raise ValueError(f"must be [height, width] of positive integers, got {v}")
        return v

    @model_validator(mode="after")
    def _fixed(self):
        channels = 1 if self.color == "grayscale" else 3
        if self.normalize == "fixed":
            for key in ("mean", "std"):
                v = getattr(self, key)
                if v is None or len(v) != channels or (key == "std" and min(v) <= 0):
                    raise ValueError(f"normalize: fixed needs {key} as a list of {channels} number(s)"
                                     f"{' > 0' if key == 'std' else ''} for color {self.color}, got {v}")
        return self


class IdxData(Section):
    train_images: str
    """An IDX file of training images (MNIST format, .gz or not)."""
    train_labels: str
    """The IDX file of their labels."""
    test_images: str | None = None
    """An IDX file of test images (else the test split is carved from train)."""
    test_labels: str | None = None
    """The IDX file of their labels."""
    classes: list[str] | None = None
    """Names of the labels 0..K-1."""
    max_train: int | None = Field(None, ge=1)
    """Keep only the first N training samples."""
    max_test: int | None = Field(None, ge=1)
    """Keep only the first N test samples."""

    @model_validator(mode="after")
    def _pairs(self):
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("give both test_images and test_labels, or neither (the test split is then carved "
                             "from train)")
        return self


class TableData(Section):
    path: str
    """A .csv or .parquet file (parquet needs `pip install kdistill[parquet]`)."""
    target: str
    """The label column."""
    features: list[str] | None = None
    """The feature columns (default: every other column)."""
    categorical: list[str] | None = None
    """Columns one-hot encoded, fitted on train (default: the non-numeric columns)."""
    categoricals: Literal["native", "onehot"] = "native"
    """How boosted trees (LightGBM, XGBoost and CatBoost classifiers) take the categorical columns: native (one
    integer code column each, split by the library's own categorical support; a category unseen in training is
    missing; CatBoost's ONNX file is then not written) or onehot (the one-hot columns every other model gets)."""


SOURCES = ("builtin", "images", "idx", "table")


class UnlabeledData(Section):
    """Inputs without labels, read like the labelled source: exactly one of a folder of images
    (any folders below it), an IDX file of images, or a table with the same feature columns."""

    images: str | None = None
    """A folder of images (any folders below it), read at the labelled images' size."""
    idx: str | None = None
    """An IDX file of images."""
    table: str | None = None
    """A table with the labelled table's feature columns (other columns are ignored)."""

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("images", "idx", "table") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of images, idx, table; got {', '.join(given) or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("images", "idx", "table") if getattr(self, k) is not None)


class SyntheticConfig(Section):
    """Synthetic transfer rows for a table (:mod:`kdistill.data.synthetic`): ``size`` rows per
    training row, made by ``kind``, labelled by the teacher for the distilled students."""

    kind: Literal["munge", "gibbs", "gaussian"]
    """munge (Buciluǎ et al., 2006), gibbs (per-column conditionals, Fakoor et al., 2020) or gaussian (jittered
    copies)."""
    size: float = Field(10.0, gt=0.0, le=200.0)
    """Synthetic rows per labelled training row (up to 200)."""
    p: float | None = Field(None, gt=0.0, le=1.0)
    """munge, gibbs: the share of columns a synthetic row changes."""


class DataConfig(Section):
    """Exactly one source, plus split sizes, augmentation (images) and synthetic rows (tables:
    ``synthetic: auto`` is the measured default, ``synthetic: null`` none)."""

    builtin: BuiltinData | None = None
    """A built-in dataset (exactly one source: builtin, images, idx or table)."""
    images: ImageData | None = None
    """A folder of images, one subfolder per class."""
    idx: IdxData | None = None
    """MNIST-format IDX files."""
    table: TableData | None = None
    """A CSV or Parquet table."""
    val_size: float = Field(0.15, ge=0.0, lt=1.0)
    """Share of the whole set held out for validation (of train when the source has a test split)."""
    test_size: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of the whole set held out for test (ignored when the source has its own test split)."""
    train_fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Keep a stratified share of the training labels (scarce labels)."""
    augment: AugmentConfig | None = None
    """Augmentation of training images (image sources only)."""
    unlabeled: UnlabeledData | None = None
    """Inputs without labels that distilled students also train on (the teacher labels them softly)."""
    unlabeled_rest: bool = False
    """true: the training samples that train_fraction drops stay, as unlabelled inputs."""
    synthetic: SyntheticConfig | Literal["auto"] | None = "auto"
    """Tables only: synthetic transfer rows the teacher labels. auto (the measured default: MUNGE, 30 per training
    row), null (none) or {kind, size, p}."""

    @model_validator(mode="after")
    def _one_source(self):
        given = [s for s in SOURCES if getattr(self, s) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one data source out of {', '.join(SOURCES)}; got "
                             f"{', '.join(given) or 'none'}")
        if isinstance(self.synthetic, SyntheticConfig) and given[0] != "table":
            raise ValueError(f"synthetic rows are made for tables; a {given[0]} source cannot have them (use "
                             f"augment for images)")
        if self.augment is not None and given[0] == "table":
            raise ValueError("augment applies to images; a table source cannot be augmented")
        if self.unlabeled is not None and (self.unlabeled.kind == "table") != (given[0] == "table"):
            raise ValueError(f"unlabeled {self.unlabeled.kind} data cannot join a {given[0]} source: images and "
                             f"idx go with image sources, a table with a table")
        if self.unlabeled_rest and self.train_fraction == 1.0:
            raise ValueError("unlabeled_rest keeps the training samples that train_fraction drops, but "
                             "train_fraction is 1.0 (nothing is dropped); set train_fraction < 1")
        return self

    @property
    def source(self) -> str:
        return next(s for s in SOURCES if getattr(self, s) is not None)
