"""CSV and Parquet tables.

Tables keep their raw columns until the split is known: :func:`table_encoder` is fitted on the
train split alone (numeric columns imputed and standardized, categorical ones one-hot encoded).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np

from ..files import regular_file

log = logging.getLogger("kdistill")


def read_table(path, target: str, features=None):
    """Read a CSV or Parquet table (or take a pandas ``DataFrame``); return ``(frame of
    features, labels, classes)``.

    Labels are the sorted distinct values of ``target`` (as strings). Errors name the file and
    column: rows without a target, a target with one class, labels that differ only in spaces
    around them (``" pos"`` and ``"pos"``), no feature column, infinite numbers. Labels that
    differ only in case are kept apart with a warning.
    """
    path, frame = _frame(path)
    columns = list(frame.columns)
    _check_columns(path, [target], columns, "target")
    features = [c for c in columns if c != target] if features is None else list(features)
    _check_columns(path, features, columns, "features")
    if target in features:
        raise ValueError(f"{path}: the target column {target!r} cannot also be a feature")
    if not features:
        raise ValueError(f"{path}: no feature columns: the table holds {columns} and {target!r} is the target; add "
                         f"feature columns, or name them in features")
    missing = int(frame[target].isna().sum())
    if missing:
        raise ValueError(f"{path}: {missing} row(s) have no value in the target column {target!r}")
    _check_finite(path, frame[features])
    classes, y = np.unique(frame[target].astype(str).to_numpy(), return_inverse=True)
    _check_classes(path, target, [str(c) for c in classes], np.bincount(y))
    return frame[features], y, [str(c) for c in classes]


def read_inputs(path, features: list[str]):
    """The ``features`` columns of a table without labels (a transfer set); any other column,
    a target included, is ignored."""
    path, frame = _frame(path)
    _check_columns(path, features, list(frame.columns), "features")
    _check_finite(path, frame[features])
    return frame[features]


def _frame(path):
    """The table in ``path`` as a frame; a file the parser cannot read is an error naming it."""
    import pandas as pd

    if isinstance(path, pd.DataFrame):
        frame = path.copy()
        frame.columns = [str(c) for c in frame.columns]
        return "the DataFrame", frame
    path = Path(path)
    if not path.exists():
        raise ValueError(f"table {str(path)!r} does not exist")
    regular_file(path, "table").close()  # a FIFO or device would hang the parser
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt", ".gz"):
        raise ValueError(f"table {str(path)!r}: unknown file type {path.suffix!r}; use .csv or .parquet")
    try:
        frame = pd.read_parquet(path) if suffix in (".parquet", ".pq") else pd.read_csv(path)
    except (ValueError, OSError, EOFError) as exc:  # parser errors, bad encodings, truncated or corrupt files
        raise ValueError(f"cannot read table {path}: {str(exc).strip()[:300] or type(exc).__name__} (a truncated "
                         f"or corrupt file, or not a {'Parquet' if suffix in ('.parquet', '.pq') else 'CSV'} "
                         f"file?)") from exc
    frame.columns = [str(c) for c in frame.columns]
    return path, frame


def _check_classes(path, target: str, classes: list[str], counts) -> None:
    """A classifier needs two classes; labels that differ only in surrounding spaces are one
    class written two ways (an error), labels that differ only in case may be two (a warning)."""
    if len(classes) < 2:
        raise ValueError(f"{path}: the target column {target!r} holds one class ({classes[0]!r}, {counts[0]} "
                         f"row(s)); a classifier needs at least 2: check the column or the file")
    for fold, what in ((str.strip, "only in spaces around them"), (lambda c: c.strip().casefold(), "only in case")):
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(classes):
            groups.setdefault(fold(c), []).append(i)
        same = next((g for g in groups.values() if len(g) > 1), None)
        if same is None:
            continue
        names = " and ".join(f"{classes[i]!r} ({counts[i]} rows)" for i in same)
        message = f"{path}: column {target!r} has labels that differ {what}: {names}"
        if fold is str.strip:
            raise ValueError(f"{message}; they would be separate classes: fix the labels in the file")
        log.warning("%s; they are kept as separate classes", message)


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

        def transform(frame):
            _check_same_columns(frame, list(train.columns))
            return encoder.transform(_as_objects(frame, cats)).astype(np.float32)

        transform.layout = _layout(nums, cats, encoder.named_transformers_["categorical"])
        return transform

    return prepare


def _layout(nums: list, cats: list, onehot) -> list[dict]:
    """Where each source column lies in the encoded features: ``{"name", "kind", "columns":
    [start, stop]}``, numeric columns first (one feature each), then each categorical column's
    one-hot block (``categories`` as learnt on train)."""
    layout = [{"name": c, "kind": "numeric", "columns": [i, i + 1]} for i, c in enumerate(nums)]
    start = len(nums)
    for c, values in zip(cats, getattr(onehot, "categories_", [])):
        layout.append({"name": c, "kind": "categorical", "columns": [start, start + len(values)],
                       "categories": [str(v) for v in values]})
        start += len(values)
    return layout


def _check_same_columns(frame, columns: list) -> None:
    """A frame to encode holds the train split's columns (any order); a missing one is named."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing} that the encoder was fitted on; columns: "
                         f"{', '.join(map(str, frame.columns))}")


def _as_objects(frame, cats):
    """Categorical columns as strings; a missing value becomes the category ``"nan"``."""
    return frame.astype({c: str for c in cats})
