"""The recipe a bare student gets: the measured best for its kind of data.

A student given to :func:`kdistill.compare` (or listed in an experiment file) without an
objective is distilled with these defaults. They come from ``benchmarks/tabular.py`` (tables)
and ``benchmarks/scarce_labels.py`` (images); the README's tabular section says why.
"""

from __future__ import annotations

from ..data import Splits
from ..data.synthetic import check_synthetic
from ..methods import kd_objective

IMAGE_OBJECTIVE = kd_objective(0.5, 4.0)
TABLE_TORCH = {"alpha": 0.5, "temperature": 1.0}  # a PyTorch student on a table: kd_objective's settings
TABLE_OBJECTIVE = kd_objective(**TABLE_TORCH)
TABLE_TORCH_TRAIN: dict = {}  # training settings of a bare PyTorch student on a table
TABLE_ESTIMATOR = {"mode": "soft", "temperature": 1.0, "alpha": 1.0}  # a scikit-learn student on a table
IMAGE_ESTIMATOR = {"mode": "soft"}
TABLE_SYNTHETIC = {"kind": "gibbs", "size": 10}  # synthetic rows per training row that the teacher labels


def is_table(data: Splits) -> bool:
    """Whether the samples are rows of features (one dimension), not images or sequences."""
    return len(data.input_shape) == 1


def default_objective(estimator: bool, table: bool):
    """The objective of a bare student: scikit-learn options or a PyTorch term list."""
    if estimator:
        return dict(TABLE_ESTIMATOR if table else IMAGE_ESTIMATOR)
    return list(TABLE_OBJECTIVE if table else IMAGE_OBJECTIVE)


def synthetic_options(synthetic, table: bool) -> dict | None:
    """``synthetic`` as ``{"kind", "size"}`` or ``None``: ``"auto"`` is :data:`TABLE_SYNTHETIC` on
    a table and nothing elsewhere; ``None`` or ``False`` is nothing; a dict is checked."""
    if synthetic is None or synthetic is False:
        return None
    if isinstance(synthetic, str) and synthetic == "auto":
        return dict(TABLE_SYNTHETIC) if table else None
    if not isinstance(synthetic, dict) or set(synthetic) - {"kind", "size"} or "kind" not in synthetic:
        raise ValueError(f"synthetic must be 'auto', None or a dict {{'kind': 'munge'|'gibbs'|'gaussian', 'size': "
                         f"rows per training row}}, got {synthetic!r}")
    options = {"size": TABLE_SYNTHETIC["size"], **synthetic}
    check_synthetic(options["kind"], options["size"])
    return options
