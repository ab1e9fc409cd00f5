"""End to end through the command line: run, validate, report, demo (tune: tests/tune/test_sweep.py)."""

import importlib
import json

import numpy as np
import pandas as pd
import pytest

from kdistill.cli import main
from kdistill.report.fields import undocumented

FILES = ["config.json", "history.jsonl", "results.json", "results.md", "report.md", "report.html", "confusion.png",
         "data.json", "tradeoff.png", "calibration.png"]


def test_run_writes_run_folder_and_report(tiny, write_experiment, tmp_path, capsys):
    path = write_experiment(tiny)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--set", "train.epochs=1", "--quiet"]) == 0
    assert "Run folder" in capsys.readouterr().out
    for name in FILES + ["predictions.png", "curves-alone.png", "weights/kd-seed0.safetensors"]:
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 1
    assert undocumented(json.loads((out / "results.json").read_text())) == []  # docs/reference/results.md
    html = (out / "report.html").read_text()
    # curves of 2 students + teacher, confusion, predictions, tradeoff, calibration
    assert html.count("data:image/png;base64,") == 7 and 'src="curves' not in html  # self-contained
    md = (out / "report.md").read_text()
    for heading in ("Comparison on the test split", "Training curves", "Confusion matrices",
                    "Predictions on test images", "Accuracy against size and latency", "Calibration",
                    "Per-class report"):
        assert f"## {heading}" in md
    # the report is rebuilt from the folder alone
    (out / "report.md").unlink()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == md and (out / "report.html").read_text() == html
    # an existing run is never overwritten
    assert main(["run", str(path), "--out", str(out), "--set", "train.epochs=1", "--quiet"]) == 0
    assert (tmp_path / "run-2" / "results.json").is_file()


def test_an_onnx_export_that_fails_parity_leaves_its_columns_empty_and_the_study_whole(tiny, write_experiment,
                                                                                       tmp_path, monkeypatch):
    # On a GPU, TF32 convolutions once made the study's ONNX step fail a whole trained run.
    export_module = importlib.import_module("kdistill.export")  # the module (kdistill.export is the function)

    def unfaithful(diff, tolerance, scale, path):
        raise export_module.ParityError(f"{path}: the ONNX model's logits differ from PyTorch's by up to 0.005")

    monkeypatch.setattr(export_module, "_check_parity", unfaithful)
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--set", "train.epochs=1", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert all(m["onnx_mb"] is None and m["onnx_ms_b64"] is None for m in results["models"])
    assert any("differ from PyTorch's" in w and "ONNX columns left empty" in w for w in results["warnings"])
    assert not list((out / "onnx").glob("*.onnx"))  # no unfaithful file left for deployment
    assert (out / "weights" / "kd-seed0.safetensors").is_file()


def test_validate_reports_field_path_and_exit_code(tiny, write_experiment, capsys):
    path = write_experiment(tiny)
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["validate", str(path), "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "did you mean 'epochs'" in err


def test_report_needs_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_image_folder_with_augmentation_and_frozen_teacher(tiny, write_experiment, tmp_path, make_folder):
    make_folder(tmp_path / "imgs", {"cat": 10, "dog": 14}, size=12, corrupt=1)
    tiny["data"] = {"images": {"path": "imgs", "size": [8, 8]}, "val_size": 0.25, "test_size": 0.25,
                    "augment": {"rotation": 10, "shear": 5, "zoom": 0.1, "brightness": [0.8, 1.2],
                                "horizontal_flip": True}}
    tiny["teacher"] = {"model": "cnn", "options": {"channels": [4, 8], "hidden": 8}, "freeze": {"first_layers": 2}}
    tiny["student"] = {"model": "cnn", "options": {"channels": [2], "hidden": 4}}
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "data.json").read_text())
    assert data["skipped"] == 1 and data["class_counts"]["all"] == {"cat": 10, "dog": 14}
    assert data["imbalance"] == pytest.approx(1.4)
    md = (out / "report.md").read_text()
    assert "## Data" in md and "1 unreadable image(s) skipped" in md and "imbalance" in md


def test_loaded_teacher_is_used_as_is(tiny, write_experiment, tmp_path):
    import torch
    from safetensors.torch import save_file

    from kdistill.models import mlp

    torch.manual_seed(0)
    save_file(mlp((1, 8, 8), 10, hidden=[32]).state_dict(), tmp_path / "teacher.safetensors")
    tiny["teacher"].update(weights="teacher.safetensors", fit=False)
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    teacher = json.loads((out / "results.json").read_text())["models"][0]
    assert teacher["per_seed"][0]["epochs_trained"] == 0
    assert teacher["hyperparams"] == {"weights": "teacher.safetensors"}


