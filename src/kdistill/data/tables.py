"""CSV and Parquet tables.

Tables keep their raw columns until the split is known: :func:`table_encoder` is fitted on the
train split alone (numeric columns imputed and standardized, categorical ones one-hot encoded).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np


def read_table(path, target: str, features=None):
    """Read a CSV or Parquet table; return ``(frame of features, labels, classes)``.

    Labels are the sorted distinct values of ``target`` (as strings); rows without a target are
    an error naming how many there are.
    """
    path, frame = _frame(path)
    columns = list(frame.columns)
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


def read_inputs(path, features: list[str]):
    """The ``features`` columns of a table without labels (a transfer set); any other column,
    a target included, is ignored."""
    path, frame = _frame(path)
    _check_columns(path, features, list(frame.columns), "features")
    _check_finite(path, frame[features])
    return frame[features]


def _frame(path):
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
    frame.columns = [str(c) for c in frame.columns]
    return path, frame


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
        from pandas.api.types import is_bool_dtype, is_numeric_dtype
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

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
