"""Saving and loading without pickle: round trips, untrusted types, and files of the wrong kind."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeRegressor

from kdistill.models import mlp
from kdistill.sklearn import DistilledClassifier
from kdistill.weights import file_kind, load_sklearn, load_weights, save_sklearn, save_weights


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture
def files(tmp_path, iris):
    model = DistilledClassifier(RandomForestClassifier(n_estimators=5, random_state=0),
                                DecisionTreeRegressor(max_depth=3, random_state=0)).fit(*iris)
    net = mlp(4, 3, hidden=(8,))
    return model, save_sklearn(model, tmp_path / "model.skops"), net, save_weights(net, tmp_path / "net.safetensors")


def test_distilled_classifier_round_trip(files, iris):
    model, path, _, _ = files
    loaded = load_sklearn(path)
    np.testing.assert_array_equal(loaded.predict_proba(iris[0]), model.predict_proba(iris[0]))
    assert loaded.fidelity_ == model.fidelity_
    assert file_kind(path) == "skops"


def test_weights_round_trip(files):
    _, _, net, path = files
    fresh = mlp(4, 3, hidden=(8,))
    x = torch.randn(5, 4)
    assert not torch.equal(fresh(x), net(x))
    assert load_weights(fresh, path) == []  # nothing kept fresh
    torch.testing.assert_close(fresh(x), net(x), rtol=0, atol=0)
    assert file_kind(path) == "safetensors"


def test_loading_the_wrong_kind_of_file_is_an_error(files, tmp_path):
    _, skops_path, net, weights_path = files
    with pytest.raises(ValueError, match="is not a skops file: it holds torch weights: load them with load_weights"):
        load_sklearn(weights_path)
    with pytest.raises(ValueError, match="is not a weights file: it holds a scikit-learn model: load it with "
                                         "load_sklearn"):
        load_weights(net, skops_path)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="neither a skops nor a safetensors file"):
        load_sklearn(pickled)
    with pytest.raises(FileNotFoundError, match="no file"):
        load_weights(net, tmp_path / "missing.safetensors")


def test_untrusted_types_are_named_and_can_be_trusted(tmp_path, iris):
    path = save_sklearn(KNeighborsClassifier(metric="manhattan").fit(*iris), tmp_path / "knn.skops")
    with pytest.raises(ValueError, match="not trusted: sklearn.metrics._dist_metrics.ManhattanDistance64"):
        load_sklearn(path)
    loaded = load_sklearn(path, trusted=["sklearn.metrics._dist_metrics.ManhattanDistance64"])
    assert loaded.score(*iris) > 0.9


def test_weights_of_another_model_are_an_error(files):
    with pytest.raises(ValueError, match="do not fit Sequential"):
        load_weights(mlp(4, 3, hidden=(16,)), files[3])
