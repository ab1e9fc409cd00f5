"""Saving and loading without pickle: round trips, untrusted types, and files of the wrong kind."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeRegressor

from kdistill.cli import main
from kdistill.models import mlp
from kdistill.sklearn import DistilledClassifier
from kdistill.weights import file_kind, load_sklearn, load_weights, rebuild, save_sklearn, save_weights


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


# ---------------------------------------------------------------------------------------------
# Rebuilding a model from its weights file: nothing in the file chooses code


def _with_info(tmp_path, info, model=None, name="w.safetensors"):
    return save_weights(model or mlp(4, 2, hidden=(8,)), tmp_path / name, info)


GOOD = {"arch": {"model": "mlp", "options": {"hidden": [8]}}, "input_shape": [4], "classes": ["a", "b"]}


@pytest.mark.parametrize("arch", ["subprocess:run", "shutil:rmtree"])
def test_a_weights_file_naming_any_callable_never_runs_it(tmp_path, capsys, arch):
    marker, victim = tmp_path / "marker", tmp_path / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("mine")
    options = ({"args": f"touch {marker}", "shell": True} if arch == "subprocess:run" else {"path": str(victim)})
    path = _with_info(tmp_path, {**GOOD, "arch": {"model": arch, "options": options}})
    assert main(["export", str(path), "--out", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert f"its metadata names the model '{arch}', which is not in kdistill's zoo (mlp, cnn); a weights file never " \
           f"chooses code to run" in err and f"kdistill export --model {arch}" in err
    assert not marker.exists() and (victim / "data.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="not in kdistill's zoo"):
        rebuild(path)
    assert not marker.exists() and victim.is_dir()


def test_another_architecture_needs_its_factory_named_by_the_caller(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text("from kdistill.models import mlp\n\n"
                                        "def make(input_shape, num_classes, width=8):\n"
                                        "    return mlp(input_shape, num_classes, hidden=(width,))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    net = mlp(4, 2, hidden=(8,))
    path = _with_info(tmp_path, {**GOOD, "arch": {"model": "mynets:make", "options": {"width": 8}}}, net)
    with pytest.raises(ValueError, match="not in kdistill's zoo"):
        rebuild(path)
    model, info = rebuild(path, factory="mynets:make")
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), net.eval()(x))
    assert info["arch"]["model"] == "mynets:make"
    assert main(["export", str(path), "--model", "mynets:make", "--out", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "w.onnx").is_file()


@pytest.mark.parametrize("change, message", [
    ({"arch": None}, r"metadata field 'arch' is missing; it must be a mapping \{\"model\": NAME"),
    ({"arch": "mlp"}, r"metadata field 'arch' is 'mlp'; it must be a mapping"),
    ({"arch": {"model": "mlp", "code": "x"}}, r"metadata field 'arch' is \{'model': 'mlp', 'code': 'x'\}"),
    ({"input_shape": None}, r"metadata field 'input_shape' is missing; it must be a list of 1 to 4 positive"),
    ({"input_shape": ["4"]}, r"metadata field 'input_shape' is \['4'\]; it must be a list of 1 to 4 positive"),
    ({"input_shape": [-4]}, r"metadata field 'input_shape' is \[-4\]"),
    ({"classes": ["a"]}, r"metadata field 'classes' is \['a'\]; it must be a list of at least 2 class names"),
    ({"arch": {"model": "mlp", "options": {"hidden": "abc"}}},
     r"the model its metadata describes \('mlp' with options \{'hidden': 'abc'\}\) cannot be built: hidden must be"),
    ({"arch": {"model": "mlp", "options": {"depth": 3}}},
     r"the model .* cannot be built: .*unexpected keyword argument"),
    ({"arch": {"model": "mlp", "options": {"hidden": [10**9]}}},
     r"the weights do not fit the model their metadata describes: of another shape"),
])
def test_weights_metadata_is_checked_against_its_schema(tmp_path, change, message):
    info = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = _with_info(tmp_path, info)
    with pytest.raises(ValueError, match=rf"{path.name}: {message}"):
        rebuild(path)


def test_weights_metadata_that_is_not_json_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in mlp(4, 2).state_dict().items()}, tmp_path / "w.safetensors",
              metadata={"kdistill": "{not json"})
    with pytest.raises(ValueError, match=r"w.safetensors: its kdistill metadata is not valid JSON"):
        rebuild(tmp_path / "w.safetensors")
