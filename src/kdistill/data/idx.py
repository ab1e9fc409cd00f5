"""IDX arrays: the MNIST / Fashion-MNIST file format, gzip-compressed or not."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..files import regular_file

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_BLOCK = 1 << 24  # bytes read at a time: a file is never read past what its header announces


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array.

    The header is two zero bytes, a type code, the number of dimensions, then one big-endian
    32-bit size per dimension; the data follows in row-major order. A file that is not a
    regular file, truncated, corrupt, or longer than its header says is an error naming it.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"IDX file {str(path)!r} does not exist")
    try:
        with regular_file(path, "IDX file") as raw, (gzip.open(raw) if path.suffix == ".gz" else raw) as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise ValueError(f"{path} is not an IDX file (bad magic number {head.hex()}); expected 0000 then a "
                                 f"type code in {sorted(hex(k) for k in _IDX_TYPES)}")
            sizes = fh.read(4 * head[3])
            dims = tuple(int(d) for d in np.frombuffer(sizes, ">u4", count=len(sizes) // 4))
            dtype = np.dtype(_IDX_TYPES[head[2]])
            expected = math.prod(dims) * dtype.itemsize
            body = _read(fh, expected + 1) if len(dims) == head[3] else b""
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc or type(exc).__name__} (a truncated or corrupt "
                         f"{'gzip ' if path.suffix == '.gz' else ''}file?)") from exc
    if len(dims) != head[3] or len(body) != expected:
        raise ValueError(f"{path}: header says shape {dims} ({expected} bytes) but the file holds "
                         f"{'more' if len(body) > expected else len(body)} bytes; it is truncated or corrupt")
    return np.frombuffer(body, dtype).reshape(dims)


def _read(fh, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``fh``, read in blocks (memory grows only with the data found)."""
    blocks, size = [], 0
    while size < limit:
        block = fh.read(min(_BLOCK, limit - size))
        if not block:
            break
        blocks.append(block)
        size += len(block)
    return b"".join(blocks)


def idx_inputs(path, limit: int | None = None) -> np.ndarray:
    """Images of an IDX file as ``(N, 1, H, W)`` (or ``(N, C, H, W)`` as stored) float32;
    ``limit`` keeps the first ``limit``. Pixels are scaled by their type: unsigned bytes by 255,
    other integers by their type's largest value (127, 32767, 2**31 - 1), floats kept as they are."""
    x = read_idx(path)
    if x.ndim not in (3, 4):
        raise ValueError(f"{path}: IDX images must have 3 dimensions (N, H, W) or 4 (N, C, H, W), got shape "
                         f"{x.shape}")
    x = x[:limit]
    scale = float(np.iinfo(x.dtype).max) if x.dtype.kind in "iu" else 1.0
    x = x.astype(np.float32) / scale
    return x[:, None] if x.ndim == 3 else x


def idx_images(images_path, labels_path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (see :func:`idx_inputs`) and labels from IDX files; ``limit`` keeps the first ``limit`` samples."""
    y = read_idx(labels_path)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{labels_path}: IDX labels must be a 1-d array of integers, got {y.dtype} of shape "
                         f"{y.shape}")
    x = idx_inputs(images_path)
    if len(x) != len(y):
        raise ValueError(f"{images_path} holds {len(x)} images but {labels_path} holds {len(y)} labels")
    return x[:limit], y[:limit].astype(np.int64)
