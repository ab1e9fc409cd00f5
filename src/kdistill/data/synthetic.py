"""Synthetic transfer data for tables: new rows near the training rows, for the teacher to label.

Distillation pays on tables when the teacher labels many new points near the data (Buciluǎ et
al. 2006; Fakoor et al., "Fast, Accurate, and Simple Models for Tabular Data via Augmented
Distillation", NeurIPS 2020). The rows made here join a split's unlabelled inputs
(``Splits.unlabeled``): every student kind sees them, distillation terms apply to them and label
terms do not, and the teacher labels each row once (cached and fingerprinted like any of its
outputs).

Rows are made in the encoded space the models see, but per *column group*: a numeric column is
one group, the one-hot block of a categorical column another (``layout``, as
:func:`~kdistill.data.tables.table_encoder` records it), so a synthetic row always holds one valid
category per categorical column.

- :func:`munge`: MUNGE, each row perturbed towards its nearest neighbour.
- :func:`gibbs`: Gibbs sampling with per-group conditionals learned by small trees.
- :func:`jitter`: Gaussian noise around random rows (a baseline).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils import check_random_state

from .splits import Splits, unlabeled_set

KINDS = ("munge", "gibbs", "gaussian")
MAX_SIZE = 200  # synthetic rows per training row, at most
GAUSSIAN_SCALE = 0.1  # jitter: noise standard deviation, as a share of each feature's


def groups_of(layout: list[dict] | None, width: int) -> list[np.ndarray]:
    """The column indices of each group: a table's ``layout`` (``{"kind", "columns": [start, stop]}``
    per source column), or one group per column for plain arrays."""
    if not layout:
        return [np.array([j]) for j in range(width)]
    return [np.arange(*g["columns"]) for g in layout]


def _starts(n: int, n_synthetic: int, rng) -> np.ndarray:
    """The training row each synthetic row starts from: every row equally often (whole passes
    over the data; the last pass subsampled)."""
    rows = np.tile(np.arange(n), -(-n_synthetic // n))
    return rows if len(rows) == n_synthetic else np.sort(rng.choice(rows, n_synthetic, replace=False))


def _categorical(group: np.ndarray, layout) -> bool:
    return bool(layout) and next(g for g in layout if g["columns"][0] == group[0])["kind"] == "categorical"


def munge(x, n_synthetic: int, *, layout=None, p: float = 0.5, s: float = 1.0, random_state=None) -> np.ndarray:
    """Synthetic rows by MUNGE (Buciluǎ, Caruana & Niculescu-Mizil, "Model Compression", KDD 2006).

    Each synthetic row starts as a copy of a training row ``e`` (every row equally often) whose
    nearest neighbour is ``e'``
    (Euclidean, on features scaled to unit variance); each column group is, with probability
    ``p``, redrawn: a numeric value ``e_a ~ N(e'_a, |e_a - e'_a| / s)``, a categorical one takes
    the neighbour's category. The paper updates ``e`` and ``e'`` together in one sequential pass;
    here each row is perturbed from its own pair, which makes a pass one vectorized step (the
    distribution of each new row is the paper's).

    Parameters
    ----------
    x : array of shape (n_samples, n_features)
        At least 2 samples.
    n_synthetic : int
        Number of rows to return.
    layout : list of dict, optional
        Column groups (see :func:`groups_of`); default one numeric group per column.
    p : float in [0, 1]
        Probability of changing each group.
    s : float > 0
        Local-variance divisor: larger values stay closer to the neighbour's value.
    random_state : int, RandomState or None
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        raise ValueError(f"munge needs at least 2 samples to find neighbours, got n_samples = {len(x)}")
    if not 0 <= p <= 1 or not s > 0:
        raise ValueError(f"munge needs p in [0, 1] and s > 0, got p={p!r}, s={s!r}")
    rng = check_random_state(random_state)
    scale = x.std(axis=0)
    scaled = x / np.where(scale > 0, scale, 1.0)
    neighbour = NearestNeighbors(n_neighbors=2).fit(scaled).kneighbors(scaled, return_distance=False)[:, 1]
    rows = _starts(len(x), n_synthetic, rng)
    out, near = x[rows].copy(), x[neighbour[rows]]
    for group in groups_of(layout, x.shape[1]):
        change = rng.random_sample(n_synthetic) < p
        if _categorical(group, layout):
            out[np.ix_(change, group)] = near[np.ix_(change, group)]
            continue
        sd = np.abs(out[change][:, group] - near[change][:, group]) / s
        out[np.ix_(change, group)] = rng.normal(near[change][:, group], sd)
    return out


def gibbs(x, n_synthetic: int, *, layout=None, rounds: int = 1, p: float = 0.5, min_leaf: int = 10,
          random_state=None) -> np.ndarray:
    """Synthetic rows by Gibbs sampling of per-group conditionals, as in FAST-DAD (Fakoor et al.,
    NeurIPS 2020, AutoGluon's ``augment_method="spunge"`` family).

    For every column group ``g`` a regression tree learns ``x_g`` from the other columns on the
    training rows (leaves of at least ``min_leaf`` rows); sampling ``x_g | x_-g`` draws the group's
    values from a random training row in the leaf the current row falls in — a nonparametric
    conditional that keeps numeric values, missing-value patterns and categories real. Each
    synthetic row starts as a random training row; in each of ``rounds`` sweeps over the groups
    (in a random order), every group is resampled with probability ``p``. FAST-DAD learns the
    conditionals with a self-attention network; trees are far cheaper and need no training loop.

    Parameters
    ----------
    x : array of shape (n_samples, n_features)
    n_synthetic : int
    layout : list of dict, optional
        Column groups (see :func:`groups_of`).
    rounds : int >= 1
        Gibbs sweeps per row: more wander further from the data.
    p : float in (0, 1]
        Probability of resampling each group in a sweep.
    min_leaf : int >= 1
        Smallest leaf of the conditional trees: larger draws from wider neighbourhoods.
    random_state : int, RandomState or None
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 2 * min_leaf:
        raise ValueError(f"gibbs needs at least 2 * min_leaf = {2 * min_leaf} samples, got n_samples = {len(x)}")
    if not 0 < p <= 1 or isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
        raise ValueError(f"gibbs needs p in (0, 1] and an integer rounds >= 1, got p={p!r}, rounds={rounds!r}")
    rng = check_random_state(random_state)
    groups = groups_of(layout, x.shape[1])
    samplers = [_LeafSampler(x, g, min_leaf, rng) for g in groups] if len(groups) > 1 else []
    out = x[_starts(len(x), n_synthetic, rng)]
    for _ in range(rounds):
        for i in rng.permutation(len(samplers)):
            change = np.flatnonzero(rng.random_sample(n_synthetic) < p)
            if len(change):
                out[np.ix_(change, groups[i])] = samplers[i].draw(out[change], rng)
    return out


class _LeafSampler:
    """``x_g | x_-g``: the values of group ``g`` of a random training row in the same tree leaf."""

    def __init__(self, x: np.ndarray, group: np.ndarray, min_leaf: int, rng):
        self.group, self.rest = group, np.setdiff1d(np.arange(x.shape[1]), group)
        self.tree = DecisionTreeRegressor(min_samples_leaf=min_leaf, random_state=rng.randint(2**31 - 1))
        self.tree.fit(x[:, self.rest], x[:, group])
        leaves = self.tree.apply(x[:, self.rest])
        self.order = np.argsort(leaves, kind="stable")
        self.sorted_leaves = leaves[self.order]
        self.values = x[:, group]

    def draw(self, rows: np.ndarray, rng) -> np.ndarray:
        leaves = self.tree.apply(rows[:, self.rest])
        start = np.searchsorted(self.sorted_leaves, leaves, side="left")
        count = np.searchsorted(self.sorted_leaves, leaves, side="right") - start
        pick = self.order[start + (rng.random_sample(len(rows)) * count).astype(int)]
        return self.values[pick]


def jitter(x, n_synthetic: int, *, layout=None, scale: float = GAUSSIAN_SCALE, random_state=None) -> np.ndarray:
    """``n_synthetic`` copies of random rows of ``x`` with Gaussian noise of standard deviation
    ``scale`` times each numeric feature's standard deviation (one-hot blocks are left as they are)."""
    x = np.asarray(x, dtype=float)
    rng = check_random_state(random_state)
    rows = x[rng.randint(len(x), size=n_synthetic)]
    noise = rng.normal(size=rows.shape) * scale * x.std(axis=0)
    for group in groups_of(layout, x.shape[1]):
        if _categorical(group, layout):
            noise[:, group] = 0.0
    return rows + noise


MAKERS = {"munge": munge, "gibbs": gibbs, "gaussian": jitter}


def check_synthetic(kind, size, p=None) -> None:
    """Raise unless ``kind`` is one of :data:`KINDS`, ``size`` a number of rows per training
    row in (0, ``MAX_SIZE``] and ``p`` (munge and gibbs: the share of column groups changed)
    ``None`` or in (0, 1]."""
    if kind not in KINDS:
        raise ValueError(f"synthetic kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(size, bool) or not isinstance(size, numbers.Real) or not 0 < size <= MAX_SIZE:
        raise ValueError(f"synthetic size (rows per training row) must be a number in (0, {MAX_SIZE}], got {size!r}")
    if p is not None and (kind == "gaussian" or isinstance(p, bool) or not isinstance(p, numbers.Real)
                          or not 0 < p <= 1):
        raise ValueError(f"synthetic p (the share of columns a synthetic row changes) must be a number in (0, 1] for "
                         f"munge or gibbs, got p={p!r} with kind {kind!r}")


def with_synthetic(data: Splits, kind: str, size: float, seed: int = 0, **options) -> Splits:
    """``data`` with ``size`` synthetic rows per training row (``kind``: munge, gibbs or
    gaussian) added to its unlabelled inputs, made from the train split alone and seeded by
    ``seed``; ``options`` go to the maker. ``info["synthetic"]`` records what was added."""
    check_synthetic(kind, size, options.get("p"))
    if len(data.input_shape) != 1:
        raise ValueError(f"synthetic rows are made for tables (samples of one dimension); {data.name!r} gives "
                         f"samples of shape {data.input_shape}")
    x = data.train.x.numpy()
    n = max(1, int(round(size * len(x))))
    rows = MAKERS[kind](x, n, layout=data.info.get("layout"), random_state=seed, **options).astype(np.float32)
    made = unlabeled_set(rows, f"{data.name}.synthetic")
    pool = made if data.unlabeled is None else _joined(data.unlabeled, made)
    info = {**data.info, "synthetic": {"kind": kind, "size": size, "rows": n, **options},
            "unlabeled": len(pool)}
    return dataclasses.replace(data, unlabeled=pool, info=info)


def _joined(first, second):
    return unlabeled_set(torch.cat([first.x, second.x]), second.name)
