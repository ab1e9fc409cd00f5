"""Where users look: progress lines off a terminal, in a notebook, TensorBoard and MLflow."""

import io
import json

import pytest

from kdistill import fit, load_dataset
from kdistill.cli import main
from kdistill.engine import EpochLog, NotebookProgress, TensorBoard
from kdistill.models import cnn, mlp


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", train_fraction=0.2)


def test_one_line_per_epoch_off_a_terminal(data, capsys):
    fit(mlp((1, 8, 8), 10, hidden=[8]), data, epochs=3)  # pytest's stderr is no terminal
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "train_loss=" in lines[0] and "val_accuracy=" in lines[0]
    fit(mlp((1, 8, 8), 10, hidden=[8]), data, epochs=2, quiet=True)
    assert "epoch" not in capsys.readouterr().err
    stream = io.StringIO()
    fit(mlp((1, 8, 8), 10, hidden=[8]), data, epochs=2, quiet=True, callbacks=[EpochLog(stream)])
    assert stream.getvalue().count("\n") == 2


def test_notebook_progress_updates_one_display_in_place(data):
    shown = []

    class Handle:
        def update(self, text):
            shown.append(text)

    progress = NotebookProgress(display=lambda text, display_id: shown.append(text) or Handle())
    fit(mlp((1, 8, 8), 10, hidden=[8]), data, epochs=2, quiet=True, callbacks=[progress])
    assert shown[0] == "training: epoch 0/2" and len(shown) == 3
    assert shown[-1].startswith("[####################] epoch 2/2")


def test_tensorboard_writes_every_epoch(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(mlp((1, 8, 8), 10, hidden=[8]), data, epochs=3, quiet=True,
        callbacks=[TensorBoard(tmp_path / "tb", run="student", hyperparams={"alpha": 0.5})])
    events = EventAccumulator(str(tmp_path / "tb" / "student"))
    events.Reload()
    assert [e.step for e in events.Scalars("val_accuracy")] == [1, 2, 3]
    assert {"train_loss", "train_ce", "lr"} <= set(events.Tags()["scalars"])


def test_pairing_error_names_both_layers_and_shapes(data):
    teacher, student = cnn((1, 8, 8), 10, channels=[8, 16]), cnn((1, 8, 8), 10, channels=[4, 8])
    with pytest.raises(ValueError, match=r"method 'fitnet' cannot pair student layer 'features.3' \(output "
                                         r"\(4, 4, 4\)\) with teacher layer 'classifier.1' \(output \(64,\)\).*"
                                         r"kdistill layers"):
        fit(student, data, teacher=teacher, epochs=1, quiet=True,
            objective=[("ce", 1.0), ("fitnet", 1.0, {"student": "features.3", "teacher": "classifier.1"})])


@pytest.mark.slow
def test_experiment_tracking_writes_tensorboard_and_mlflow(tiny, write_experiment, tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    from mlflow.tracking import MlflowClient

    tiny["tracking"] = {"tensorboard": "tb", "mlflow": "ml"}  # read from the experiment file's folder
    assert main(["run", str(write_experiment(tiny)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert {p.name for p in (tmp_path / "tb").iterdir()} == {"teacher-seed0", "alone-seed0", "kd-seed0", "study"}
    client = MlflowClient(f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"teacher seed 0", "alone seed 0", "kd seed 0", "study: tiny: teacher -> student"}
    kd = runs["kd seed 0"]
    assert kd.data.params["alpha"] == "0.5" and kd.data.params["T"] == "4.0"
    assert [m.step for m in client.get_metric_history(kd.info.run_id, "val_accuracy")] == [1, 2]
    study = runs["study: tiny: teacher -> student"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert study.data.metrics["kd.test_accuracy"] == pytest.approx(results["models"][2]["accuracy"])
    table = client.download_artifacts(study.info.run_id, "results.md", str(tmp_path))
    assert "| kd |" in open(table).read()
