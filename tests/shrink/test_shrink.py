"""kdistill.shrink: budgets checked and resolved, the search from Python and from an experiment
file, students pruned from the teacher in compare and in experiment files."""

import json

import pytest
import torch

import kdistill
from kdistill.cli import main
from kdistill.models import mlp
from kdistill.shrink.budget import Budget, check_budget, check_family
from kdistill.shrink.candidates import family_candidates
from kdistill.shrink.measure import resolve
from kdistill.shrink.trials import RECORD, open_study
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
    refs = {r["of"]: r for r in out["references"]}  # each architecture on the front, and the chosen, alone
    assert set(refs) == set(out["front"]) | {out["chosen"]["name"]}, (refs, out["front"])
    twins = {r["name"]: r for r in out["candidates"]}
    for name, ref in refs.items():
        assert ref["name"] == f"{name} alone" and ref["figure"] == twins[name]["figure"]
        assert ref["epochs"] == twins[name]["epochs"], (ref, twins[name])  # equal training, or the gap is a budget's
    assert out["cost"]["reference_epochs"] == sum(r["epochs"] for n, r in refs.items() if n != out["chosen"]["name"])
    table = (folder / "pareto.md").read_text()
    assert "| alone | distillation adds |" in table and "points |" in table
    report = (folder / "report.md").read_text()  # the search is in the run's report too, before the comparison
    assert report.index("## Shrink: the student searched within") < report.index("## Comparison on the test split")
    assert "distillation adds" in report and "](pareto.png)" in report
    (folder / "shrink.json").write_text('{"chosen": 1}')
    assert main(["report", str(folder)]) == 2  # a damaged shrink.json is named, not a traceback


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
    ({"shrink": {"budget": {"params": 0.1}, "allocation": ["global", "global"]}}, "student.shrink.allocation",
     "['global', 'global']: each value once"),
    ({"from_teacher": {"prune": 1.5}}, "student.from_teacher.prune", "less than 1"),
    ({"from_teacher": {"prune": 0.5, "importance": "random"}}, "student.from_teacher.importance", "magnitude"),
    ({"from_teacher": {"prune": 0.5, "reconstruct": "maybe"}}, "student.from_teacher.reconstruct", "'maybe'"),
])
def test_bad_shrink_and_from_teacher_sections_are_named(tiny, write_experiment, capsys, student, where, message):
    tiny["student"] = student
    assert main(["validate", str(write_experiment(tiny))]) == 2
    err = capsys.readouterr().err
    assert where in err and message in err, err


def test_from_teacher_reconstruct_in_an_experiment_reaches_the_spec(tiny, tmp_path):
    tiny["students"][1]["from_teacher"] = {"prune": 0.6, "reconstruct": True}
    exp = kdistill.config.validate(tiny, base=tmp_path)
    student = exp.students[1]
    assert exp.from_teacher(student).reconstruct is True
    assert exp.from_teacher(student).family == kdistill.FromTeacher(prune=0.6).family  # the same architecture
    tiny["students"][1]["from_teacher"] = {"prune": 0.6}
    plain = kdistill.config.validate(tiny, base=tmp_path)
    assert plain.from_teacher(plain.students[1]).reconstruct is False


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


def test_a_family_is_tried_at_each_depth_and_scaled_to_the_budget(blobs):
    family = check_family({"model": "mlp", "options": {"hidden": [32, 16]}, "depth": {"hidden": [1, 3]}})
    cands = family_candidates(family, Budget("params", 1500.0), blobs)
    lengths = sorted(len(c.arch["options"]["hidden"]) for c in cands)
    assert lengths == [1, 1, 3, 3], [c.name for c in cands]  # each depth at the budget and at half of it
    assert all(c.params <= 1500 for c in cands) and max(c.params for c in cands) > 1200  # the widest that fits
    deep = [c.arch["options"]["hidden"] for c in cands if len(c.arch["options"]["hidden"]) == 3]
    assert all(h[1] == h[2] for h in deep)  # grown by repeating the last entry, then scaled in width
    assert len({c.name for c in cands}) == 4


@pytest.mark.parametrize("depth, message", [
    ({"hidden": [0, 2]}, r"family.depth.hidden = \[0, 2\]: the lengths to try, distinct integers from 1 to 32"),
    ({"hidden": [2, 2]}, "distinct integers"),
    ({"dropout": [1, 2]}, r"family.depth names 'dropout', which is not a list .* the list options given: \['hidden'\]"),
    ({"hidden": [1], "x": [2]}, "give one list option and the lengths to try, e.g. {'hidden': \\[1, 2, 3\\]}"),
])
def test_a_bad_family_depth_is_named(depth, message):
    with pytest.raises(ValueError, match=message):
        check_family({"model": "mlp", "options": {"hidden": [16], "dropout": 0.1}, "depth": depth})


