"""The ``data`` section of an experiment file: one source, splits, unlabelled inputs, augmentation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .section import Section


class AugmentConfig(Section):
    """Augmentation of training images (see :class:`kdistill.data.Augment`): random per batch, or
    ``views`` fixed views per sample (with ``mixup``/``cutmix``, see :mod:`kdistill.data.views`)."""

    rotation: float = Field(0.0, ge=0.0, le=180.0)
    shear: float = Field(0.0, ge=0.0, lt=60.0)
    zoom: float = Field(0.0, ge=0.0, lt=1.0)
    translate: float = Field(0.0, ge=0.0, lt=1.0)
    brightness: list[float] | None = None
    horizontal_flip: bool = False
    vertical_flip: bool = False
    views: int | None = Field(None, ge=1)
    mixup: float | None = Field(None, gt=0.0)
    cutmix: float | None = Field(None, gt=0.0)

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


class ImageData(Section):
    path: str
    size: list[int] = [64, 64]
    color: Literal["grayscale", "rgb"] = "grayscale"
    normalize: Literal["none", "dataset", "fixed"] = "dataset"
    mean: list[float] | None = None
    std: list[float] | None = None
    strict: bool = False
    extensions: list[str] = [".png", ".jpg", ".jpeg", ".bmp"]

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
    train_labels: str
    test_images: str | None = None
    test_labels: str | None = None
    classes: list[str] | None = None
    max_train: int | None = Field(None, ge=1)
    max_test: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _pairs(self):
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("give both test_images and test_labels, or neither (the test split is then carved "
                             "from train)")
        return self


class TableData(Section):
    path: str
    target: str
    features: list[str] | None = None
    categorical: list[str] | None = None


SOURCES = ("builtin", "images", "idx", "table")


class UnlabeledData(Section):
    """Inputs without labels, read like the labelled source: exactly one of a folder of images
    (any folders below it), an IDX file of images, or a table with the same feature columns."""

    images: str | None = None
    idx: str | None = None
    table: str | None = None

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
    size: float = Field(10.0, gt=0.0, le=200.0)
    p: float | None = Field(None, gt=0.0, le=1.0)  # munge, gibbs: the share of columns a synthetic row changes


class DataConfig(Section):
    """Exactly one source, plus split sizes, augmentation (images) and synthetic rows (tables:
    ``synthetic: auto`` is the measured default, ``synthetic: null`` none)."""

    builtin: BuiltinData | None = None
    images: ImageData | None = None
    idx: IdxData | None = None
    table: TableData | None = None
    val_size: float = Field(0.15, ge=0.0, lt=1.0)
    test_size: float = Field(0.2, ge=0.0, lt=1.0)
    train_fraction: float = Field(1.0, gt=0.0, le=1.0)
    augment: AugmentConfig | None = None
    unlabeled: UnlabeledData | None = None
    unlabeled_rest: bool = False
    synthetic: SyntheticConfig | Literal["auto"] | None = "auto"

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
