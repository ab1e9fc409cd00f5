"""Data files: IDX arrays (the MNIST / Fashion-MNIST format) and CSV / Parquet tables.

Tables keep their raw columns until the split is known: :func:`table_encoder` is fitted on the
train split alone (numeric columns imputed and standardized, categorical ones one-hot encoded).
"""

from __future__ import annotations

import difflib
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


def idx_images(images_path, labels_path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 1, H, W)`` scaled to [0, 1] (or ``(N, C, H, W)`` as stored) and labels from IDX files.
    ``limit`` keeps the first ``limit`` samples."""
    x, y = read_idx(images_path), read_idx(labels_path)
    if len(x) != len(y):
        raise ValueError(f"{images_path} holds {len(x)} images but {labels_path} holds {len(y)} labels")
    x, y = x[:limit], y[:limit].astype(np.int64)
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    x = x.astype(np.float32) / scale
    return (x[:, None] if x.ndim == 3 else x), y


def read_table(path, target: str, features=None):
    """Read a CSV or Parquet table; return ``(frame of features, labels, classes)``.

    Labels are the sorted distinct values of ``target`` (as strings); rows without a target are
    an error naming how many there are.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"table {str(path)!r} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".txt", ".gz"):
        frame = pd.read_csv(path)
    else:
        raise ValueError(f"table {str(path)!r}: unknown file type {path.suffix!r}; use .csv or .parquet")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    _check_columns(path, [target], columns, "target")
    features = [c for c in columns if c != target] if features is None else list(features)
    _check_columns(path, features, columns, "features")
    if target in features:
        raise ValueError(f"{path}: the target column {target!r} cannot also be a feature")
    missing = int(frame[target].isna().sum())
    if missing:
        raise ValueError(f"{path}: {missing} row(s) have no value in the target column {target!r}")
    _check_finite(path, frame[features])
    classes, y = np.unique(frame[target].astype(str).to_numpy(), return_inverse=True)
    return frame[features], y, [str(c) for c in classes]


def _check_finite(path, frame) -> None:
    """Infinite numbers are an error naming the column and rows (missing ones are imputed later)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    for column in frame.columns:
        values = frame[column]
        if is_numeric_dtype(values) and not is_bool_dtype(values):
            rows = np.flatnonzero(np.isinf(values.to_numpy(dtype=float))) + 1  # data rows count from 1
            if len(rows):
                raise ValueError(f"{path}: column {column!r} holds {len(rows)} infinite value(s) "
                                 f"({values.iloc[rows[0] - 1]} at data row {rows[0]}; rows {rows[:5].tolist()}); "
                                 f"only finite numbers are allowed (leave a cell empty for a missing value: it "
                                 f"takes the train split's median)")


def _check_columns(path, names, columns, what: str) -> None:
    for name in names:
        if name not in columns:
            hint = difflib.get_close_matches(name, columns, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"{path}: {what} column {name!r} not found{extra}; columns: {', '.join(columns)}")


def table_encoder(categorical=None):
    """A ``prepare`` function for :func:`kdistill.data.split_parts`: fitted on the train frame,
    it returns a function mapping any frame of the same columns to float32 features.

    Categorical columns are ``categorical`` if given, else the non-numeric ones; a category
    unseen in training encodes as all zeros. Missing numbers take the train split's median.
    """
    def prepare(train):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        cats = list(categorical) if categorical is not None else [
            c for c in train.columns if is_bool_dtype(train[c]) or not is_numeric_dtype(train[c])]
        nums = [c for c in train.columns if c not in cats]
        encoder = ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
        ])
        encoder.fit(_as_objects(train, cats))
        return lambda frame: encoder.transform(_as_objects(frame, cats)).astype(np.float32)

    return prepare


def _as_objects(frame, cats):
    """Categorical columns as strings; a missing value becomes the category ``"nan"``."""
    return frame.astype({c: str for c in cats})
