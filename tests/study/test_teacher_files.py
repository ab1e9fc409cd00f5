"""Every teacher kind in experiment files (skops, ONNX, a transformers folder), scikit-learn
students in experiment files, and your own model module beside the experiment file."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

import kdistill
from kdistill import config
from kdistill.cli import main
from kdistill.config import ConfigError
from kdistill.export import export_onnx
from kdistill.models import mlp
from kdistill.teachers import OnnxTeacher, SklearnTeacher, load_teacher_file, teacher_file_kind


def _digits_arrays():
    data = kdistill.load_dataset("digits", seed=0, train_fraction=0.2)
    return data, data.train.x.reshape(len(data.train), -1).numpy(), data.train.y.numpy()


@pytest.fixture
def skops_teacher(tmp_path):
    _, x, y = _digits_arrays()
    path = tmp_path / "hgb.model"  # the name says nothing: the kind is read from the content
    kdistill.save_sklearn(HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, y), path)
    return path


@pytest.fixture
def onnx_teacher(tmp_path):
    torch.manual_seed(0)
    return export_onnx(mlp((1, 8, 8), 10, hidden=[16]), (1, 8, 8), tmp_path / "teacher.bin")


def test_file_kinds_are_read_from_the_content(skops_teacher, onnx_teacher, tmp_path):
    assert teacher_file_kind(skops_teacher) == "skops" and teacher_file_kind(onnx_teacher) == "onnx"
    assert isinstance(load_teacher_file(skops_teacher), SklearnTeacher)
    assert isinstance(load_teacher_file(onnx_teacher, "onnx"), OnnxTeacher)
    with pytest.raises(ValueError, match="given as kind 'onnx', but it holds a skops"):
        load_teacher_file(skops_teacher, "onnx")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"nothing known")
    with pytest.raises(ValueError, match="holds none of the known kinds .skops, ONNX, transformers folder."):
        load_teacher_file(junk)
    with pytest.raises(ValueError, match="is not a readable ONNX model: .*Protobuf parsing failed"):
        load_teacher_file(junk, "onnx")  # given as ONNX: onnxruntime's own reason


def test_a_fifo_named_like_a_teacher_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "teacher.onnx"
    os.mkfifo(fifo)

    class Hung(Exception):  # not an OSError, which zipfile.is_zipfile would swallow
        pass

    def hung(*_):
        raise Hung("reading the teacher file's kind blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(ValueError, match=r"teacher file '.*teacher.onnx' is a FIFO \(named pipe\)"):
            load_teacher_file(fifo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_skops_teacher_and_tree_students_in_an_experiment_file(tiny, skops_teacher, write_experiment, tmp_path):
    tiny["teacher"] = {"file": skops_teacher.name}
    tiny["student"] = {"model": "sklearn.tree:DecisionTreeClassifier", "options": {"max_depth": 5}}
    tiny["students"] = [{"name": "tree alone"}, {"name": "tree hard", "distill": {"mode": "hard"}},
                        {"name": "mlp kd", "model": "mlp", "options": {"hidden": [8]},
                         "methods": [{"name": "ce", "weight": 0.5}, {"name": "kd", "weight": 0.5}]}]
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [m["kind"] for m in results["models"]] == ["teacher", "sklearn", "sklearn", "torch"]
    assert results["models"][0]["hyperparams"] == {"file": "hgb.model"}
    assert {c["model"]: c["baseline"] for c in results["comparisons"]} == {"tree hard": "tree alone",
                                                                           "mlp kd": "tree alone"}
    assert (out / "report.html").is_file() and (out / "weights" / "tree-hard-seed0.skops").is_file()


def test_onnx_teacher_in_an_experiment_file(tiny, onnx_teacher, write_experiment, tmp_path):
    tiny["data"]["builtin"] = {"name": "digits"}
    tiny["teacher"] = {"file": str(onnx_teacher), "kind": "onnx", "output": "logits"}
    tiny["student"] = {"model": "cnn", "options": {"channels": [4], "hidden": 8}}
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    teacher = json.loads((out / "results.json").read_text())["models"][0]
    assert teacher["kind"] == "teacher" and teacher["onnx_mb"] == pytest.approx(onnx_teacher.stat().st_size / 1e6)
    assert teacher["onnx_ms_b64"] > 0 and (out / "report.html").is_file()


def test_teacher_file_errors_name_the_field(tiny, skops_teacher, tmp_path):
    tiny["teacher"] = {"file": str(skops_teacher), "model": "mlp", "fit": True}
    with pytest.raises(ConfigError, match="teacher.file: a teacher file is used as loaded; it cannot be combined "
                                          "with model"):
        config.validate(tiny)
    tiny["teacher"] = {"model": "mlp", "kind": "onnx"}
    with pytest.raises(ConfigError, match="teacher.kind: kind: describes a teacher file; give file: PATH too"):
        config.validate(tiny)
    tiny["teacher"] = {"model": "mlp"}
    tiny["students"][1]["distill"] = {"mode": "hard"}
    with pytest.raises(ConfigError, match="students.1.distill: distill: applies to scikit-learn students"):
        config.validate(tiny)
    tiny["student"] = {"model": "sklearn.tree:DecisionTreeClassifier", "options": {"depth": 3}}
    with pytest.raises(ConfigError, match=r"student.options: \['depth'\] are not parameters of "
                                          r"DecisionTreeClassifier; allowed: .*max_depth"):
        config.validate(tiny)


def _tiny_vit(folder, labels):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16, num_labels=len(labels),
                                 id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)},
                                 architectures=["ViTForImageClassification"])
    model = transformers.ViTForImageClassification(cfg).eval()
    model.save_pretrained(folder)
    return model


def test_transformers_teacher_folder_in_an_experiment_file(tiny, write_experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    model = _tiny_vit(tmp_path / "vit", [str(i) for i in range(10)])
    teacher = load_teacher_file(tmp_path / "vit")
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(teacher.logits(x), model(pixel_values=x).logits)
    assert teacher.classes == [str(i) for i in range(10)]
    tiny["teacher"] = {"file": "vit"}
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 0
    teacher_row = json.loads((out / "results.json").read_text())["models"][0]
    assert teacher_row["kind"] == "teacher" and teacher_row["params"] == sum(p.numel() for p in model.parameters())


def test_transformers_sequence_classifier_gets_token_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16, max_position_embeddings=16, num_labels=3,
                                  architectures=["BertForSequenceClassification"])
    model = transformers.BertForSequenceClassification(cfg).eval()
    model.save_pretrained(tmp_path / "bert")
    teacher = kdistill.as_teacher(tmp_path / "bert")
    ids = torch.randint(0, 50, (4, 6))
    with torch.no_grad():
        torch.testing.assert_close(teacher.logits(ids.float()), model(input_ids=ids).logits)
    assert teacher.classes is None  # LABEL_0.. are not class names


@pytest.mark.slow
def test_model_module_beside_the_experiment_file_needs_no_environment(tiny, write_experiment, tmp_path,
                                                                     monkeypatch):
    (tmp_path / "mynets_local.py").write_text(
        "from kdistill.models import mlp\n\ndef factory(input_shape, num_classes, hidden=8):\n"
        "    return mlp(input_shape, num_classes, hidden=[hidden])\n")
    tiny["student"] = {"model": "mynets_local:factory", "options": {"hidden": 4}}
    path = write_experiment(tiny)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    kdistill_cli = os.path.join(os.path.dirname(sys.executable), "kdistill")  # the console script, as users run it
    done = subprocess.run([kdistill_cli, "validate", str(path)], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    monkeypatch.chdir(elsewhere)
    assert str(tmp_path) not in sys.path
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "report.html").is_file()


def test_importable_folders_leave_sys_path_as_it_was(tmp_path):
    from kdistill.models import importable, resolve_factory

    (tmp_path / "mynets_path.py").write_text("import torch\n\ndef f():\n    return torch.nn.Linear(1, 2)\n")
    before = list(sys.path)
    with importable(tmp_path):
        assert callable(resolve_factory("mynets_path:f"))
    assert sys.path == before
    np.testing.assert_equal(sys.modules["mynets_path"].f().weight.shape, (2, 1))
