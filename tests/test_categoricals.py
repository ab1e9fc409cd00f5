"""Native categoricals for boosted trees: one-hot blocks become codes and back, an unseen category
is missing, each booster splits a categorical column whole (which one-hot columns cannot do in one
split), the ONNX file holds the block-to-code step (LightGBM, XGBoost) or is refused by name
(CatBoost), and the wrapper survives a skops round trip."""

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.base import clone

from kdistill.categoricals import NativeCategoricals, codes, for_table
from kdistill.data import table_encoder
from kdistill.export import PROBA_TOLERANCE, export_estimator, session
from kdistill.weights import load_sklearn, save_sklearn

CATEGORIES = list("abcdefghijkl")
IN_CLASS = set("acdhjk")  # the categories of class 1: no single category, so no one-hot column, separates them


def _table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    city = rng.choice(CATEGORIES, n).astype(object)
    frame = pd.DataFrame({"noise": rng.normal(size=n), "city": city, "size": rng.choice(["s", "m", "l"], n)})
    frame.loc[::13, "size"] = None  # a missing value is a category of its own ("nan")
    return frame, np.array([c in IN_CLASS for c in city], dtype=int)


@pytest.fixture(scope="module")
def table():
    frame, y = _table()
    encode = table_encoder()(frame.iloc[:400])
    new = frame.iloc[400:].copy()
    new.loc[new.index[:25], "city"] = "zz"  # a category the encoder never saw: an all-zero block
    return encode(frame.iloc[:400]), y[:400], encode(new), y[400:], encode.layout


def _stump(library):
    """One split of one tree, so only a split on the whole category set can separate the classes."""
    if library == "lightgbm":
        lightgbm = pytest.importorskip("lightgbm")
        return lightgbm.LGBMClassifier(n_estimators=1, num_leaves=2, min_data_per_group=5, cat_smooth=1, n_jobs=1,
                                       verbose=-1)
    if library == "xgboost":
        xgboost = pytest.importorskip("xgboost")
        return xgboost.XGBClassifier(n_estimators=1, max_depth=1, n_jobs=1)
    catboost = pytest.importorskip("catboost")
    return catboost.CatBoostClassifier(iterations=1, depth=1, thread_count=1, verbose=0, allow_writing_files=False)


def _small(library):
    if library == "lightgbm":
        lightgbm = pytest.importorskip("lightgbm")
        return lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, min_data_per_group=5, n_jobs=1, verbose=-1)
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1)


def test_codes_are_the_categories_of_the_blocks_and_come_back_as_them(table):
    x, _, _, _, layout = table
    city = next(g for g in layout if g["name"] == "city")
    c = codes(x, layout)
    assert c.shape == (len(x), len(layout)) and not np.isnan(c).any()
    j = layout.index(city)
    np.testing.assert_array_equal(np.eye(len(city["categories"]))[c[:, j].astype(int)], x[:, slice(*city["columns"])])
    np.testing.assert_array_equal(c[:, 0], x[:, 0])  # a numeric column as it is
    size = next(g for g in layout if g["name"] == "size")
    assert "nan" in size["categories"]  # a missing value seen in training is a category, not missing


def test_a_category_unseen_in_training_is_missing(table):
    _, _, x_new, _, layout = table
    j = next(j for j, g in enumerate(layout) if g["name"] == "city")
    column = codes(x_new, layout)[:, j]
    assert np.isnan(column[:25]).all() and not np.isnan(column[25:]).any()


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_a_booster_splits_a_categorical_column_whole(table, library):
    x, y, x_new, y_new, layout = table
    native = NativeCategoricals(_stump(library), layout).fit(x, y)
    onehot = clone(_stump(library)).fit(x, y)
    known = slice(25, None)  # rows of categories seen in training
    assert (native.predict(x_new[known]) == y_new[known]).mean() > 0.97
    assert (onehot.predict(x_new[known]) == y_new[known]).mean() < 0.8  # one category split off at most
    assert native.n_features_in_ == x.shape[1] and list(native.classes_) == [0, 1]


