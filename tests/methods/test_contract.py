"""The contract every registered method keeps, checked through the one training loop."""

import copy

import pytest
import torch

import kdistill
from kdistill import methods
from kdistill.data import ArrayDataset, Splits
from kdistill.engine import fit
from kdistill.models import cnn
from kdistill.modes import Cohort, WithHeads
from kdistill.teachers import Teacher

SHAPE, K = (1, 8, 8), 3
TAPS = ["features.3", "features.7"]


def case(name):
    """The case a method declares beside itself: its options and what kind of student it trains."""
    cls = methods.method_class(name)
    return cls.example, cls.example_student


def tiny_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *SHAPE, generator=g)
    y = torch.arange(n) % K
    return Splits(ArrayDataset(x, y), ArrayDataset(x[:12], y[:12]), None, ["a", "b", "c"])


def student_for(name):
    """The contract case's student: a tiny CNN, two of them as peers, or one with heads."""
    kind = case(name)[1]
    torch.manual_seed(1)
    if kind == "peers":
        return Cohort([cnn(SHAPE, K, channels=(4, 8), hidden=8) for _ in range(2)])
    model = cnn(SHAPE, K, channels=(4, 8), hidden=8)
    return WithHeads(model, TAPS, K, SHAPE) if kind == "heads" else model


def teacher_net():
    torch.manual_seed(0)
    return cnn(SHAPE, K, channels=(8, 16, 16), hidden=16)


def test_the_shipped_methods_are_registered_and_each_declares_a_case():
    assert {"ce", "kd", "dkd", "dist", "fitnet", "at", "fsp", "rkd", "sp", "pkt", "dml", "byot"} <= set(
        methods.available())
    for name in methods.available():
        options, kind = case(name)
        assert isinstance(options, dict) and kind in ("model", "peers", "heads"), name


class Probe:
    """Records, after each optimizer step, which parameters received a gradient."""

    def __init__(self, student, method, teacher):
        self.student, self.method, self.teacher, self.records = student, method, teacher, []

    def on_batch_end(self, state):
        self.records.append({
            "student": [p.grad for p in self.student.parameters()],
            "connectors": [p.grad for p in self.method.parameters()],
            "teacher": [p.grad for p in self.teacher.parameters()] if self.teacher is not None else [],
        })


@pytest.mark.parametrize("name", methods.available())
def test_method_contract(name):
    method = methods.build(name, **case(name)[0])
    outputs = []
    forward = method.forward
    method.forward = lambda step: outputs.append(forward(step)) or outputs[-1]
    student = student_for(name)
    teacher = teacher_net() if method.needs_teacher else None
    before = copy.deepcopy(teacher.state_dict()) if teacher is not None else {}
    start = copy.deepcopy(student.state_dict())
    probe = Probe(student, method, teacher)
    fit(student, tiny_data(), objective=[method], teacher=teacher, callbacks=[probe], epochs=2, batch_size=16,
        lr=1e-2)

    assert all(v.ndim == 0 and torch.isfinite(v) for v in outputs)
    for rec in probe.records:
        assert any(g is not None and g.abs().sum() > 0 for g in rec["student"])
        assert all(g is not None and torch.isfinite(g).all() for g in rec["connectors"])
        assert all(g is None for g in rec["teacher"])
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in start.items())
    if teacher is not None:
        assert not teacher.training and not any(m.training for m in teacher.modules())
        after = teacher.state_dict()
        assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_connectors_are_shaped_by_the_dry_run_and_trained_with_the_student():
    method = methods.build("fitnet", student="features.3", teacher="features.7")
    initial = []

    class Snapshot:
        def on_fit_start(self, state):
            initial.append(method.connectors[0].weight.detach().clone())

    fit(student_for("fitnet"), tiny_data(), objective=[method], teacher=teacher_net(), callbacks=[Snapshot()],
        epochs=1, batch_size=16)
    conv = method.connectors[0]
    assert isinstance(conv, torch.nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (4, 16, (1, 1))
    assert not torch.equal(initial[0], conv.weight)


def test_issue_objective_shape_through_distill():
    objective = [("kd", 0.9, {"temperature": 4}),
                 ("fitnet", 100.0, {"student": "features.3", "teacher": "features.10"})]
    history = kdistill.distill(teacher_net(), student_for("fitnet"), tiny_data(), objective=objective, epochs=1,
                               batch_size=16)
    record = history.epochs[-1]
    assert {"train_kd", "train_fitnet", "val_kd", "val_fitnet"} <= set(record)
    assert record["train_fitnet"] > 0


def test_wrong_tap_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"no submodule named 'features\.99'.*valid names: features, features\.0"):
        fit(student_for("fitnet"), tiny_data(), objective=[("fitnet", 1.0, {"student": "features.99",
                                                                           "teacher": "features.3"})],
            teacher=teacher_net(), epochs=1)


class LogitsOnly(Teacher):
    def logits(self, x, index=None):
        return torch.zeros(len(x), K)


def test_teacher_without_module_cannot_give_features():
    with pytest.raises(ValueError, match=r"taps teacher features \['features\.3'\].*LogitsOnly"):
        fit(student_for("at"), tiny_data(), objective=[("at", 1.0, {"student": "features.3", "teacher": "features.3"})],
            teacher=LogitsOnly(), epochs=1)


@pytest.mark.parametrize("name, options, message", [
    ("fitnet", {}, "student must be a module name"),
    ("at", {"student": ["a", "b"], "teacher": "a"}, "2 student and 1 teacher"),
    ("fsp", {"student": "a", "teacher": "b"}, "at least 2 layers"),
    ("dkd", {"beta": -1.0}, "beta must be a finite number >= 0, got -1.0"),
    ("dml", {"peers": ["peers.0"]}, "at least 2 module names"),
    ("byot", {"alpha": 2.0}, r"alpha must lie in \[0, 1\]"),
])
def test_bad_options_are_named(name, options, message):
    with pytest.raises(ValueError, match=message):
        methods.build(name, **options)


def test_resume_restores_the_connectors(tmp_path):
    objective = [("ce", 1.0), ("fitnet", 1.0, {"student": "features.3", "teacher": "features.7"})]
    opts = {"objective": objective, "epochs": 2, "batch_size": 16, "checkpoint_dir": str(tmp_path)}
    full = student_for("fitnet")
    fit(full, tiny_data(), teacher=teacher_net(), **opts)
    first = student_for("fitnet")
    fit(first, tiny_data(), teacher=teacher_net(), **{**opts, "epochs": 1, "checkpoint_dir": str(tmp_path / "r")})
    resumed = student_for("fitnet")
    fit(resumed, tiny_data(), teacher=teacher_net(), **{**opts, "checkpoint_dir": str(tmp_path / "r"), "resume": True})
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())