def test_csv_table_run(tiny, write_experiment, tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    label = np.arange(n) % 3
    pd.DataFrame({"a": label + rng.normal(scale=0.3, size=n), "b": rng.normal(size=n),
                  "kind": np.where(label == 2, "x", rng.choice(["y", "z"], n)),
                  "target": [f"class{k}" for k in label]}).to_csv(tmp_path / "t.csv", index=False)
    tiny["data"] = {"table": {"path": "t.csv", "target": "target"}, "val_size": 0.2, "test_size": 0.3}
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["classes"] == ["class0", "class1", "class2"] and sum(results["split_sizes"]) == n
    assert not (out / "predictions.png").exists()  # no images in a table
    counts = json.loads((out / "data.json").read_text())["class_counts"]["all"]
    assert counts == {"class0": 20, "class1": 20, "class2": 20}
    assert "## Data" in (out / "report.md").read_text()


def test_demo_is_the_bundled_experiment(tmp_path, monkeypatch):
    from kdistill import config
    from kdistill.study import demo_file

    exp = config.load(demo_file())
    assert exp.name == "demo" and [s.name for s in exp.students][0] == "student alone"
    calls = {}
    monkeypatch.setattr("kdistill.study.comparison.run_study", lambda *a, **k: calls.update(k) or {})
    monkeypatch.setattr("kdistill.study.comparison.write_report", lambda folder: None)
    from kdistill.study import run_demo

    run_demo(tmp_path / "demo", seeds=2, epochs=3)
    assert calls["seeds"] == [0, 1] and calls["config"]["train"]["epochs"] == 3


def test_a_student_s_step_budget_ends_its_training_and_the_table_shows_it(tiny, write_experiment, tmp_path):
    tiny["train"]["epochs"] = 4
    tiny["students"][1]["train"] = {"max_steps": 8}
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    models = {m["name"]: m for m in results["models"]}
    per_epoch = -(-results["split_sizes"][0] // tiny["train"]["batch_size"])
    assert per_epoch < 8 < 4 * per_epoch  # the budget ends within the second to fourth epoch
    kd = models["kd"]
    assert (kd["hyperparams"]["epochs"], kd["hyperparams"]["max_steps"]) == (4, 8)
    assert kd["per_seed"][0]["epochs_trained"] == -(-8 // per_epoch)
    assert "max_steps" not in models["alone"]["hyperparams"] and models["alone"]["per_seed"][0]["epochs_trained"] == 4
    assert "max_steps=8" in (out / "results.md").read_text()


def test_scarce_labels_with_the_unlabeled_rest_views_and_fm(tiny, write_experiment, tmp_path):
    tiny["data"].update({"train_fraction": 0.25, "unlabeled_rest": True,
                         "augment": {"views": 2, "mixup": 0.3, "translate": 0.1}})
    tiny["students"].append({"name": "fm", "methods": [{"name": "fm", "weight": 1.0}],
                             "train": {"labeled_share": 0.5, "schedule": "warmup-cosine"}})
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    labelled = results["split_sizes"][0]
    assert results["unlabeled"] > 2 * labelled  # the 75% of the train split whose labels were dropped
    assert [m["name"] for m in results["models"]] == ["teacher", "alone", "kd", "fm"]
    shares = {m["name"]: m["hyperparams"].get("labeled_share") for m in results["models"]}
    assert shares == {"teacher": None, "alone": None, "kd": None, "fm": 0.5}  # shown where it was set
    summary = (out / "report.md").read_text()
    assert f"{results['unlabeled']:,} unlabelled training inputs, seen by the distilled students only" in summary
    assert "Epoch kept of epochs trained" in summary
    train_entry = results["teacher_checks"][0]["cache"][0]  # the training views of the distilled students
    assert train_entry["views"] == 2 and train_entry["rows"] == 2 * (labelled + results["unlabeled"])
    assert len(results["teacher_checks"][0]["cache"]) == 2  # train views and val, shared by both students
    assert all(e["build_seconds"] is not None for e in results["teacher_checks"][0]["cache"])
    assert "Teacher-output cache" in summary and "bytes per sample and view" in summary


@pytest.mark.parametrize("kind", ["images", "table"])
def test_an_unlabeled_folder_or_table_joins_the_labelled_source(tiny, write_experiment, tmp_path, make_folder,
                                                                kind):
    if kind == "images":
        make_folder(tmp_path / "imgs", {"cat": 10, "dog": 14}, size=12)
        make_folder(tmp_path / "pool" / "any", {"x": 9, "y": 6}, size=20)  # no classes: folders are ignored
        tiny["data"] = {"images": {"path": "imgs", "size": [8, 8]}, "unlabeled": {"images": "pool"},
                        "val_size": 0.25, "test_size": 0.25}
        tiny["teacher"] = {"model": "cnn", "options": {"channels": [4], "hidden": 8}}
        tiny["student"] = {"model": "cnn", "options": {"channels": [2], "hidden": 4}}
        expected = 15
    else:
        frame = pd.DataFrame({"a": np.arange(60) % 7, "b": np.arange(60) % 5, "label": np.arange(60) % 2})
        frame.to_csv(tmp_path / "t.csv", index=False)
        frame.drop(columns="label").iloc[:25].to_csv(tmp_path / "pool.csv", index=False)
        tiny["data"] = {"table": {"path": "t.csv", "target": "label"}, "unlabeled": {"table": "pool.csv"},
                        "synthetic": None}  # the pool alone, without the default synthetic rows
        expected = 25
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet", "--set", "train.epochs=1"]) == 0
    assert json.loads((out / "results.json").read_text())["unlabeled"] == expected