def test_only_boosters_on_tables_with_categoricals_are_wrapped(table):
    from sklearn.tree import DecisionTreeClassifier

    layout = table[4]
    booster = _small("lightgbm")
    assert isinstance(for_table(booster, layout), NativeCategoricals)
    assert for_table(booster, layout, "onehot") is booster
    assert for_table(booster, [g for g in layout if g["kind"] == "numeric"]) is booster
    assert for_table(booster, None) is booster  # not a table
    tree = DecisionTreeClassifier()
    assert for_table(tree, layout) is tree
    with pytest.raises(ValueError, match=r"categoricals must be 'native' .* or 'onehot' .* got 'one-hot'"):
        for_table(booster, layout, "one-hot")


def test_an_xgboost_that_cannot_split_on_categories_keeps_the_one_hot_columns(table, caplog):
    """XGBoost's exact tree method has no categorical splits: wrapped, its fit raised XGBoost's
    own 'not implemented for current tree method', naming nothing of kdistill's."""
    pytest.importorskip("xgboost")
    x, y, layout = table[0], table[1], table[4]
    exact = _small("xgboost").set_params(tree_method="exact")
    assert for_table(exact, layout) is exact
    assert "tree_method='exact'" in caplog.text and "one-hot columns" in caplog.text
    assert exact.fit(x, y).predict(x).shape == y.shape


def test_bad_inputs_are_named(table):
    x, y, _, _, layout = table
    with pytest.raises(TypeError, match="estimator must be one of lightgbm.LGBMClassifier.*got DecisionTree"):
        from sklearn.tree import DecisionTreeClassifier

        NativeCategoricals(DecisionTreeClassifier(), layout).fit(x, y)
    with pytest.raises(ValueError, match=rf"X must have the layout's {x.shape[1]} columns .* got shape \(400, 3\)"):
        NativeCategoricals(_small("lightgbm"), layout).fit(x[:, :3], y)


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_the_onnx_file_takes_the_one_hot_rows_and_matches_on_unseen_categories(table, library, tmp_path):
    pytest.importorskip("onnxmltools")
    x, y, x_new, _, layout = table
    model = NativeCategoricals(_small(library), layout).fit(x, y)
    report = export_estimator(model, x.shape[1], tmp_path / "m.onnx", x_check=x_new)
    assert report["parity"] <= PROBA_TOLERANCE
    sess = session(str(tmp_path / "m.onnx"))
    assert sess.get_inputs()[0].shape[1] == x.shape[1]
    p = sess.run(["probabilities"], {"input": x_new[:25].astype(np.float32)})[0]  # unseen categories only
    np.testing.assert_allclose(p, model.predict_proba(x_new[:25]), atol=PROBA_TOLERANCE)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    proto.graph.output.append(onnx.helper.make_tensor_value_info("kd_codes", onnx.TensorProto.FLOAT, None))
    graph_codes = session(proto.SerializeToString()).run(["kd_codes"], {"input": x_new.astype(np.float32)})[0]
    np.testing.assert_array_equal(graph_codes, codes(x_new, layout))  # NaN where the city was unseen


def test_catboost_with_native_categoricals_is_refused_by_name(table, tmp_path):
    x, y, _, _, layout = table
    model = NativeCategoricals(_stump("catboost"), layout).fit(x, y)
    with pytest.raises(ValueError, match=r"NativeCategoricals\(CatBoostClassifier\) cannot be exported to ONNX: "
                                         r"CatBoost's ONNX writer does not support categorical features; .*"
                                         r"categoricals='onehot'"):
        export_estimator(model, x.shape[1], tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_skops_round_trip(table, tmp_path):
    x, y, x_new, _, layout = table
    model = NativeCategoricals(_small("lightgbm"), layout).fit(x, y)
    loaded = load_sklearn(save_sklearn(model, tmp_path / "m.skops"))
    np.testing.assert_array_equal(loaded.predict_proba(x_new), model.predict_proba(x_new))
