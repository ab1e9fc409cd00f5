"""kdistill tune end to end: the sweep, its answer, the answer tested, the report; resumed, refused
when the experiment changed, and run by several processes."""

import json

import optuna
import pytest

from kdistill.cli import main

pytestmark = pytest.mark.slow


def _sweep(tiny, **tune):
    tiny["data"].update({"train_fraction": 0.25, "unlabeled_rest": True})
    tiny["teacher"]["train"] = {"epochs": 8}
    tiny["tune"] = {"methods": ["kd", "fm"], "lr": [0.003, 0.03], "steps": [10, 30], "baseline_trials": 2,
                    "top": 1, "repeats": 2, **tune}
    return tiny


def test_tune_answers_tests_the_answer_and_resumes(tiny, write_experiment, tmp_path, capsys):
    path = write_experiment(_sweep(tiny))
    out = tmp_path / "sweep"
    args = ["tune", str(path), "--out", str(out), "--quiet"]
    assert main(args + ["--trials", "2"]) == 0
    teacher_file = out / "weights" / "tune-teacher.safetensors"
    trained = teacher_file.stat().st_mtime_ns
    # the teacher passed once over each set the trials use: train with and without the pool, and val
    assert json.loads((out / "tune.json").read_text())["cost"]["teacher_passes"] == 3
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'tune.db'}")
    study.ask()  # a distilled trial left running, as by a process killed mid-trial
    capsys.readouterr()
    assert main(args + ["--trials", "3"]) == 0
    printed = capsys.readouterr().out
    assert teacher_file.stat().st_mtime_ns == trained  # trained once per sweep, loaded on resume
    trials = json.loads((out / "trials.json").read_text())
    distilled = [t for t in trials if t["study"] == "distilled" and t["state"] in ("COMPLETE", "PRUNED")]
    assert [t["number"] for t in distilled] == [0, 1, 3]  # one new trial, not a replay
    assert len({json.dumps(t["params"], sort_keys=True) for t in distilled}) == 3
    assert len([t for t in trials if t["study"] == "alone" and t["state"] == "COMPLETE"]) == 2
    reruns = [(t["candidate"], t["seed"]) for t in trials if t["study"] == "repeats" and t["state"] == "COMPLETE"]
    assert len(reruns) == len(set(reruns))  # never re-run twice
    summary = json.loads((out / "tune.json").read_text())
    chosen = {c["candidate"] for c in summary["decision"]["candidates"]}
    assert {(key, seed) for key in chosen for seed in (1, 2)} <= set(reruns)  # every candidate, seeds 1 and 2
    assert summary["choice"] in ("alone", "distilled") and summary["answer"].split(":")[0] in ("Distil",
                                                                                               "Train it alone")
    results = json.loads((out / "results.json").read_text())
    names = [m["name"] for m in results["models"]]
    assert names[:2] == ["teacher", "student alone"] and summary["chosen_model"] in names
    assert results["models"][0]["per_seed"][0]["epochs_trained"] == 0  # the sweep's teacher, never retrained
    assert 0 <= summary["test_accuracy"] <= 1 and summary["cost"]["trainings"] >= 3 + 2 + 4
    assert summary["cost"]["teacher_passes"] == 6  # a finished run's cache is removed: the resumed one rebuilt it
    assert f"Answer: {summary['answer']}" in printed and "of the teacher-alone gap recovered" in printed
    md = (out / "report.md").read_text()
    for text in ("## Sweep of recipes", summary["answer"], "teacher–alone gap recovered",
                 "How the answer was decided", "tune-space.png", "tune-objective.png", "## Every trial of the sweep"):
        assert text in md, text
    # a changed experiment is not silently mixed into the old study
    assert main(args + ["--set", "tune.steps=[20,40]"]) == 2
    assert "different experiment" in capsys.readouterr().err


def test_a_teacher_that_teaches_nothing_gets_the_answer_train_it_alone(tiny, write_experiment, tmp_path):
    """The guarantee: distilling from a teacher that knows nothing (untrained: its outputs are noise)
    is never the answer."""
    import torch
    from safetensors.torch import save_file

    from kdistill.models import mlp

    torch.manual_seed(0)
    save_file(mlp((1, 8, 8), 10, hidden=[32]).state_dict(), tmp_path / "noise.safetensors")
    tiny = _sweep(tiny, alpha=[0.9, 1.0], steps=[20, 40])
    tiny["teacher"].update(weights="noise.safetensors", fit=False)
    out = tmp_path / "sweep"
    assert main(["tune", str(write_experiment(tiny)), "--out", str(out), "--quiet", "--trials", "3"]) == 0
    summary = json.loads((out / "tune.json").read_text())
    assert summary["choice"] == "alone" and summary["chosen_model"] == "student alone"
    assert summary["answer"].startswith("Train it alone")
    assert summary["decision"]["difference"] < 0


def test_jobs_run_trials_in_parallel_processes_sharing_the_storage(tiny, write_experiment, tmp_path):
    out = tmp_path / "sweep"
    path = write_experiment(_sweep(tiny, methods=["kd"]))
    assert main(["tune", str(path), "--out", str(out), "--quiet", "--trials", "3", "--jobs", "2"]) == 0
    trials = [t for t in json.loads((out / "trials.json").read_text()) if t["state"] == "COMPLETE"]
    assert {t["worker"] for t in trials} == {1, 2}  # both worker processes trained, none in the parent
    distilled = [t for t in trials if t["study"] == "distilled"]
    assert 3 <= len(distilled) <= 4  # the shared count stops both (a trial under way may finish)
    reruns = [t for t in trials if t["study"] == "repeats"]
    # each worker trains its own share of the re-runs: none twice (Optuna's shared queue did, on SQLite)
    assert sorted((t["candidate"], t["seed"]) for t in reruns) == sorted({(t["candidate"], t["seed"]) for t in reruns})
    assert len(reruns) == 4 and {t["worker"] for t in reruns} == {1, 2}  # 2 candidates x 2 seeds


def test_a_storage_that_cannot_be_opened_is_a_clear_error_before_any_training(tiny, write_experiment, tmp_path,
                                                                               capsys):
    path = write_experiment(_sweep(tiny))
    out = tmp_path / "sweep"
    assert main(["tune", str(path), "--out", str(out), "--quiet", "--storage", "nosuchdb://x"]) == 2
    err = capsys.readouterr().err
    assert "storage 'nosuchdb://x' (--storage or tune.storage) cannot be opened as an Optuna database" in err
    assert not (out / "weights" / "tune-teacher.safetensors").exists()  # no teacher was trained
