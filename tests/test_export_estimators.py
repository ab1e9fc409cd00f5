"""ONNX export of scikit-learn and boosted-tree classifiers: every supported kind converts with a
float32 input ``input`` and a dynamic batch axis, its probabilities equal predict_proba's in the
order of ``classes_`` (string labels too), failures are clear errors, and the boosters survive a
skops round trip."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from kdistill.export import PROBA_TOLERANCE, ParityError, export_estimator, session
from kdistill.sklearn import DistilledClassifier
from kdistill.weights import load_sklearn, save_sklearn

SKLEARN = {
    "tree": lambda: DecisionTreeClassifier(max_depth=6, random_state=0),
    "logistic": lambda: LogisticRegression(max_iter=500),
    "forest": lambda: RandomForestClassifier(10, max_depth=4, random_state=0),
    "extra-trees": lambda: ExtraTreesClassifier(10, max_depth=4, random_state=0),
    "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
}


def _lightgbm():
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, n_jobs=1, verbose=-1)


def _xgboost():
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)


def _catboost():
    catboost = pytest.importorskip("catboost")
    return catboost.CatBoostClassifier(iterations=10, depth=3, thread_count=1, verbose=0, allow_writing_files=False)


BOOSTERS = {"lightgbm": _lightgbm, "xgboost": _xgboost, "catboost": _catboost}


def _exportable(kind):
    """A fresh model of ``kind``, skipping the test when its converter is not installed."""
    pytest.importorskip("skl2onnx")
    if kind in ("lightgbm", "xgboost"):
        pytest.importorskip("onnxmltools")
    return (SKLEARN.get(kind) or BOOSTERS[kind])()


@pytest.fixture
def skl2onnx():
    return pytest.importorskip("skl2onnx")


@pytest.fixture(scope="module")
def iris():
    x, y = load_iris(return_X_y=True)
    return x, y


@pytest.fixture(scope="module")
def binary():
    return make_classification(200, 6, n_informative=4, random_state=0)


def _check_file(path, model, x):
    """The written file on its own: one float32 input (batch, n_features) with a dynamic batch,
    probabilities first, equal to predict_proba row by row and in a batch of 5."""
    sess = session(path)
    (feed,) = sess.get_inputs()
    assert (feed.name, feed.type, feed.shape[1]) == ("input", "tensor(float)", x.shape[1])
    assert not isinstance(feed.shape[0], int)
    assert [o.name for o in sess.get_outputs()] == ["probabilities", "label"]
    for rows in (x[:1], x[:5]):
        probs, labels = sess.run(None, {"input": rows.astype(np.float32)})
        np.testing.assert_allclose(probs, model.predict_proba(rows), atol=PROBA_TOLERANCE, rtol=0)
        assert list(labels) == list(model.predict(rows))


def _export(model, x, tmp_path):
    report = export_estimator(model, x.shape[1], tmp_path / "m.onnx", x_check=x)
    assert set(report) == {"onnx_ms_b1", "onnx_ms_b64", "onnx_mb", "parity"}
    assert report["parity"] <= PROBA_TOLERANCE
    assert report["onnx_mb"] == pytest.approx((tmp_path / "m.onnx").stat().st_size / 1e6)
    assert 0 < report["onnx_ms_b1"] and 0 < report["onnx_ms_b64"]
    _check_file(tmp_path / "m.onnx", model, x)
    return report


@pytest.mark.parametrize("kind", SKLEARN)
def test_scikit_learn_classifiers_export_faithfully(kind, iris, tmp_path):
    x, y = iris
    _export(_exportable(kind).fit(x, y), x, tmp_path)


@pytest.mark.parametrize("kind", BOOSTERS)
@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_boosted_trees_export_faithfully(kind, task, iris, binary, tmp_path):
    x, y = iris if task == "multiclass" else binary
    _export(_exportable(kind).fit(x, y), x, tmp_path)


@pytest.mark.parametrize("kind", ["tree", "logistic", "hist-gradient-boosting", "lightgbm", "catboost"])
def test_string_labels_keep_the_order_of_classes(kind, iris, tmp_path):
    x, y = iris
    labels = np.array(["zebra", "ant", "mole"])[y]  # classes_ sorts them: ant, mole, zebra
    model = _exportable(kind).fit(x, labels)
    assert list(model.classes_) == ["ant", "mole", "zebra"]
    _export(model, x, tmp_path)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_distilled_classifier_exports_its_own_probabilities(mode, iris, tmp_path, skl2onnx):
    x, y = iris
    teacher = RandomForestClassifier(20, random_state=0).fit(x, np.array(["b", "a", "c"])[y])
    model = DistilledClassifier(teacher, DecisionTreeClassifier(max_depth=4, random_state=0), mode=mode,
                                temperature=2.0).fit(x, np.array(["b", "a", "c"])[y])
    _export(model, x, tmp_path)


def test_standard_normal_rows_check_parity_without_x_check(tmp_path, skl2onnx):
    x, y = make_classification(100, 5, random_state=0)
    report = export_estimator(LogisticRegression().fit(x, y), 5, tmp_path / "m.onnx")
    assert report["parity"] <= PROBA_TOLERANCE


class _Own(ClassifierMixin, BaseEstimator):
    def fit(self, x, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x):
        return np.full((len(x), len(self.classes_)), 1 / len(self.classes_))


@pytest.mark.parametrize("model, words", [
    (_Own(), r"_Own cannot be exported to ONNX: skl2onnx has no converter.*Supported: scikit-learn classifiers"),
    (LogisticRegression(), r"LogisticRegression is not a fitted classifier.*fit it first"),
    (LinearRegression(), r"LinearRegression is not a fitted classifier.*regressors are not exported"),
])
def test_a_model_no_converter_supports_is_a_clear_error(model, words, iris, tmp_path, skl2onnx):
    x, y = iris
    if not isinstance(model, LogisticRegression):
        model.fit(x, y)
    with pytest.raises(ValueError, match=words):
        export_estimator(model, 4, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_distilled_classifier_with_a_regressor_student_is_refused(iris, tmp_path):
    x, y = iris
    model = DistilledClassifier(RandomForestClassifier(10, random_state=0), LinearRegression()).fit(x, y)
    with pytest.raises(ValueError, match=r"regressor student \(LinearRegression\).*only classifier students"):
        export_estimator(model, 4, tmp_path / "m.onnx")


def test_wrong_sizes_are_named(iris, tmp_path, skl2onnx):
    x, y = iris
    model = DecisionTreeClassifier(max_depth=2).fit(x, y)
    with pytest.raises(ValueError, match=r"n_features=5 differs from DecisionTreeClassifier's n_features_in_=4"):
        export_estimator(model, 5, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"x_check must hold rows of shape \(n_rows >= 1, 4\), got shape \(150, 3\)"):
        export_estimator(model, 4, tmp_path / "m.onnx", x_check=x[:, :3])


def test_a_corrupted_model_fails_parity_and_leaves_the_old_file(iris, tmp_path, skl2onnx):
    x, y = iris
    model = LogisticRegression(max_iter=500).fit(x, y)
    own = model.predict_proba
    model.predict_proba = lambda rows: own(rows)[:, ::-1]  # its fitted weights no longer say what it predicts
    (tmp_path / "m.onnx").write_bytes(b"earlier export")
    with pytest.raises(ParityError, match=r"LogisticRegression: the ONNX model's probabilities differ from "
                                          r"predict_proba's by up to 0\.\d+, above the tolerance 0\.0001"):
        export_estimator(model, 4, tmp_path / "m.onnx", x_check=x)
    assert (tmp_path / "m.onnx").read_bytes() == b"earlier export"


@pytest.mark.parametrize("kind", BOOSTERS)
def test_boosted_tree_students_round_trip_through_skops(kind, iris, tmp_path):
    x, y = iris
    labels = y if kind == "xgboost" else np.array(["a", "b", "c"])[y]  # XGBoost takes class indices only
    model = BOOSTERS[kind]().fit(x, labels)
    back = load_sklearn(save_sklearn(model, tmp_path / "m.skops"))
    assert type(back) is type(model) and list(back.classes_) == list(model.classes_)
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))
