"""Teacher adapters: torch, scikit-learn, ONNX, callable and ensemble, and the class-order check."""

import copy
import logging
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from torch import nn

import kdistill
from kdistill.data import split_arrays
from kdistill.teachers import (
    PROB_EPS,
    CallableTeacher,
    EnsembleTeacher,
    OnnxTeacher,
    SklearnTeacher,
    TorchTeacher,
    as_teacher,
    check_classes,
)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    y = np.repeat(np.arange(3), 40)
    x = (centers[y] + rng.normal(size=(120, 4))).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def logreg(blobs):
    return LogisticRegression(max_iter=500).fit(*blobs)


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_torch_teacher_logits_feed_the_students_graph():
    teacher = as_teacher(small_net())
    student = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    logits_t = teacher.logits(x)
    assert not logits_t.is_inference()
    kdistill.kd_loss(student(x), logits_t, 2.0).backward()
    assert student.weight.grad is not None
    assert all(not p.requires_grad for p in teacher.module.parameters())


def test_torch_teacher_returning_probabilities_gives_their_log():
    net = nn.Sequential(small_net(), nn.Softmax(dim=1))
    x = torch.randn(6, 4)
    logits = TorchTeacher(net, output="probabilities").logits(x)
    torch.testing.assert_close(logits, torch.log(net(x)))


