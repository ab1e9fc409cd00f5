"""Before a teacher teaches, the study checks it on validation: a collapsed teacher teaches no
student on that seed, a teacher no better than the student alone is named, and so is any model
that predicts a single class."""

import json

import torch
from torch import nn

from kdistill.data import split_arrays
from kdistill.models import mlp
from kdistill.study import ModelSpec, run_study


def _data(seed):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(150) % 3
    x = torch.randn(150, 4, generator=g) + 3 * nn.functional.one_hot(y, 4).float()
    return split_arrays(x.numpy(), y.numpy(), ["a", "b", "c"], seed=seed)


class OneClass(nn.Module):
    """A collapsed teacher: the same class for every input."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0, 5.0, 0.0]))

    def forward(self, x):
        return self.bias + 0 * x[:, :1]


def _students():
    return [ModelSpec("alone", lambda s, k: mlp(s, k, hidden=[8]), train={"epochs": 3, "lr": 0.05}),
            ModelSpec("kd", lambda s, k: mlp(s, k, hidden=[8]), objective=[("ce", 0.5), ("kd", 0.5)],
                      train={"epochs": 3, "lr": 0.05})]


def test_a_collapsed_teacher_teaches_no_student_and_the_report_says_why(tmp_path):
    teacher = ModelSpec("teacher", lambda s, k: OneClass(), fit=False)
    results = run_study(_data, teacher, _students(), out=tmp_path, seeds=(0, 1), quiet=True)
    assert [m["name"] for m in results["models"]] == ["teacher", "alone"]  # no distilled student on any seed
    assert results["comparisons"] == []
    checks = results["teacher_checks"]
    assert [c["collapsed"] for c in checks] == [True, True] and checks[0]["top_class"] == "b"
    assert "it has collapsed" in results["warnings"][0] and "no student is distilled from it" in results["warnings"][0]
    assert any("teacher predicts one class ('b') for every test sample" in w for w in results["warnings"])
    assert not list((tmp_path / "weights").glob("kd-*"))
    from kdistill.report import write_report

    md, _ = write_report(tmp_path)
    text = md.read_text()
    assert "Was the teacher fit to teach?" in text and "collapsed: no distilled students" in text


def test_a_teacher_no_better_than_the_student_alone_is_named(tmp_path):
    def untrained(shape, k):
        torch.manual_seed(3)
        return nn.Sequential(nn.Linear(4, 3))

    teacher = ModelSpec("teacher", untrained, fit=False)
    results = run_study(_data, teacher, _students(), out=tmp_path, seeds=(0,), quiet=True)
    check = results["teacher_checks"][0]
    assert not check["collapsed"] and check["teacher_accuracy"] <= check["alone_accuracy"]
    assert "is no better than the student alone's" in results["warnings"][0]
    assert [m["name"] for m in results["models"]] == ["teacher", "alone", "kd"]  # it still teaches, named


def test_a_good_teacher_passes_silently_and_every_model_reports_the_epoch_kept(tmp_path):
    teacher = ModelSpec("teacher", lambda s, k: mlp(s, k, hidden=[32]), train={"epochs": 8, "lr": 0.05})
    results = run_study(_data, teacher, _students(), out=tmp_path, seeds=(0,), quiet=True)
    assert results["warnings"] == [] and results["teacher_checks"][0]["message"] is None
    for model in results["models"]:
        seed = model["per_seed"][0]
        assert 1 <= seed["epoch_kept"] <= seed["epochs_trained"]
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    teacher_val = [r["val_accuracy"] for r in history if r["model"] == "teacher"]
    assert results["models"][0]["per_seed"][0]["epoch_kept"] == teacher_val.index(max(teacher_val)) + 1
