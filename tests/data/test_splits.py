import numpy as np
import pytest
import torch

from kdistill.data import ArrayDataset, batches, load_dataset, split_arrays


def test_digits_are_images_with_indices():
    s = load_dataset("digits", seed=0)
    x, y, i = s.train[5]
    assert x.shape == (1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert i == 5 and s.num_classes == 10 and s.input_shape == (1, 8, 8)
    assert len(s.train) + len(s.val) + len(s.test) == 1797


@pytest.mark.parametrize("name,k,f", [("iris", 3, 4), ("wine", 3, 13), ("breast_cancer", 2, 30)])
def test_tabular_builtins_standardized_on_train(name, k, f):
    s = load_dataset(name, seed=1)
    assert s.num_classes == k and s.input_shape == (f,)
    assert torch.allclose(s.train.x.mean(0), torch.zeros(f), atol=1e-4)


def test_splits_are_stratified_seeded_and_disjoint():
    a, b, c = (load_dataset("digits", seed=s) for s in (3, 3, 4))
    assert torch.equal(a.test.x, b.test.x) and not torch.equal(a.test.x, c.test.x)
    counts = torch.bincount(a.test.y, minlength=10).float()
    assert counts.min() / counts.max() > 0.85  # each class ~ equally represented
    rows = lambda ds: {tuple(r.flatten().tolist()) for r in ds.x}  # noqa: E731
    assert not rows(a.train) & rows(a.test)


def test_train_fraction_keeps_every_class_and_leaves_val_test_whole():
    full, scarce = load_dataset("digits", seed=0), load_dataset("digits", seed=0, train_fraction=0.1)
    assert len(scarce.train) == pytest.approx(0.1 * len(full.train), abs=1)
    assert set(scarce.train.y.tolist()) == set(range(10))
    assert torch.equal(full.test.x, scarce.test.x) and torch.equal(full.val.x, scarce.val.x)


@pytest.mark.parametrize("kw,msg", [
    ({"train_fraction": 0}, r"train_fraction must lie in \(0, 1\], got 0"),
    ({"train_fraction": 1.5}, r"train_fraction must lie in \(0, 1\], got 1.5"),
    ({"test_size": 1.0}, r"test_size must lie in \[0, 1\), got 1.0"),
    ({"val_size": 0.5, "test_size": 0.5}, "val_size \\+ test_size must be < 1"),
])
def test_bad_split_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        load_dataset("iris", **kw)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; built-in datasets are digits, iris"):
        load_dataset("mnist")


def test_nan_inputs_are_refused():
    x = np.zeros((4, 2))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"x holds NaN or inf in 1 sample\(s\), first at rows \[2\]"):
        ArrayDataset(x, [0, 1, 0, 1])


def test_length_mismatch():
    with pytest.raises(ValueError, match="x has 3 samples but y has 2"):
        ArrayDataset(np.zeros((3, 2)), [0, 1])


def test_shuffled_batches_carry_their_indices():
    s = split_arrays(np.arange(40.0)[:, None], np.arange(40) % 2, ["a", "b"], seed=0)
    for x, y, idx in batches(s.train, 7, shuffle=True, seed=5):
        assert torch.equal(x, s.train.x[idx]) and torch.equal(y, s.train.y[idx])
    seen = torch.cat([idx for _, _, idx in batches(s.train, 7, shuffle=True, seed=5)])
    assert sorted(seen.tolist()) == list(range(len(s.train)))
    assert seen.tolist() != sorted(seen.tolist())


@pytest.mark.parametrize("n_x, n_y", [(10, 12), (12, 10)])
def test_split_arrays_refuses_x_and_y_of_different_lengths(n_x, n_y):
    """Rows were silently dropped: the split indices ran over y alone."""
    with pytest.raises(ValueError, match=rf"cells: x has {n_x} samples but y has {n_y} labels \(part 'all'\); they "
                                         rf"must match, one label per sample"):
        split_arrays(np.zeros((n_x, 2)), np.arange(n_y) % 2, ["a", "b"], name="cells")