def test_sklearn_teacher_gives_clamped_log_probabilities(logreg, blobs):
    x = torch.as_tensor(blobs[0][:7])
    teacher = as_teacher(logreg)
    expected = np.log(np.maximum(logreg.predict_proba(blobs[0][:7]), PROB_EPS))
    out = teacher.logits(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert teacher.classes == [0, 1, 2]


def test_sklearn_teacher_flattens_images(logreg, blobs):
    x = torch.as_tensor(blobs[0][:3]).reshape(3, 1, 2, 2)
    np.testing.assert_allclose(as_teacher(logreg).logits(x).numpy(),
                               as_teacher(logreg).logits(x.reshape(3, 4)).numpy())


def test_sklearn_teacher_must_be_fitted_and_give_probabilities(blobs):
    with pytest.raises(NotFittedError):
        as_teacher(LogisticRegression())
    with pytest.raises(TypeError, match="predict_proba"):
        SklearnTeacher(SVC().fit(*blobs))
    with pytest.raises(ValueError, match="output='logits'"):
        as_teacher(LogisticRegression().fit(*blobs), output="logits")


@pytest.fixture
def onnx_file(tmp_path):
    net = small_net(1)
    path = tmp_path / "teacher.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no onnxscript
        torch.onnx.export(net, (torch.randn(2, 4),), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return net, path


def test_onnx_teacher_matches_the_torch_model(onnx_file):
    net, path = onnx_file
    x = torch.randn(9, 4)
    teacher = as_teacher(path, classes=["a", "b", "c"])
    assert isinstance(teacher, OnnxTeacher) and teacher.classes == ["a", "b", "c"]
    torch.testing.assert_close(teacher.logits(x), net(x).detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(copy.deepcopy(teacher).logits(x), teacher.logits(x))


def test_onnx_teacher_errors(onnx_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="no file"):
        as_teacher(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        as_teacher(junk)
    with pytest.raises(ValueError, match="output_name='nope'.*outputs: logits"):
        OnnxTeacher(onnx_file[1], output_name="nope")


def test_callable_teacher_needs_its_output_kind(blobs):
    def service(x):
        return np.full((len(x), 3), 1 / 3)

    with pytest.raises(ValueError, match="output is required.*logits, probabilities"):
        as_teacher(service)
    with pytest.raises(ValueError, match="output must be one of logits, probabilities, got 'probs'"):
        as_teacher(service, output="probs")
    teacher = as_teacher(service, output="probabilities")
    assert isinstance(teacher, CallableTeacher)
    torch.testing.assert_close(teacher.logits(torch.zeros(2, 4)), torch.full((2, 3), float(np.log(1 / 3))))


def test_callable_teacher_returning_tensors_and_zero_probabilities():
    teacher = as_teacher(lambda x: torch.tensor([[1.0, 0.0]] * len(x)), output="probabilities")
    out = teacher.logits(torch.zeros(3, 2))
    assert torch.isfinite(out).all() and out[0, 1] == pytest.approx(np.log(PROB_EPS))


def test_declared_probabilities_that_are_not_any_are_rejected():
    teacher = as_teacher(lambda x: np.ones((len(x), 3)), output="probabilities")
    with pytest.raises(ValueError, match="not probability distributions.*row sums from 3"):
        teacher.logits(torch.zeros(2, 4))


def test_ensemble_logits_are_log_of_weighted_tempered_mean(logreg, blobs):
    net = small_net()
    x = torch.as_tensor(blobs[0][:5])
    ens = EnsembleTeacher([logreg, net], weights=[3, 1], temperatures=[1.0, 2.0])
    p1 = logreg.predict_proba(blobs[0][:5])
    p2 = F.softmax(net(x) / 2.0, dim=1).detach().numpy()
    expected = np.log(0.75 * np.maximum(p1, PROB_EPS) / np.maximum(p1, PROB_EPS).sum(1, keepdims=True) + 0.25 * p2)
    np.testing.assert_allclose(ens.logits(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert ens.classes == [0, 1, 2]


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": [1]}, "weights must have one value per teacher"),
    ({"weights": [1, -1]}, "weights must be finite and >= 0"),
    ({"weights": [0, 0]}, "must not all be zero"),
    ({"temperatures": [1, 0]}, "temperatures must be finite and > 0"),
])
def test_ensemble_rejects_bad_weights_and_temperatures(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnsembleTeacher([small_net(0), small_net(1)], **kwargs)


def test_ensemble_members_must_agree_on_classes(logreg):
    with pytest.raises(ValueError, match="disagree on their classes"):
        EnsembleTeacher([logreg, as_teacher(small_net(), classes=["a", "b", "c"])])
    with pytest.raises(ValueError, match="at least one teacher"):
        EnsembleTeacher([])


def test_as_teacher_errors():
    with pytest.raises(TypeError, match="cannot use int as a teacher"):
        as_teacher(3)
    with pytest.raises(ValueError, match="already a Teacher"):
        as_teacher(as_teacher(small_net()), classes=[0, 1, 2])


@pytest.mark.parametrize("teacher_classes", [["a", "b", "c"], [0, 1, 2], np.array(["a", "b", "c"])])
def test_check_classes_accepts_names_or_indices(teacher_classes):
    check_classes(teacher_classes, ["a", "b", "c"])


def test_check_classes_refuses_a_permutation_or_other_classes():
    with pytest.raises(ValueError, match="in another order: teacher \\['b', 'a', 'c'\\], data \\['a', 'b', 'c'\\]"):
        check_classes(["b", "a", "c"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="do not match"):
        check_classes(["a", "b", "d"], ["a", "b", "c"])


def test_engine_refuses_a_teacher_with_classes_in_another_order(blobs):
    x, y = blobs
    names = np.array(["cat", "ant", "bee"])  # scikit-learn sorts these: ant, bee, cat
    forest = LogisticRegression(max_iter=200).fit(x, names[y])
    data = split_arrays(x, y, list(names), seed=0)
    with pytest.raises(ValueError, match="another order"):
        kdistill.distill(forest, kdistill.models.mlp(4, 3, hidden=(8,)), data, epochs=1, quiet=True)


def test_ensemble_of_mixed_teachers_trains_a_student(logreg, blobs):
    data = split_arrays(*blobs, ["a", "b", "c"], seed=0)
    ens = EnsembleTeacher([logreg, as_teacher(lambda x: logreg.predict_proba(x), output="probabilities")])
    student = kdistill.models.mlp(4, 3, hidden=(16,))
    history = kdistill.distill(ens, student, data, epochs=15, lr=1e-2, quiet=True)
    assert history.epochs[-1]["val_accuracy"] > 0.8


def test_frozen_torch_teacher_survives_pickling_and_stays_in_eval():
    net = nn.Sequential(small_net(), nn.Dropout(0.5))
    teacher = pickle.loads(pickle.dumps(as_teacher(net)))
    teacher.module.train()
    assert not teacher.module[1].training
    x = torch.randn(4, 4)
    torch.testing.assert_close(teacher.logits(x), teacher.logits(x))


def test_onnx_teacher_with_double_input(tmp_path):
    net = small_net(2).double()
    path = tmp_path / "double.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.randn(2, 4, dtype=torch.float64),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    x = torch.randn(3, 4)
    torch.testing.assert_close(as_teacher(path).logits(x), net(x.double()).float().detach(), rtol=1e-4, atol=1e-5)


def test_probabilities_given_as_logits_are_named_in_a_warning(caplog):
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    teacher = as_teacher(net)  # declared as logits (the default)
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        teacher.logits(torch.randn(8, 4))
        teacher.logits(torch.randn(8, 4))
    assert caplog.text.count("rows look like probabilities") == 1 and "output='probabilities'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        as_teacher(small_net()).logits(torch.randn(8, 4))
        as_teacher(net, output="probabilities").logits(torch.randn(8, 4))
    assert "probabilities" not in caplog.text


def test_as_teacher_takes_the_onnx_output_name(onnx_file):
    net, path = onnx_file
    x = torch.randn(5, 4)
    torch.testing.assert_close(as_teacher(path, output_name="logits").logits(x), net(x).detach(), rtol=1e-4,
                               atol=1e-5)
    with pytest.raises(ValueError, match="output_name='nope' is not an output"):
        as_teacher(path, output_name="nope")
    with pytest.raises(ValueError, match="output_name= names an output of an ONNX model; Linear is not one"):
        as_teacher(torch.nn.Linear(4, 3), output_name="logits")
