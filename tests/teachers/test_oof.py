"""Out-of-fold teacher outputs: each training row is served by a copy that never saw it, rows of
other datasets by the full teacher, aligned by index through the cache and shuffled batches."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

import kdistill
from kdistill.data import batches, combine, unlabeled_set
from kdistill.teachers import CachedTeacher, as_teacher
from kdistill.teachers.oof import OutOfFoldTeacher, check_folds, cross_fit


@pytest.fixture
def noisy():
    """Two overlapping classes: a 1-nearest-neighbour teacher memorises the training rows."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    x = rng.normal(size=(300, 3)) + y[:, None] * 0.8
    return kdistill.split_arrays(x, y, ["a", "b"], seed=0)


def test_out_of_fold_outputs_are_not_the_labels_again(noisy):
    x, y = noisy.train.x.numpy(), noisy.train.y.numpy()
    full = KNeighborsClassifier(1).fit(x, y)
    assert (full.predict(x) == y).all()  # on its own rows the teacher is the labels again
    oof = cross_fit(KNeighborsClassifier(1), x, y, 5, seed=0, num_classes=2)
    assert oof.shape == (len(y), 2)
    oof_acc = float((oof.argmax(1).numpy() == y).mean())
    test_acc = float((full.predict(noisy.test.x.numpy()) == noisy.test.y.numpy()).mean())
    assert oof_acc < 0.9 and abs(oof_acc - test_acc) < 0.15  # held-out quality, as on unseen rows
    # each row's outputs come from a model fitted without it: its own fold's copy predicts it
    for fold_seed in (0, 1):
        assert torch.equal(cross_fit(KNeighborsClassifier(1), x, y, 5, fold_seed, 2),
                           cross_fit(KNeighborsClassifier(1), x, y, 5, fold_seed, 2))


def test_the_training_rows_get_out_of_fold_outputs_and_other_rows_the_full_teacher(noisy, tmp_path):
    x, y = noisy.train.x.numpy(), noisy.train.y.numpy()
    full = as_teacher(KNeighborsClassifier(1).fit(x, y))
    oof = cross_fit(KNeighborsClassifier(1), x, y, 3, seed=0, num_classes=2)
    teacher = CachedTeacher(OutOfFoldTeacher(full, noisy.train, oof, 3), cache_dir=tmp_path)
    pool = unlabeled_set(noisy.test.x.numpy())
    training = combine(noisy.train, pool)  # labelled rows first, then unlabelled ones
    view = teacher.for_dataset(training)
    for xb, _, index in batches(training, 64, shuffle=True, seed=1):
        z = view.logits(xb, index)
        own = index < len(oof)
        torch.testing.assert_close(z[own], oof[index[own]], atol=1e-3, rtol=1e-3)  # float16 cache
        torch.testing.assert_close(z[~own], full.logits(xb[~own]), atol=1e-3, rtol=1e-3)
    val = teacher.for_dataset(noisy.val)  # another dataset: the full teacher
    torch.testing.assert_close(val.logits(noisy.val.x, torch.arange(len(noisy.val))), full.logits(noisy.val.x),
                               atol=1e-3, rtol=1e-3)


def test_the_cache_tells_out_of_fold_outputs_from_the_full_teachers(noisy, tmp_path):
    x, y = noisy.train.x.numpy(), noisy.train.y.numpy()
    full = as_teacher(KNeighborsClassifier(1).fit(x, y))
    oof = cross_fit(KNeighborsClassifier(1), x, y, 3, seed=0, num_classes=2)
    plain = CachedTeacher(full, cache_dir=tmp_path).for_dataset(noisy.train)
    folded = CachedTeacher(OutOfFoldTeacher(full, noisy.train, oof, 3), cache_dir=tmp_path).for_dataset(noisy.train)
    index = torch.arange(len(y))
    assert not torch.equal(plain.logits(noisy.train.x, index), folded.logits(noisy.train.x, index))


@pytest.mark.parametrize("folds", [1, -1, 2.5, True, "5"])
def test_bad_folds_are_named(folds):
    with pytest.raises(ValueError, match="teacher folds must be 0 .* or an integer >= 2"):
        check_folds(folds)


def test_too_few_rows_of_a_class_for_the_folds():
    x, y = np.random.default_rng(0).normal(size=(20, 2)), np.r_[np.zeros(17), np.ones(3)].astype(int)
    with pytest.raises(ValueError, match="teacher folds = 5 needs at least 5 training rows of every class, but the "
                                         "rarest class has 3"):
        cross_fit(KNeighborsClassifier(1), x, y, 5, 0, 2)


def test_each_fold_model_is_seeded_anew_also_inside_a_wrapper(noisy):
    """A booster in NativeCategoricals seeds as ``estimator__random_state``: without reseeding it
    every fold would reuse one seed."""
    from sklearn.base import BaseEstimator, ClassifierMixin, clone

    seen = []

    class Recorder(ClassifierMixin, BaseEstimator):
        def __init__(self, random_state=None):
            self.random_state = random_state

        def fit(self, x, y):
            seen.append(self.random_state)
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, x):
            return np.full((len(x), len(self.classes_)), 1 / len(self.classes_))

    class Wrapper(ClassifierMixin, BaseEstimator):
        def __init__(self, estimator=None):
            self.estimator = estimator

        def fit(self, x, y):
            self.estimator_ = clone(self.estimator).fit(x, y)
            self.classes_ = self.estimator_.classes_
            return self

        def predict_proba(self, x):
            return self.estimator_.predict_proba(x)

    x, y = noisy.train.x.numpy(), noisy.train.y.numpy()
    for model in (Recorder(), Wrapper(Recorder())):
        seen.clear()
        cross_fit(model, x, y, 3, 7, 2)
        assert seen == [7, 8, 9], type(model).__name__
