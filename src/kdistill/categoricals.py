"""Native categoricals for boosted trees: :class:`NativeCategoricals`.

A table reaches every model in one encoding (:func:`kdistill.data.table_encoder`): numbers
standardized, each categorical column one-hot. A boosted tree given a categorical column as one
column of integer codes can send any set of its categories to one side in a single split, where
one-hot columns split off one category at a time. :class:`NativeCategoricals` turns each one-hot
block back into its code column (an all-zero block, a category unseen in training, becomes a
missing value) and fits the booster with its library's own categorical support, so that the
data, the synthetic rows, the teacher cache and every other model keep the one-hot encoding.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger("kdistill")

CHOICES = ("native", "onehot")  # how boosted trees take a table's categorical columns
HOT = 0.5  # a one-hot column above this is its block's category
# scikit-learn's HistGradientBoostingClassifier has categorical_features too, but skl2onnx 1.20 reads its
# categorical splits as thresholds (|dp| up to 0.87 on a small table): it keeps the one-hot columns and its ONNX file.
BOOSTERS = ("lightgbm.LGBMClassifier", "xgboost.XGBClassifier", "catboost.CatBoostClassifier")


def codes(x, layout: list[dict]) -> np.ndarray:
    """The columns of a table's ``layout`` (see :func:`kdistill.data.table_encoder`) from its
    encoded rows ``x``: a numeric column as it is, a categorical one as the code (0, 1, ...) of its
    one-hot block's hot column (above :data:`HOT`; the first largest, as ``argmax``), NaN where
    the block is all zeros. Vectorized over the blocks: a table of 180 categorical columns takes
    a few array operations per batch, not 180."""
    x = np.asarray(x, dtype=np.float64)
    starts = np.array([g["columns"][0] for g in layout])
    block = np.repeat(np.arange(len(layout)), [g["columns"][1] - g["columns"][0] for g in layout])
    largest = np.maximum.reduceat(x, starts, axis=1)  # per block
    position = np.arange(x.shape[1]) - starts[block]  # each column's place in its block
    first = np.minimum.reduceat(np.where(x == largest[:, block], position, x.shape[1]), starts, axis=1)
    categorical = np.array([g["kind"] == "categorical" for g in layout])
    return np.where(categorical, np.where(largest > HOT, first, np.nan), x[:, starts])


def categorical_columns(layout: list[dict]) -> list[int]:
    """Which columns of :func:`codes` hold categories."""
    return [j for j, group in enumerate(layout) if group["kind"] == "categorical"]


def booster(estimator) -> str | None:
    """The library of ``estimator`` when it is one of :data:`BOOSTERS`, else ``None``."""
    library = type(estimator).__module__.split(".")[0]
    return library if f"{library}.{type(estimator).__name__}" in BOOSTERS else None


def for_table(estimator, layout: list[dict] | None, categoricals: str = "native"):
    """``estimator`` as a study fits it on a table of ``layout``: a boosted-tree classifier (see
    :data:`BOOSTERS`) in :class:`NativeCategoricals` when the table has a categorical column and
    ``categoricals`` is ``"native"``; anything else as it is."""
    check_choice(categoricals)
    library = booster(estimator)
    if categoricals == "native" and layout and categorical_columns(layout) and library:
        if library == "xgboost" and estimator.get_params().get("tree_method") == "exact":
            log.warning("%s has tree_method='exact', which XGBoost cannot split on categories with: it is fitted on "
                        "the one-hot columns (give tree_method 'hist' or 'approx' for native categoricals)",
                        type(estimator).__name__)
            return estimator
        return NativeCategoricals(estimator, layout)
    return estimator


def check_choice(categoricals) -> None:
    """A ValueError naming the value and the choices unless ``categoricals`` is one of :data:`CHOICES`."""
    if categoricals not in CHOICES:
        raise ValueError(f"categoricals must be 'native' (boosted trees split categorical columns natively) or "
                         f"'onehot' (they get the one-hot columns, as every other model does), got {categoricals!r}")


class NativeCategoricals(ClassifierMixin, BaseEstimator):
    """A boosted-tree classifier fitted with native categoricals on one-hot encoded rows.

    Parameters
    ----------
    estimator : classifier
        LightGBM's ``LGBMClassifier``, XGBoost's ``XGBClassifier`` or CatBoost's
        ``CatBoostClassifier``, cloned when fitted, its library's categorical options set:
        ``categorical_feature``; ``enable_categorical`` and ``feature_types``; ``cat_features``.
    layout : list of dict
        Where each table column lies in the rows (``info["layout"]`` of a table's splits).

    Attributes
    ----------
    estimator_ : classifier
        The fitted booster; its columns are :func:`codes` (a category not seen in training is
        NaN, the library's missing value; for CatBoost, which takes no NaN category, -1).
    classes_ : ndarray
    n_features_in_ : int
        Width of the one-hot encoded rows.
    """

    def __init__(self, estimator, layout):
        self.estimator = estimator
        self.layout = layout

    def fit(self, X, y, sample_weight=None):
        """Fit a clone of ``estimator`` on the codes of ``X``.

        Returns
        -------
        self : NativeCategoricals
        """
        library = booster(self.estimator)
        if library is None:
            raise TypeError(f"NativeCategoricals: estimator must be one of {', '.join(BOOSTERS)}, got "
                            f"{type(self.estimator).__name__}")
        cats = categorical_columns(self.layout)
        model = clone(self.estimator)
        options = {"sample_weight": sample_weight} if sample_weight is not None else {}
        if library == "lightgbm":
            options["categorical_feature"] = cats
        elif library == "xgboost":
            model.set_params(enable_categorical=True,
                             feature_types=["c" if j in cats else "q" for j in range(len(self.layout))])
        else:
            model.set_params(cat_features=cats)
        self.estimator_ = model.fit(self._inputs(X, library), y, **options)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = self.layout[-1]["columns"][1]
        return self

    def predict_proba(self, X):
        """The booster's class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(self._inputs(X, booster(self.estimator_)))

    def predict(self, X):
        """The most probable class of each row, from ``classes_``."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def _inputs(self, X, library: str):
        """The codes of ``X`` as the booster takes them: an array, or for CatBoost a frame whose
        categorical columns are integers (-1 for a category not seen in training)."""
        X = np.asarray(X, dtype=np.float64)
        width = self.layout[-1]["columns"][1]
        if X.ndim != 2 or X.shape[1] != width:
            raise ValueError(f"NativeCategoricals: X must have the layout's {width} columns (one-hot encoded rows), "
                             f"got shape {X.shape}")
        x = codes(X, self.layout)
        if library != "catboost":
            return x
        import pandas as pd

        frame = pd.DataFrame(x, columns=[str(j) for j in range(x.shape[1])])
        for j in categorical_columns(self.layout):
            frame[str(j)] = np.nan_to_num(x[:, j], nan=-1).astype(np.int64)
        return frame
