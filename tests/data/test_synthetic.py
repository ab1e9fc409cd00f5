"""Synthetic transfer rows for tables: MUNGE and Gibbs respect column groups, are seeded, and join
the unlabelled inputs of the splits."""

import numpy as np
import pandas as pd
import pytest

import kdistill
from kdistill.data.synthetic import check_synthetic, gibbs, groups_of, jitter, munge, with_synthetic


@pytest.fixture
def table():
    """A DataFrame with numbers, a categorical column, missing values of both kinds and string labels."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue"], n),
                          "b": rng.normal(size=n)})
    frame["label"] = np.where((frame.a > 0) ^ (frame.colour == "red"), "yes", "no")
    frame.loc[::9, "a"] = np.nan
    frame.loc[::13, "colour"] = None
    return frame


def _blocks(splits):
    return [g for g in splits.info["layout"] if g["kind"] == "categorical"]


def test_a_dataframe_records_where_each_column_lies(table):
    splits = kdistill.load_table(table, "label", seed=0)
    assert splits.classes == ["no", "yes"]
    layout = splits.info["layout"]
    assert [g["name"] for g in layout] == ["a", "b", "colour"]
    (colour,) = _blocks(splits)
    assert colour["columns"][1] - colour["columns"][0] == len(colour["categories"]) == 4  # 3 colours + missing
    assert splits.input_shape == (6,)
    assert [len(groups_of(layout, 6)[i]) for i in range(3)] == [1, 1, 4]


@pytest.mark.parametrize("kind", ["munge", "gibbs", "gaussian"])
def test_synthetic_rows_keep_one_category_per_categorical_column(table, kind):
    splits = kdistill.load_table(table, "label", seed=0)
    more = with_synthetic(splits, kind, 5, seed=3)
    rows = more.unlabeled.x.numpy()
    assert rows.shape == (5 * len(splits.train), 6) and more.info["synthetic"]["rows"] == len(rows)
    start, stop = _blocks(splits)[0]["columns"]
    np.testing.assert_array_equal(np.sort(np.unique(rows[:, start:stop])), [0.0, 1.0])
    np.testing.assert_array_equal(rows[:, start:stop].sum(1), 1.0)
    assert (more.unlabeled.y == -1).all() and more.info["unlabeled"] == len(rows)
    assert splits.unlabeled is None  # the splits given are left as they were
    again = with_synthetic(splits, kind, 5, seed=3).unlabeled.x
    assert np.array_equal(again.numpy(), rows)  # seeded
    assert not np.array_equal(with_synthetic(splits, kind, 5, seed=4).unlabeled.x.numpy(), rows)


def test_synthetic_rows_join_an_existing_pool(table):
    splits = kdistill.load_table(table, "label")
    pooled = with_synthetic(splits, "munge", 1, seed=0)
    twice = with_synthetic(pooled, "gibbs", 2, seed=1)
    assert len(twice.unlabeled) == 3 * len(splits.train)
    np.testing.assert_array_equal(twice.unlabeled.x[:len(pooled.unlabeled)].numpy(), pooled.unlabeled.x.numpy())


def test_gibbs_draws_each_group_from_real_rows_of_its_leaf():
    rng = np.random.default_rng(0)
    x = np.c_[rng.integers(0, 4, 500), rng.normal(size=500)]
    x[:, 1] += 10 * x[:, 0]  # the second column follows the first
    out = gibbs(x, 2000, rounds=2, p=1.0, min_leaf=10, random_state=0)
    assert np.isin(out[:, 0], x[:, 0]).all() and np.isin(out[:, 1], x[:, 1]).all()  # values of real rows
    gap = np.abs(out[:, 1] - 10 * out[:, 0])
    assert np.median(gap) < 2.0  # conditionals kept: not an independent shuffle of the columns
    shuffled = np.abs(rng.permutation(x[:, 1]) - 10 * x[:, 0])
    assert np.median(shuffled) > 5.0


def test_munge_swaps_categories_with_the_neighbour_and_draws_numbers_around_it():
    x = np.array([[0.0, 1.0, 0.0], [0.2, 0.0, 1.0], [5.0, 1.0, 0.0], [5.2, 0.0, 1.0]])
    layout = [{"name": "n", "kind": "numeric", "columns": [0, 1]},
              {"name": "c", "kind": "categorical", "columns": [1, 3]}]
    out = munge(x, 400, layout=layout, p=1.0, s=1e9, random_state=0)  # sd ~ 0: the neighbour's values
    rows = {tuple(r) for r in np.round(out, 6)}
    assert rows <= {tuple(r) for r in x}
    np.testing.assert_array_equal(out[:, 1:].sum(1), 1.0)


@pytest.mark.parametrize("kind, size, message", [
    ("smote", 5, "synthetic kind must be one of munge, gibbs, gaussian, got 'smote'"),
    ("munge", 0, r"rows per training row\) must be a number in \(0, 200\], got 0"),
    ("munge", 500, "got 500"),
    ("munge", True, "got True"),
])
def test_bad_synthetic_settings_are_named(kind, size, message):
    with pytest.raises(ValueError, match=message):
        check_synthetic(kind, size)


def test_synthetic_rows_need_a_table():
    images = kdistill.split_arrays(np.zeros((40, 1, 4, 4)), np.arange(40) % 2, ["a", "b"])
    with pytest.raises(ValueError, match="synthetic rows are made for tables"):
        with_synthetic(images, "munge", 2)


def test_makers_refuse_too_little_data():
    with pytest.raises(ValueError, match="n_samples = 1"):
        munge(np.ones((1, 2)), 3)
    with pytest.raises(ValueError, match="gibbs needs at least 2 \\* min_leaf = 20 samples"):
        gibbs(np.ones((5, 2)), 3)
    assert jitter(np.random.default_rng(0).normal(size=(30, 2)), 7, random_state=0).shape == (7, 2)
