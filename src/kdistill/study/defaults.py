"""The recipe a bare student gets: the measured best for its kind of data.

A student given to :func:`kdistill.compare` (or listed in an experiment file) without an
objective is distilled with these defaults. They come from ``benchmarks/tabular.py`` (tables)
and ``benchmarks/scarce_labels.py`` (images); docs/tutorials/tables.md says what they are, and
docs/background/benchmarks.md why.

Tables (the validation-only pilot of ``benchmarks/tabular.py``, seed 100, four mlbench tables,
four student kinds): the synthetic setting with the best mean gain over all 16 (table, student)
pairs was MUNGE at 30 rows per training row (+0.60 points; MUNGE x10 +0.42, Gibbs x10 -0.51, no
synthetic rows -1.05); temperature 2 lost for every kind; mixing the labels in (alpha 0.5) helped
the scikit-learn kinds on average and a larger teacher weight did not help the MLP. Out-of-fold
teacher outputs stay on although the pilot measured them 0.17 points worse on average, within a
single seed's noise: a teacher's outputs on rows it was fitted on are not knowledge it can pass
on. The second pilot (the MLP's batches and budget, four tables): at the student alone's
optimizer steps, half-labelled batches were better than plain ones (+0.22 points on average
against -0.20; LetterRecognition +0.17 against -3.97). Ten times the steps gained more (+1.77),
but the student alone gains as much from them (LetterRecognition 0.891 -> 0.916): that is
training longer, not distilling, so the budget stays the student alone's.
The default recipe also keeps the student alone where distilling made it less accurate on
validation (see :func:`kdistill.study.runner.keep_better`).
"""

from __future__ import annotations

from ..data import Splits
from ..data.batching import mixed_steps
from ..data.synthetic import check_synthetic
from ..engine.config import TrainConfig, step_budget, total_steps
from ..methods import kd_objective

IMAGE_OBJECTIVE = kd_objective(0.5, 4.0)
TABLE_TORCH = {"alpha": 0.5, "temperature": 1.0}  # a PyTorch student on a table: kd_objective's settings
TABLE_OBJECTIVE = kd_objective(**TABLE_TORCH)
# A bare PyTorch student distilled on a table with synthetic rows: half of each batch labelled rows
# (the rest synthetic and pool rows), at the optimizer steps it would take without them.
TABLE_TORCH_TRAIN = {"labeled_share": 0.5}
TABLE_ESTIMATOR = {"mode": "soft", "temperature": 1.0, "alpha": 0.5}  # a scikit-learn student on a table
IMAGE_ESTIMATOR = {"mode": "soft"}
TABLE_SYNTHETIC = {"kind": "munge", "size": 30}  # synthetic rows per training row that the teacher labels


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
    if not isinstance(synthetic, dict) or set(synthetic) - {"kind", "size", "p"} or "kind" not in synthetic:
        raise ValueError(f"synthetic must be 'auto', None or a dict {{'kind': 'munge'|'gibbs'|'gaussian', 'size': "
                         f"rows per training row, 'p': share of columns changed (munge, gibbs)}}, got {synthetic!r}")
    options = {"size": TABLE_SYNTHETIC["size"], **synthetic}
    check_synthetic(options["kind"], options["size"], options.get("p"))
    return options


def table_budget(train: dict, data: Splits, synthetic: dict | None) -> dict:
    """The training options of a bare PyTorch student distilled on a table with synthetic rows:
    ``train`` with a ``labeled_share`` (the user's, else :data:`TABLE_TORCH_TRAIN`'s) and a
    ``max_steps`` of the optimizer steps its ``epochs`` (and any ``max_steps`` of its own) take over
    the rows it had (the labelled ones and any pool): those of the student alone when there is no
    pool, so the comparison is at equal steps. An epoch is then one pass over the synthetic and pool
    rows, each batch part labelled; ``epochs`` becomes the epochs those steps reach into, the last
    one cut short. ``data``: the splits before the synthetic rows join. Without synthetic rows, or
    with ``unlabeled=False`` (the student then never sees them), ``train`` is returned as it is.
    ``benchmarks/tabular.py`` gives its default recipe the same budget; without it the default
    recipe would cost ``1 + size`` times the student alone's training."""
    cfg = TrainConfig.from_kwargs(**train)
    if synthetic is None or not cfg.unlabeled:
        return dict(train)
    pool = len(data.unlabeled) if data.unlabeled is not None else 0
    steps = total_steps(cfg, -(-(len(data.train) + pool) // cfg.batch_size))
    share = cfg.labeled_share if cfg.labeled_share is not None else TABLE_TORCH_TRAIN["labeled_share"]
    per_epoch = mixed_steps(pool + round(synthetic["size"] * len(data.train)), cfg.batch_size, share)
    return {**train, "labeled_share": share, **step_budget(steps, per_epoch)}
