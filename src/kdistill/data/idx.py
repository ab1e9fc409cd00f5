"""IDX arrays: the MNIST / Fashion-MNIST file format, gzip-compressed or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array.

    The header is two zero bytes, a type code, the number of dimensions, then one big-endian
    32-bit size per dimension; the data follows in row-major order.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file {str(path)!r} does not exist")
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}); expected 0000 then a "
                         f"type code in {sorted(hex(k) for k in _IDX_TYPES)}")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path}: header says shape {dims} ({expected} bytes) but the file holds {len(body)} bytes")
    return np.frombuffer(body, dtype).reshape(dims)


def idx_inputs(path, limit: int | None = None) -> np.ndarray:
    """Images of an IDX file as ``(N, 1, H, W)`` (or ``(N, C, H, W)`` as stored) float32, bytes
    scaled to [0, 1]; ``limit`` keeps the first ``limit``."""
    x = read_idx(path)[:limit]
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = x.astype(np.float32) / scale
    return x[:, None] if x.ndim == 3 else x


def idx_images(images_path, labels_path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (see :func:`idx_inputs`) and labels from IDX files; ``limit`` keeps the first ``limit`` samples."""
    y = read_idx(labels_path)
    x = idx_inputs(images_path)
    if len(x) != len(y):
        raise ValueError(f"{images_path} holds {len(x)} images but {labels_path} holds {len(y)} labels")
    return x[:limit], y[:limit].astype(np.int64)