def test_a_study_records_what_its_maker_made_and_refuses_another_search(tmp_path):
    """The candidates are made once, by the process that creates the study; the others read them
    (a latency measured on each machine would give each its own pruning ratios), and a process
    searching with other settings is refused, naming them. A maker that fails leaves no study."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError, match="no candidate fits"):
        open_study(url, "s", {"budget": 1}, lambda: (_ for _ in ()).throw(ValueError("no candidate fits")))
    study, made = open_study(url, "s", {"budget": 1}, lambda: {"candidates": ["a", "b"]})  # again: afresh
    assert made == {"candidates": ["a", "b"]} and study.user_attrs[RECORD]["settings"] == {"budget": 1}
    _, again = open_study(url, "s", {"budget": 1}, lambda: pytest.fail("a second process must not make them"))
    assert again == made
    with pytest.raises(ValueError, match=r"study 's' was made for another search, differing in \['budget'\]"):
        open_study(url, "s", {"budget": 2}, lambda: made)


def test_a_worker_that_joins_later_trains_the_recorded_candidates(blobs, tmp_path, monkeypatch):
    torch.manual_seed(0)
    teacher = mlp(5, 3, hidden=[32])
    kdistill.fit(teacher, blobs, epochs=2, quiet=True)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    options = {"budget": {"params": 0.3}, "family": {"model": "mlp", "options": {"hidden": [8]}}, "epochs": 1,
               "storage": storage, "quiet": True}
    first = kdistill.shrink(teacher, blobs, worker=True, **options)
    import kdistill.shrink.search as search

    monkeypatch.setattr(search, "candidates", lambda *a, **k: pytest.fail("the candidates are the study's record"))
    final = kdistill.shrink(teacher, blobs, out=tmp_path / "run", **options)
    assert [r["name"] for r in final["candidates"]] == [r["name"] for r in first["candidates"]]
    assert final["budget"] == first["budget"] and final["folder"] is not None


def test_a_reference_is_the_architecture_from_new_weights_on_the_labels_stopped_with_its_twin(blobs, monkeypatch):
    """A reference distilled, inheriting the teacher's weights or trained longer than its twin
    would make 'distillation adds' measure something else."""
    import optuna

    import kdistill.shrink.trials as trials
    from kdistill.shrink.candidates import Candidate

    torch.manual_seed(0)
    teacher = mlp(5, 3, hidden=[32])
    seen = {}
    real_fit = trials.fit

    def spy(model, data, objective, teacher, **options):
        seen.update(objective=objective, teacher=teacher, weights=[p.detach().clone() for p in model.parameters()])
        return real_fit(model, data, objective=objective, teacher=teacher, **options)

    monkeypatch.setattr(trials, "fit", spy)
    cand = Candidate("p", "pruned", 0.0, pruned=kdistill.FromTeacher(prune=0.5))
    inherited = [p.detach() for p in cand.make(teacher, blobs).parameters()]
    study = optuna.create_study(direction="maximize")
    objective = trials.Objective({"p": cand}, teacher, "served outputs", blobs,
                                 {"objective": kdistill.methods.kd_objective(0.5, 4.0), "train": {"epochs": 5}}, 0,
                                 True, alone={"p": 2})
    trial = study.ask()
    objective(trial, "p")
    assert seen["teacher"] is None and [m[0] for m in seen["objective"]] == ["ce"]
    assert not all(torch.equal(a, b) for a, b in zip(seen["weights"], inherited))  # new weights
    assert trial.user_attrs["epochs"] == 2
    objective.settings["train"] = {"epochs": 8, "patience": 1, "lr": 1e-7}  # early stopping would end it at 2
    objective.alone = {"p": 6}
    trial = study.ask()
    objective(trial, "p")
    assert trial.user_attrs["epochs"] == 6


def test_processes_agree_on_a_search_however_its_defaults_are_written():
    """A worker started from the command line and the main process from Python give the same
    training options differently; the study's record compares them resolved, and names the
    option where they really differ."""
    from kdistill.shrink.search import _settings_key

    def settings(**train):
        return {"budget": {"params": 0.1}, "family": {"model": "mlp", "options": {"hidden": [8]}, "width": ["hidden"]},
                "objective": kdistill.methods.kd_objective(0.5, 4.0), "importance": ["magnitude"],
                "allocation": ["uniform"], "steps": 1, "choose": "accurate", "tolerance": None, "references": "front",
                "seeds": [0], "train": train}

    assert _settings_key(settings()) == _settings_key(settings(lr=1e-3, batch_size=64, device="cpu"))
    differ = {k for k, v in _settings_key(settings(lr=0.01)).items() if _settings_key(settings())[k] != v}
    assert differ == {"train.lr"}


def test_shrink_refuses_training_options_it_sets_for_each_candidate(blobs, teacher):
    with pytest.raises(ValueError, match=r"seed: shrink sets these for each candidate \(seeds= gives the seeds"):
        kdistill.shrink(teacher, blobs, budget={"params": 0.3}, seed=1)
    with pytest.raises(ValueError, match="checkpoint_dir, resume: shrink sets these"):
        kdistill.shrink(teacher, blobs, budget={"params": 0.3}, checkpoint_dir="ck", resume=True)


def test_pruned_candidates_by_each_allocation_fit_the_budget(blobs):
    from kdistill.shrink.candidates import pruned_candidates

    torch.manual_seed(0)
    teacher = mlp(5, 3, hidden=[64, 64])
    limit = 0.2 * sum(p.numel() for p in teacher.parameters())
    cands = pruned_candidates(teacher, Budget("params", limit), blobs, allocation=("uniform", "global"))
    assert sorted(c.pruned.allocation for c in cands) == ["global", "global", "uniform", "uniform"]
    assert all(c.params <= c.figure <= limit for c in cands) and len({c.name for c in cands}) == 4
    uniform, spread = (next(c for c in cands if c.pruned.allocation == a and c.figure > limit / 2) for a in
                       ("uniform", "global"))
    sizes = {c.name: [p.shape[0] for p in c.make(teacher, blobs).parameters() if p.dim() == 2]
             for c in (uniform, spread)}
    assert sizes[uniform.name] != sizes[spread.name], sizes  # the allocation reaches the pruning
    for given, shown in (("layer", "'layer'"), (["global", "global"], r"\['global', 'global'\]"), ([], r"\[\]")):
        with pytest.raises(ValueError, match=f"allocation = {shown}: give one or more of uniform, global, each once"):
            kdistill.shrink(teacher, blobs, budget={"params": 0.2}, allocation=given)
    with pytest.raises(ValueError, match=r"importance = \['taylor', 'taylor'\]: give one or more of magnitude"):
        kdistill.shrink(teacher, blobs, budget={"params": 0.2}, importance=["taylor", "taylor"])


def test_a_recorded_candidate_is_rebuilt_only_as_the_searchs_own_family_or_pruned_spec():
    """The record lives in a database many machines write to: it may resize the family, never
    choose another factory or hand it other options."""
    from kdistill.shrink.candidates import Candidate

    family = {"model": "mlp", "options": {"hidden": [8]}, "width": ["hidden"]}
    good = {"name": "m", "kind": "family", "figure": 10, "params": 10, "pruned": None,
            "arch": {"model": "mlp", "options": {"hidden": [4, 4]}}}
    assert Candidate.from_record(good, family).arch["options"] == {"hidden": [4, 4]}
    for arch in ({"model": "cnn", "options": {"hidden": [4]}}, {"model": "os:system", "options": {"hidden": [4]}},
                 {"model": "mlp", "options": {"hidden": [4], "num_classes": 1000}}):
        with pytest.raises(ValueError, match="the study records a candidate this search cannot rebuild"):
            Candidate.from_record({**good, "arch": arch}, family)
    with pytest.raises(ValueError, match="cannot rebuild"):
        Candidate.from_record({**good, "kind": "pruned", "arch": None, "pruned": {"prune": 0.5, "importance": "x"}},
                              family)


def test_under_a_latency_budget_the_least_pruned_copy_fast_enough_is_the_candidate(blobs, caplog):
    from kdistill.shrink.candidates import GRID, pruned_candidates

    torch.manual_seed(0)
    teacher = mlp(5, 3, hidden=[64, 64])
    roomy = pruned_candidates(teacher, Budget("latency_ms", 1e3, None, 1), blobs)
    assert [c.pruned.prune for c in roomy] == [GRID[0], GRID[0]]  # at the budget and at half of it
    assert all(0 < c.figure <= 1e3 for c in roomy)
    caplog.set_level("INFO", logger="kdistill")
    assert pruned_candidates(teacher, Budget("latency_ms", 1e-9, None, 1), blobs) == []
    assert "over the limit" in caplog.text  # each copy tried and left out is named


def test_a_study_whose_maker_died_before_recording_is_named_at_once(tmp_path):
    """A maker killed hard (SIGKILL, out of memory) leaves a study without a record; running the
    search again on this machine said nothing for 15 minutes, waiting on a dead process."""
    import socket
    import subprocess
    import sys

    import optuna

    from kdistill.shrink.trials import MAKER

    url = f"sqlite:///{tmp_path / 'dead.db'}"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    optuna.create_study(study_name="s", storage=url).set_user_attr(MAKER, f"{socket.gethostname()}:{dead.pid}")
    with pytest.raises(ValueError, match=rf"the process that made it \(.*:{dead.pid}\) is no longer running"):
        open_study(url, "s", {}, lambda: pytest.fail("not its maker"), wait_s=600)
