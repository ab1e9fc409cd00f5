"""Image folders read with Pillow: ``root/{train,val,test}/<class>/*`` or ``root/<class>/*``.

Images are resized, converted to grayscale or RGB and scaled once, into memory, by their bit
depth (see :func:`pixels`): never clipped. A file that is not a regular file (a FIFO, a
device, a folder), too large (over Pillow's ``Image.MAX_IMAGE_PIXELS``, the decompression-bomb
limit) or undecodable is skipped, named and counted (or is an error with ``strict=True``); it
is checked before a byte is read, so no kind of file can hang the reader.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..files import regular_file

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("train", "val", "test")
COLORS = ("grayscale", "rgb")


class ImageFolder:
    """All images of a folder, read into ``(N, C, H, W)`` float arrays in [0, 1].

    Parameters
    ----------
    root : path
        Either holds ``train`` (and optionally ``val``, ``test``) folders of class folders, or
        class folders directly (to be split automatically).
    size : (int, int)
        Height and width every image is resized to.
    color : {"grayscale", "rgb"}
        Channels of the arrays (1 or 3).
    strict : bool
        Raise on the first unreadable image instead of skipping it.
    extensions : sequence of str
        File suffixes taken as images (case-insensitive); other files are ignored.

    Attributes
    ----------
    parts : dict
        ``{"train": (x, y), ...}`` for a split layout, or ``{"all": (x, y)}``.
    classes : list of str
        Sorted class folder names.
    skipped : list of str
        Files that could not be read.
    problems : dict
        Why each skipped file could not be read.
    """

    def __init__(self, root, size=(64, 64), color: str = "grayscale", strict: bool = False,
                 extensions=EXTENSIONS):
        self._configure(root, size, color, strict, extensions)
        layout = {s: self.root / s for s in SPLITS if (self.root / s).is_dir()}
        if layout and "train" not in layout:
            raise ValueError(f"{self.root} has {sorted(layout)} folders but no 'train' folder; "
                             f"give root/train/<class>/ (val and test optional) or root/<class>/")
        folders = layout or {"all": self.root}
        self.classes = _class_names(folders.get("train", self.root))
        self.parts = {part: self._read(folder) for part, folder in folders.items()}
        self._check_every_class(folders.get("train", self.root), self.parts.get("train", self.parts.get("all")))

    def _configure(self, root, size, color: str, strict: bool, extensions) -> None:
        from PIL import Image  # noqa: F401  (fail early with a clear message if Pillow is missing)

        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        if color not in COLORS:
            raise ValueError(f"color must be one of {', '.join(COLORS)}, got {color!r}")
        self.size, self.color, self.strict = (int(size[0]), int(size[1])), color, strict
        self.extensions = tuple(e.lower() for e in extensions)
        self.problems: dict[str, str] = {}

    def _check_every_class(self, folder: Path, part) -> None:
        """Every class folder of the training images must give at least one readable image."""
        counts = np.bincount(part[1], minlength=len(self.classes))
        empty = [self.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            skipped = [s for s in self.skipped if Path(s).parent.name in empty]
            raise ValueError(f"class folder(s) {[str(folder / c) for c in empty]} hold no readable "
                             f"{'/'.join(self.extensions)} image ({len(skipped)} unreadable file(s) skipped); every "
                             f"class needs training images: add some, or remove the folder")

    def _read(self, folder: Path):
        unknown = sorted(set(_class_names(folder)) - set(self.classes))
        if unknown:
            raise ValueError(f"{folder} has class folder(s) {unknown} that the train folder lacks; "
                             f"classes are {self.classes}")
        images, labels = [], []
        for label, name in enumerate(self.classes):
            for path in sorted((folder / name).glob("*")) if (folder / name).is_dir() else []:
                if path.suffix.lower() not in self.extensions:
                    continue
                image = self._load(path)
                if image is not None:
                    images.append(image)
                    labels.append(label)
        if not images:
            raise ValueError(f"no readable {'/'.join(self.extensions)} image under {folder}")
        return np.stack(images), np.asarray(labels)

    def _load(self, path: Path):
        from PIL import Image

        try:
            with regular_file(path, "image") as fh, warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)  # refused, not decoded
                with Image.open(fh) as img:
                    arr = pixels(img, self.color, self.size)
        except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds for a damaged file
            too_large = isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning))
            reason = f"too large ({exc})" if too_large else str(exc) or type(exc).__name__
            if self.strict:
                raise ValueError(f"cannot read image {path}: {reason} (strict: true; set strict: false to skip "
                                 f"unreadable images)") from exc
            self.problems[str(path)] = reason
            return None
        return arr[None] if arr.ndim == 2 else np.transpose(arr, (2, 0, 1))

    @property
    def skipped(self) -> list[str]:
        """The files skipped as unreadable, in the order met (the keys of ``problems``)."""
        return list(self.problems)

    def summary(self) -> dict:
        """Skipped (unreadable) files: their number and the first 20 paths."""
        return {"skipped": len(self.skipped), "skipped_files": self.skipped[:20]}


# Full scale of the modes holding more than 8 bits per channel; float images ("F") are kept as they are.
HIGH_DEPTH = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}


def pixels(img, color: str, size) -> np.ndarray:
    """An image's pixels as float32 ``(H, W)`` (grayscale) or ``(H, W, 3)`` (rgb), resized to
    ``size`` (height, width) and scaled by bit depth, never clipped:

    - 8 bits per channel (``L``, ``RGB``, ``P``, ``RGBA``, ``LA``, ``CMYK``, ...): divided by 255;
      a palette is applied and alpha is dropped (not composited); ``1`` (bilevel) gives 0 or 1;
    - 16-bit (``I;16*``): divided by 65535;
    - 32-bit integers (``I``): divided by 65535 when every value lies in 0..65535 (16-bit data,
      as many writers store it), else by 2**31 - 1;
    - 32-bit floats (``F``): kept as they are (floats carry their own scale).

    A high-depth image asked for as rgb repeats its one channel three times.
    """
    from PIL import Image

    width_height = (int(size[1]), int(size[0]))
    if img.mode not in HIGH_DEPTH:
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # the palette's transparency would otherwise be lost with a warning
        img = img.convert("L" if color == "grayscale" else "RGB").resize(width_height, Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.float32) / 255.0
    values = np.asarray(img).astype(np.float64)
    scale = HIGH_DEPTH[img.mode]
    if img.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        scale = 2.0**31 - 1
    resized = Image.fromarray((values / scale).astype(np.float32), "F").resize(width_height,
                                                                                Image.Resampling.BILINEAR)
    arr = np.asarray(resized, dtype=np.float32)
    return arr if color == "grayscale" else np.repeat(arr[..., None], 3, axis=2)


def _class_names(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ValueError(f"{folder} holds no class folders; expected {folder}/<class>/<image files>")
    return names


class UnlabeledImages(ImageFolder):
    """Every image in a folder and the folders below it, without labels (a transfer set), read
    like :class:`ImageFolder` reads its images; ``x`` holds them as ``(N, C, H, W)``."""

    def __init__(self, root, size=(64, 64), color: str = "grayscale", strict: bool = False,
                 extensions=EXTENSIONS):
        self._configure(root, size, color, strict, extensions)
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in self.extensions)
        images = [image for image in map(self._load, paths) if image is not None]
        if not images:
            raise ValueError(f"no readable {'/'.join(self.extensions)} image under {self.root} "
                             f"({len(self.skipped)} unreadable file(s) skipped)")
        self.x = np.stack(images)
