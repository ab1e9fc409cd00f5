"""DistilledClassifier: the scikit-learn contract, each mode and augmentation, and distillation
across frameworks (a scikit-learn teacher into a torch student, a torch teacher into a tree)."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

import kdistill
from kdistill.data.synthetic import jitter, munge
from kdistill.sklearn import DistilledClassifier
from kdistill.teachers import as_teacher


def tree_teacher():
    return DecisionTreeClassifier(max_depth=4, random_state=0)


# Every check passes, so no expected failures are listed. The teacher and student get fixed
# random states because the checks seed only the top-level random_state, and tree tie-breaking
# is random.
@parametrize_with_checks([
    DistilledClassifier(tree_teacher(), DecisionTreeRegressor(max_depth=4, random_state=0)),
    DistilledClassifier(tree_teacher(), DecisionTreeClassifier(max_depth=4, random_state=0), augment="munge",
                        n_synthetic=40, random_state=0),
    DistilledClassifier(tree_teacher(), DecisionTreeClassifier(max_depth=4, random_state=0), mode="hard",
                        augment="gaussian", n_synthetic=40, random_state=0),
])
def test_sklearn_contract(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def forest(iris):
    return RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(*iris)


def test_init_stores_arguments_and_fit_sets_fitted_state(iris):
    teacher, student = RandomForestClassifier(n_estimators=5, random_state=0), DecisionTreeClassifier(max_depth=2)
    est = DistilledClassifier(teacher, student, mode="hard", temperature=2.0)
    assert est.get_params(deep=False) == {"teacher": teacher, "student": student, "mode": "hard", "temperature": 2.0,
                                          "alpha": 1.0, "augment": None, "n_synthetic": None, "random_state": None}
    with pytest.raises(NotFittedError):
        est.predict(iris[0])
    assert est.fit(*iris) is est
    assert not hasattr(teacher, "classes_") and not hasattr(student, "tree_")  # clones were fitted
    assert est.teacher_.n_estimators == 5 and est.student_.get_depth() <= 2
    assert 0.5 < est.fidelity_ <= 1.0


def test_fitted_teacher_is_used_as_it_is(forest, iris):
    est = DistilledClassifier(forest, DecisionTreeClassifier(random_state=0), mode="hard").fit(*iris)
    assert est.teacher_ is forest
    assert est.fidelity_ == 1.0  # an unlimited tree reproduces the teacher's labels on its training points


def test_predict_returns_labels_from_classes_and_proba_rows_sum_to_one(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = DistilledClassifier(tree_teacher(), DecisionTreeRegressor(max_depth=3), temperature=3.0).fit(X, names)
    assert list(est.classes_) == ["setosa", "versicolor", "virginica"]
    assert set(est.predict(X)) <= set(names)
    np.testing.assert_allclose(est.predict_proba(X).sum(1), 1.0)


def test_soft_regressor_student_learns_softened_probabilities(forest, iris):
    X = iris[0]
    est = DistilledClassifier(forest, DecisionTreeRegressor(random_state=0), temperature=2.0).fit(*iris)
    p = np.maximum(forest.predict_proba(X), 1e-6)
    soft = np.sqrt(p) / np.sqrt(p).sum(1, keepdims=True)  # softmax(log p / 2)
    np.testing.assert_allclose(est.student_.predict(X), soft, atol=1e-5)
    np.testing.assert_allclose(est.predict_proba(X), forest.predict_proba(X), atol=1e-4)  # q**T undoes it


def test_soft_classifier_student_uses_probabilities_as_weights(forest, iris):
    est = DistilledClassifier(forest, DecisionTreeClassifier(random_state=0)).fit(*iris)
    assert est.student_.tree_.weighted_n_node_samples[0] == pytest.approx(len(iris[1]))
    np.testing.assert_allclose(est.predict_proba(iris[0]), forest.predict_proba(iris[0]), atol=1e-4)


def test_hard_regressor_student_fits_one_hot_labels(forest, iris):
    est = DistilledClassifier(forest, DecisionTreeRegressor(random_state=0), mode="hard").fit(*iris)
    np.testing.assert_array_equal(est.predict_proba(iris[0]), np.eye(3)[forest.predict(iris[0])])


def test_single_output_regressor_is_wrapped(forest, iris):
    est = DistilledClassifier(forest, GradientBoostingRegressor(n_estimators=5)).fit(*iris)
    assert isinstance(est.student_, MultiOutputRegressor) and len(est.student_.estimators_) == 3


def test_soft_mode_needs_sample_weight_for_classifier_students(forest, iris):
    with pytest.raises(TypeError, match="KNeighborsClassifier lacks; use mode='hard' or a regressor"):
        DistilledClassifier(forest, KNeighborsClassifier()).fit(*iris)
    assert DistilledClassifier(forest, KNeighborsClassifier(), mode="hard").fit(*iris).fidelity_ > 0.9


@pytest.mark.parametrize("augment", ["munge", "gaussian"])
def test_augmentation_adds_teacher_labelled_samples(forest, iris, augment):
    est = DistilledClassifier(forest, DecisionTreeRegressor(random_state=0), augment=augment, n_synthetic=70,
                              random_state=0).fit(*iris)
    assert est.student_.tree_.n_node_samples[0] == len(iris[1]) + 70


def test_munge_swaps_with_the_nearest_neighbour():
    X = np.array([[0.0, 0.0], [0.1, 10.0], [5.0, 5.0], [5.1, -5.0]])
    same = munge(X, 4, p=0.0, random_state=0)
    np.testing.assert_array_equal(np.sort(same, axis=0), np.sort(X, axis=0))
    swapped = munge(X, 40, p=1.0, s=1e12, random_state=0)  # sd ~ 0: values move between neighbours
    for a in range(2):
        assert np.abs(swapped[:, a, None] - X[None, :, a]).min(axis=1).max() < 1e-6
    np.testing.assert_array_equal(munge(X, 10, random_state=3), munge(X, 10, random_state=3))


def test_munge_draws_around_the_neighbour():
    X = np.random.default_rng(0).normal(size=(50, 3))
    out = munge(X, 500, p=0.5, s=1.0, random_state=0)
    assert out.shape == (500, 3)
    assert not np.isin(out, X).all()  # new values are drawn
    assert abs(out.std() - X.std()) < 0.5 * X.std()  # ... in the data's range


def test_munge_and_jitter_errors_and_shapes():
    with pytest.raises(ValueError, match="n_samples = 1"):
        munge(np.ones((1, 2)), 3)
    with pytest.raises(ValueError, match="p in \\[0, 1\\] and s > 0, got p=2"):
        munge(np.ones((3, 2)), 3, p=2)
    X = np.random.default_rng(0).normal(size=(30, 2))
    assert jitter(X, 7, random_state=0).shape == (7, 2)


@pytest.mark.parametrize("param, value, message", [
    ("mode", "medium", "mode must be one of hard, soft, got 'medium'"),
    ("temperature", 0, "temperature must be a finite number > 0, got 0"),
    ("temperature", float("inf"), "temperature must be a finite number > 0"),
    ("augment", "smote", "augment must be one of None, 'munge', 'gibbs', 'gaussian', got 'smote'"),
    ("n_synthetic", 0, "n_synthetic must be None or an integer >= 1, got 0"),
    ("student", "tree", "student must be a scikit-learn classifier or regressor, got str"),
])
def test_bad_parameters_are_named_at_fit(iris, param, value, message):
    est = DistilledClassifier(tree_teacher(), DecisionTreeRegressor()).set_params(**{param: value})
    with pytest.raises((ValueError, TypeError), match=message):
        est.fit(*iris)


def test_labels_unknown_to_a_fitted_teacher_are_an_error(forest, iris):
    with pytest.raises(ValueError, match="y holds labels \\[7\\] that the teacher does not know"):
        DistilledClassifier(forest, DecisionTreeRegressor()).fit(iris[0], np.where(iris[1] == 2, 7, iris[1]))


def test_pipeline_grid_search_cross_val_and_clone(iris):
    est = DistilledClassifier(RandomForestClassifier(n_estimators=10, random_state=0),
                              DecisionTreeClassifier(random_state=0), mode="hard")
    pipe = make_pipeline(StandardScaler(), est)
    assert cross_val_score(pipe, *iris, cv=3).mean() > 0.85
    grid = GridSearchCV(est, {"student__max_depth": [1, 3]}, cv=3).fit(*iris)
    assert grid.best_params_ == {"student__max_depth": 3}
    assert grid.best_estimator_.student_.get_depth() <= 3
    copy = clone(est)
    assert copy is not est and copy.get_params()["student__random_state"] == 0


def test_gradient_boosting_teacher_into_torch_mlp_student():
    data = kdistill.load_dataset("breast_cancer", seed=0)
    gbc = GradientBoostingClassifier(n_estimators=30, max_depth=2, random_state=0)
    gbc.fit(data.train.x.numpy(), data.train.y.numpy())
    student = kdistill.models.mlp(data.input_shape, data.num_classes, hidden=(16,))
    kdistill.distill(gbc, student, data, alpha=0.9, temperature=2.0, epochs=8, lr=1e-2, quiet=True)
    result = kdistill.evaluate(student, data.test, data.classes, teacher=gbc)
    assert result["agreement"] > 0.9 and result["accuracy"] > 0.9


def test_torch_cnn_teacher_into_decision_tree_student():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    data = kdistill.split_arrays(X.reshape(-1, 1, 8, 8), y, [str(c) for c in range(10)], val_size=0.0)
    cnn = kdistill.models.cnn((1, 8, 8), 10, channels=(8,), hidden=32, dropout=0.0)
    kdistill.fit(cnn, data, epochs=3, lr=1e-2, quiet=True)
    teacher = as_teacher(nn.Sequential(nn.Unflatten(1, (1, 8, 8)), cnn), classes=list(range(10)))
    x_train, y_train = data.train.x.reshape(len(data.train), -1).numpy(), data.train.y.numpy()
    est = DistilledClassifier(teacher, DecisionTreeClassifier(max_depth=10, random_state=0), mode="hard")
    est.fit(x_train, y_train)
    x_test = data.test.x.reshape(len(data.test), -1)
    with torch.inference_mode():
        teacher_test = cnn(data.test.x).argmax(1).numpy()
    assert est.fidelity_ > 0.9
    assert (est.predict(x_test.numpy()) == teacher_test).mean() > 0.6


def test_torch_teacher_with_wrong_number_of_outputs_asks_for_classes(iris):
    net = nn.Linear(4, 5)
    with pytest.raises(ValueError, match="outputs shape \\(150, 5\\).*3 classes.*classes="):
        DistilledClassifier(net, DecisionTreeRegressor()).fit(*iris)


def test_labels_of_another_type_than_the_teachers_classes_are_an_error(iris):
    teacher = as_teacher(nn.Linear(4, 3), classes=["0", "1", "2"])
    with pytest.raises(ValueError, match="y holds labels \\[0, 1, 2\\] that the teacher does not know"):
        DistilledClassifier(teacher, DecisionTreeRegressor()).fit(*iris)


@pytest.mark.parametrize("library, make", [
    ("lightgbm", lambda m: m.LGBMClassifier(n_estimators=10, num_leaves=4, verbose=-1)),
    ("xgboost", lambda m: m.XGBClassifier(n_estimators=10, max_depth=2)),
    ("catboost", lambda m: m.CatBoostClassifier(iterations=10, depth=2, verbose=0, allow_writing_files=False)),
])
def test_boosted_trees_learn_the_teachers_soft_labels(forest, iris, library, make):
    module = pytest.importorskip(library)
    est = DistilledClassifier(forest, make(module), augment="munge", n_synthetic=150, random_state=0).fit(*iris)
    assert type(est.student_).__module__.startswith(library) and est.fidelity_ > 0.85


def test_soft_targets_mix_the_labels_by_alpha_and_leave_unlabelled_rows_to_the_teacher():
    from kdistill.sklearn import soft_targets

    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    out = soft_targets(logits, labels=np.array([1, -1]), alpha=0.25)
    np.testing.assert_allclose(out, [[0.175, 0.8, 0.025], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(soft_targets(logits, temperature=2.0)[0], np.sqrt([0.7, 0.2, 0.1]) /
                               np.sqrt([0.7, 0.2, 0.1]).sum())
    np.testing.assert_array_equal(soft_targets(logits, mode="hard"), [[1, 0, 0], [0, 0, 1]])


def test_a_soft_label_tree_leaf_holds_the_mean_teacher_probabilities():
    from kdistill.sklearn import fit_on_teacher

    x = np.zeros((4, 1))  # one leaf: its class frequencies are the mean of the targets
    probs = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.2, 0.7995, 0.0005], [0.6, 0.0, 0.4]])
    tree = fit_on_teacher(DecisionTreeClassifier(), x, probs)
    kept = np.where(probs >= 1e-3, probs, 0.0)
    expected = (kept / kept.sum(1, keepdims=True)).mean(0)
    np.testing.assert_allclose(tree.predict_proba(x[:1])[0], expected)
