"""kdistill.compare: the study of kdistill run, from Python, for any teacher and student kind."""

import json

import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

import kdistill
from kdistill.models import mlp
from kdistill.report import table_rows


@pytest.fixture
def digits():
    return kdistill.load_dataset("digits", seed=0, train_fraction=0.3)


def test_gradient_boosting_teacher_with_mlp_and_tree_students(digits, tmp_path):
    results = kdistill.compare(HistGradientBoostingClassifier(max_iter=10, random_state=0),
                               {"mlp": mlp(digits.input_shape, 10, hidden=(16,)),
                                "tree": (DecisionTreeClassifier(max_depth=6), {"mode": "hard"})},
                               digits, out=tmp_path / "cmp", epochs=2, quiet=True)
    folder = tmp_path / "cmp"
    assert results["folder"] == str(folder)
    names = [m["name"] for m in results["models"]]
    assert names == ["teacher", "tree alone", "mlp alone", "mlp", "tree"]  # a baseline per student family
    kinds = {m["name"]: m["kind"] for m in results["models"]}
    assert kinds == {"teacher": "sklearn", "tree alone": "sklearn", "mlp alone": "torch", "mlp": "torch",
                     "tree": "sklearn"}
    assert {c["model"]: c["baseline"] for c in results["comparisons"]} == {"mlp": "mlp alone", "tree": "tree alone"}
    tree = next(m for m in results["models"] if m["name"] == "tree")
    assert tree["hyperparams"] == {"max_depth": 6, "mode": "hard"} and tree["size_mb"] > 0
    assert tree["onnx_mb"] > 0 and tree["speedup"] > 0  # estimators export to ONNX, the teacher too
    assert 0.5 < tree["agreement"] <= 1 and tree["latency_ms"] > 0
    # the same files as kdistill run, from files alone
    for name in ("results.json", "results.md", "report.html", "report.md", "data.json", "config.json",
                 "tradeoff.png", "calibration.png", "confusion.png", "weights/tree-seed0.skops",
                 "weights/mlp-seed0.safetensors", "onnx/tree-seed0.onnx", "onnx/teacher-seed0.onnx"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "results.json").read_text())["models"] == results["models"]
    report = (folder / "report.md").read_text()
    assert "## Calibration" in report
    assert kdistill.load_sklearn(folder / "weights" / "tree-seed0.skops").predict(
        digits.test.x.reshape(len(digits.test), -1).numpy()).shape == (len(digits.test),)


def test_compare_and_run_give_the_same_study(tiny, write_experiment, tmp_path):
    """The same models through both front doors: the same rows, columns and verdicts."""
    results_run, _ = kdistill.run_experiment(write_experiment(tiny), out=tmp_path / "run", quiet=True)
    data = lambda seed: kdistill.load_dataset("digits", seed=seed, train_fraction=0.2)  # noqa: E731
    factory = lambda hidden: lambda shape, k: mlp(shape, k, hidden=hidden)  # noqa: E731
    student = factory([8])
    results_py = kdistill.compare(factory([32]), {"alone": (student, [("ce", 1.0)]),
                                                  "kd": (student, [("ce", 0.5), ("kd", 0.5, {"temperature": 4})])},
                                  data, out=tmp_path / "py", train_teacher=True, epochs=2, batch_size=64, lr=0.01,
                                  quiet=True)
    header_run, rows_run = table_rows(results_run)
    header_py, rows_py = table_rows(results_py)
    assert header_run == header_py and [r[0] for r in rows_run] == [r[0] for r in rows_py]
    for a, b in zip(results_run["models"], results_py["models"]):
        assert a["accuracy"] == pytest.approx(b["accuracy"]) and a["params"] == b["params"]
    assert [c["accuracy_delta"] for c in results_run["comparisons"]] == pytest.approx(
        [c["accuracy_delta"] for c in results_py["comparisons"]])


def test_a_loaded_teacher_gets_one_split_for_all_seeds(digits, tmp_path, caplog):
    x, y = digits.train.x.reshape(len(digits.train), -1).numpy(), digits.train.y.numpy()
    fitted = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    asked = []

    def data(seed):
        asked.append(seed)
        return kdistill.load_dataset("digits", seed=seed, train_fraction=0.3)

    with caplog.at_level("INFO", logger="kdistill"):
        results = kdistill.compare(fitted, {"tree": DecisionTreeClassifier(max_depth=4)}, data, seeds=(3, 4),
                                   out=tmp_path / "fixed", quiet=True)
    assert set(asked) == {3} and results["split_seed"] == 3
    assert "every seed uses the split of seed 3" in caplog.text


def test_compare_refuses_bad_arguments(digits, tmp_path):
    with pytest.raises(TypeError, match="unknown training option"):
        kdistill.compare(mlp(64, 10), {"s": mlp(64, 10)}, digits, out=tmp_path / "x", epoch=2)
    with pytest.raises(ValueError, match="students must be a non-empty dict"):
        kdistill.compare(mlp(64, 10), [], digits, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_resume_compares_the_config_the_run_wrote(tiny, make_folder, write_experiment, tmp_path):
    """config.json holds absolute data paths (so export can rebuild the data); resuming compares
    the experiment in that same form, so a relative path is not a changed experiment."""
    from kdistill import config
    from kdistill.study import resolved_config
    from kdistill.study.experiment import _checked_source

    make_folder(tmp_path / "imgs", counts={"a": 8, "b": 8}, size=8)
    tiny["data"] = {"images": {"path": "imgs", "size": [8, 8]}}
    exp = config.load(write_experiment(tiny))
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(resolved_config(exp)))
    assert resolved_config(exp)["data"]["images"]["path"] == str(tmp_path / "imgs")
    _checked_source(exp, folder, resume=True)  # the same experiment: resumed
    changed = config.load(write_experiment({**tiny, "seeds": [1]}, name="other"))
    with pytest.raises(ValueError, match="seeds"):
        _checked_source(changed, folder, resume=True)


def test_a_study_without_a_distilled_student_still_writes_its_report(digits, tmp_path):
    # No distilled student: no comparison, and the plots show the student alone (this raised StopIteration).
    results = kdistill.compare(mlp(digits.input_shape, 10, hidden=(16,)),
                               {"alone": (mlp(digits.input_shape, 10, hidden=(8,)), [("ce", 1.0)])},
                               digits, out=tmp_path / "solo", epochs=1, quiet=True)
    assert [m["name"] for m in results["models"]] == ["teacher", "alone"] and results["comparisons"] == []
    assert (tmp_path / "solo" / "report.html").is_file() and (tmp_path / "solo" / "curves-alone.png").is_file()
