"""kdistill.shrink: budgets checked and resolved, the search from Python and from an experiment
file, students pruned from the teacher in compare and in experiment files."""

import json

import pytest
import torch

import kdistill
from kdistill.cli import main
from kdistill.models import mlp
from kdistill.shrink.budget import check_budget
from kdistill.shrink.measure import resolve
from kdistill.weights import rebuild


@pytest.mark.parametrize("budget, message", [
    ({"parameters": 0.1}, r"unknown key\(s\) \['parameters'\]; allowed: params, macs, size, size_mb"),
    ({"params": 0.1, "macs": 0.1}, "give exactly one measure"),
    ({"params": -1}, r"budget.params = -1: must be a positive number"),
    ({"size": 2}, r"budget.size = 2: a share of the teacher's figure, so at most 1"),
    ({"params": 0.1, "batch": 4}, "budget.batch applies to a latency budget"),
    ({"latency_ms": 0.2, "batch": 0}, r"budget.batch = 0: must be an integer from 1 to 4096"),
    ("0.1", "budget must be a mapping"),
])
def test_a_bad_budget_is_named(budget, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_budget(budget)


def test_a_budget_is_a_share_or_an_absolute_figure(teacher):
    params = sum(p.numel() for p in teacher.parameters())
    assert resolve({"params": 0.1}, teacher, (5,)).limit == pytest.approx(0.1 * params)
    assert resolve({"params": 500}, teacher, (5,)).limit == 500
    assert resolve({"size_mb": 0.002}, teacher, (5,)).limit == 2000
    latency = resolve({"latency": 0.5, "batch": 8}, teacher, (5,))
    assert latency.measure == "latency_ms" and latency.batch == 8 and latency.share == 0.5 and latency.limit > 0


def test_shrink_from_python_hands_back_the_front_the_chosen_student_and_its_comparison(blobs, tmp_path):
    torch.manual_seed(0)
    teacher = mlp(5, 3, hidden=[64, 64])
    kdistill.fit(teacher, blobs, epochs=3, quiet=True)
    out = kdistill.shrink(teacher, blobs, budget={"params": 0.2}, family={"model": "mlp", "options": {"hidden": [32]}},
                          importance="taylor", epochs=2, out=tmp_path / "run", quiet=True)
    limit = out["budget"]["limit"]
    kinds = sorted(r["kind"] for r in out["candidates"])
    assert kinds == ["family", "family", "pruned", "pruned"]
    assert all(r["figure"] <= limit for r in out["candidates"])
    assert out["chosen"]["name"] in {r["name"] for r in out["candidates"]}
    assert out["chosen"]["params"] <= limit and 0 < out["chosen"]["test_accuracy"] <= 1
    assert out["cost"]["epochs"] <= 2 * len(out["candidates"])
    folder = tmp_path / "run"
    for name in ("pareto.md", "pareto.png", "shrink.json", "results.json", "report.md"):
        assert (folder / name).is_file(), name
    results = json.loads((folder / "results.json").read_text())
    names = [m["name"] for m in results["models"]]
    assert names == ["teacher", f"{out['chosen']['name']} alone", f"{out['chosen']['name']} (distilled)"]
    assert results["comparisons"][0]["baseline"] == f"{out['chosen']['name']} alone"
    assert out["references"][0]["name"] == f"{out['chosen']['name']} alone"


def test_kdistill_shrink_on_an_experiment_file_saves_a_student_that_rebuilds(tiny, write_experiment, tmp_path):
    tiny["student"] = {"model": "mlp", "options": {"hidden": [8]}, "shrink": {"budget": {"params": 0.3}}}
    out = tmp_path / "shrunk"
    assert main(["shrink", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "shrink.json").read_text())
    chosen = summary["chosen"]["name"]
    weights = next(p for p in (out / "weights").iterdir() if "distilled" in p.name)
    model, info = rebuild(weights)
    assert sum(p.numel() for p in model.parameters()) == summary["chosen"]["params"]
    assert ("shapes" in info["arch"]) == chosen.startswith("pruned")
    assert any(r["kind"] == "family" and r["options"]["hidden"] for r in summary["candidates"])


@pytest.mark.parametrize("command", ["run", "tune"])
def test_run_and_tune_refuse_a_shrink_section_before_any_folder(tiny, write_experiment, tmp_path, capsys, command):
    """Without the refusal they would train the family's first model and never search."""
    tiny["student"] = {"model": "mlp", "options": {"hidden": [8]}, "shrink": {"budget": {"params": 0.3}}}
    out = tmp_path / "refused"
    assert main([command, str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"student.shrink is the search of `kdistill shrink`, which `kdistill {command}` does not run" in err, err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("student, where, message", [
    ({"shrink": {"budget": {"params": 0}}}, "student.shrink.budget", "budget.params = 0: must be a positive number"),
    ({"shrink": {"budget": {"params": 0.1}, "choose": "smallest"}}, "student.shrink.tolerance",
     "choose: smallest needs a tolerance"),
    ({"shrink": {"budget": {"params": 0.1}, "family": {"model": "mlp", "options": {"hidden": [8]}, "width": ["x"]}}},
     "student.shrink.family", "family.width = ['x']"),
    ({"from_teacher": {"prune": 1.5}}, "student.from_teacher.prune", "less than 1"),
    ({"from_teacher": {"prune": 0.5, "importance": "random"}}, "student.from_teacher.importance", "magnitude"),
])
def test_bad_shrink_and_from_teacher_sections_are_named(tiny, write_experiment, capsys, student, where, message):
    tiny["student"] = student
    assert main(["validate", str(write_experiment(tiny))]) == 2
    err = capsys.readouterr().err
    assert where in err and message in err, err


def test_from_teacher_needs_a_pytorch_teacher(tiny, write_experiment, capsys):
    tiny["teacher"] = {"model": "sklearn.tree:DecisionTreeClassifier", "options": {"max_depth": 3}}
    tiny["students"][1]["from_teacher"] = {"prune": 0.5}
    assert main(["validate", str(write_experiment(tiny))]) == 2
    assert "students.1.from_teacher: a student from_teacher is a pruned copy of a PyTorch teacher" in \
        capsys.readouterr().err


def test_from_teacher_in_an_experiment_inherits_the_teachers_weights(tiny, tmp_path):
    tiny["students"] = [{"name": "pruned alone", "from_teacher": {"prune": 0.6, "weights": "fresh"},
                         "methods": [{"name": "ce"}]},
                        {"name": "pruned kd", "from_teacher": {"prune": 0.6},
                         "methods": tiny["students"][1]["methods"]}]
    exp = kdistill.config.validate(tiny, base=tmp_path)
    results, folder = kdistill.run_experiment(exp, tmp_path / "run", quiet=True)
    models = {m["name"]: m for m in results["models"]}
    assert models["pruned kd"]["params"] == models["pruned alone"]["params"] <= 0.4 * models["teacher"]["params"]
    assert results["comparisons"][0]["baseline"] == "pruned alone"
    again, info = rebuild(folder / "weights" / "pruned-kd-seed0.safetensors")
    assert info["arch"]["model"] == "mlp"
    assert sum(p.numel() for p in again.parameters()) == models["pruned kd"]["params"]


def test_compare_takes_a_student_pruned_from_the_teacher(blobs, teacher, tmp_path):
    kdistill.fit(teacher, blobs, epochs=2, quiet=True)
    results = kdistill.compare(teacher, {"pruned": kdistill.FromTeacher(prune=0.7)}, blobs, out=tmp_path / "c",
                               epochs=1, quiet=True)
    models = {m["name"]: m for m in results["models"]}
    assert set(models) == {"teacher", "pruned", "pruned alone"}
    assert models["pruned"]["params"] == models["pruned alone"]["params"] <= 0.3 * models["teacher"]["params"]
    assert models["pruned alone"]["hyperparams"]["weights"] == "fresh"
    assert models["pruned"]["hyperparams"]["weights"] == "inherit"


def test_tune_searches_recipes_for_a_student_pruned_from_the_teacher(tiny, write_experiment, tmp_path):
    """The sweep's trials and its answer train the pruned architecture (inherited weights when
    distilled, fresh ones for the student alone), never the student section's own MLP."""
    tiny["student"] = {"from_teacher": {"prune": 0.6}}
    tiny["teacher"]["train"] = {"epochs": 4}
    tiny["tune"] = {"methods": ["kd"], "steps": [10, 20], "baseline_trials": 1, "top": 1, "repeats": 2}
    out = tmp_path / "sweep"
    assert main(["tune", str(write_experiment(tiny)), "--out", str(out), "--quiet", "--trials", "2"]) == 0
    results = json.loads((out / "results.json").read_text())
    params = {m["name"]: m["params"] for m in results["models"]}
    teacher = params.pop("teacher")
    assert len(params) == 2 and all(p == next(iter(params.values())) <= 0.4 * teacher for p in params.values()), params
    for weights in (out / "weights").glob("*-seed0.safetensors"):
        if not weights.name.startswith("teacher"):
            assert "shapes" in rebuild(weights)[1]["arch"], weights.name  # the pruned shapes, as data
