"""Third-party failures translated at the boundary (issue 20, items 2-4, 6 and 7): each ends in
exit status 2 with one line naming the file, field or model and what to do, and is found by
``validate`` where a run would meet it; an export failure never costs the results; Ctrl-C
anywhere says how to continue."""

import json
import os
import re
import sys
import warnings

import numpy as np
import pytest
import torch
import yaml

import kdistill
from kdistill import config
from kdistill.cli import main
from kdistill.config import ConfigError
from kdistill.export import ExportError, export_onnx
from kdistill.models import mlp
from kdistill.teachers import load_teacher_file
from kdistill.weights import load_sklearn, save_sklearn

SVD_NET = """
import math

import torch
from torch import nn


class SVDNet(nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.l, self.o = nn.Linear(d, 4), nn.Linear(2, k)

    def forward(self, x):
        return self.o(torch.linalg.svdvals(self.l(x.flatten(1)).view(-1, 2, 2)))


def make(input_shape, num_classes):
    return SVDNet(math.prod(input_shape), num_classes)


def broken(input_shape, num_classes):
    raise ZeroDivisionError("the factory's own mistake")
"""


def _module(folder, name):
    """A model module ``name`` in ``folder`` (a name per test: imported modules stay imported)."""
    (folder / f"{name}.py").write_text(SVD_NET)
    return name


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "bug:" not in err, err
    return err.splitlines()[-1]


# ---------------------------------------------------------------------------------------------
# An unexportable student: validate says so, the run keeps its results, --resume completes it


def test_an_unexportable_student_is_reported_by_validate_and_costs_no_results(tiny, write_experiment, tmp_path,
                                                                              capsys, monkeypatch):
    name = _module(tmp_path, "svd_run")
    tiny["students"].append({"name": "svd", "model": f"{name}:make", "options": {},
                             "methods": [{"name": "ce", "weight": 1.0}]})
    path = write_experiment(tiny)
    assert main(["validate", str(path)]) == 0
    said = capsys.readouterr().out
    assert "students.2 ('svd')" in said and "aten::linalg_svdvals is not supported by the ONNX exporter" in said
    # Ctrl-C during evaluation: the run says how to continue, and --resume completes it
    from kdistill.study import runner

    measure = runner._measure_seed

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_measure_seed", interrupted)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 130
    assert f"kdistill run {path} --out {out} --resume" in capsys.readouterr().err
    assert (out / "INCOMPLETE").is_file() and not (out / "results.json").exists()
    monkeypatch.setattr(runner, "_measure_seed", measure)
    assert main(["run", str(path), "--out", str(out), "--quiet", "--resume"]) == 0
    results = json.loads((out / "results.json").read_text())
    row = next(m for m in results["models"] if m["name"] == "svd")
    assert row["accuracy"] is not None and row["onnx_mb"] is None
    assert any("svd" in w and "aten::linalg_svdvals" in w for w in results["warnings"])
    assert (out / "report.html").is_file() and not (out / "INCOMPLETE").exists()


def test_compare_warns_of_an_unexportable_student_before_training_and_keeps_its_results(tmp_path, caplog):
    name = _module(tmp_path, "svd_compare")
    sys.path.insert(0, str(tmp_path))
    try:
        make = __import__(name).make
    finally:
        sys.path.remove(str(tmp_path))
    data = kdistill.load_dataset("iris", seed=0)
    with caplog.at_level("INFO", logger="kdistill"):
        results = kdistill.compare(lambda shape, k: mlp(shape, k, hidden=(8,)), {"svd": make}, data, epochs=1,
                                   train_teacher=True, out=tmp_path / "c", quiet=True)
    said = [r.getMessage() for r in caplog.records]
    dry = next(i for i, m in enumerate(said) if "students['svd" in m and "leaves its ONNX columns empty" in m)
    assert dry < next(i for i, m in enumerate(said) if "trained for" in m)  # said before any model trained
    assert next(m for m in results["models"] if m["name"] == "svd")["onnx_mb"] is None


def test_exporting_an_unsupported_operation_is_exit_2_naming_model_and_operation(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = _module(tmp_path, "svd_export")
    sys.path.insert(0, str(tmp_path))
    try:
        net = __import__(name).make((5,), 3)
    finally:
        sys.path.remove(str(tmp_path))
    with pytest.raises(ExportError, match=r"SVDNet \(s.onnx\) cannot be exported to ONNX: the operation "
                                          r"aten::linalg_svdvals is not supported"):
        kdistill.export(net, (5,), tmp_path / "s.onnx")
    assert not (tmp_path / "s.onnx").exists()
    weights = kdistill.save_weights(net, tmp_path / "s.safetensors", {"arch": {"model": f"{name}:make", "options": {}},
                                                                      "input_shape": [5], "classes": ["a", "b", "c"]})
    capsys.readouterr()
    assert main(["export", str(weights), "--model", f"{name}:make"]) == 2
    assert "aten::linalg_svdvals is not supported by the ONNX exporter" in _err_line(capsys)


def test_export_out_at_an_existing_file_names_the_flag(tmp_path, capsys):
    info = {"arch": {"model": "mlp", "options": {}}, "input_shape": [4], "classes": ["a", "b", "c"]}
    weights = kdistill.save_weights(mlp(4, 3), tmp_path / "w.safetensors", info)
    (tmp_path / "taken").write_text("mine")
    assert main(["export", str(weights), "--out", str(tmp_path / "taken")]) == 2
    assert "(kdistill export --out) is a file, not a folder" in _err_line(capsys)
    assert (tmp_path / "taken").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# Teacher files: one batch through them before training; errors name the file


def _onnx(tmp_path, width, fixed_batch=False):
    """An ONNX MLP of 10 classes for inputs of ``width`` (an int, or a shape), its batch axis fixed at 1 or dynamic."""
    torch.manual_seed(0)
    shape = width if isinstance(width, tuple) else (width,)
    net, path = mlp(shape, 10), tmp_path / f"t{np.prod(shape)}{'-fixed' if fixed_batch else ''}.onnx"
    if fixed_batch:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net.eval(), (torch.zeros(1, *shape),), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"])
    else:
        export_onnx(net, shape, path)
    return path


@pytest.mark.parametrize("width, fixed, message", [
    (7, False, r"cannot run on a batch of shape \(4, 1, 8, 8\): its input 'input' has 2 axes"),
    ((1, 8, 8), True, r"its batch size is fixed at 1 .*export it again with a dynamic batch axis"),
    ((1, 7, 7), False, r"its input 'input' expects 7 values on axis 2 .*the data has 8"),
])
def test_an_onnx_teacher_that_does_not_fit_the_data_fails_validate(tiny, write_experiment, tmp_path, capsys, width,
                                                                   fixed, message):
    tiny["teacher"] = {"file": str(_onnx(tmp_path, width, fixed))}
    assert main(["validate", str(write_experiment(tiny))]) == 2
    line = _err_line(capsys)
    assert line.startswith("error: the ONNX teacher ") and "students." not in line
    assert re.search(message, line), line


def test_an_onnx_teacher_of_another_width_names_the_axis(tmp_path):
    teacher = load_teacher_file(_onnx(tmp_path, 7))
    with pytest.raises(ValueError, match=r"expects 7 values on axis 1 \(shape \['batch', 7\]\), the data has 5"):
        teacher.logits(torch.zeros(3, 5))


def test_compare_runs_a_batch_through_a_teacher_file_before_any_folder_is_made(tmp_path):
    path = _onnx(tmp_path, (1, 8, 8), True)  # batch fixed at 1
    data = kdistill.load_dataset("digits", seed=0)
    with pytest.raises(ValueError, match=r"ONNX teacher .*t64-fixed.onnx cannot run .*batch size is fixed at 1"):
        kdistill.compare(path, {"mlp": lambda shape, k: mlp(shape, k, hidden=(8,))}, data, epochs=1,
                         out=tmp_path / "c", quiet=True)
    assert not (tmp_path / "c").exists()


def test_a_damaged_teacher_file_is_named_not_model_none(tiny, write_experiment, tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07not an onnx model")
    tiny["teacher"] = {"file": "bad.onnx"}
    assert main(["validate", str(write_experiment(tiny))]) == 2
    line = _err_line(capsys)
    assert "bad.onnx" in line and "model None" not in line and "options None" not in line


def test_a_transformers_folder_whose_weights_are_not_safetensors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=8, num_labels=2,
                                 architectures=["ViTForImageClassification"])
    transformers.ViTForImageClassification(cfg).save_pretrained(tmp_path / "vit")
    (tmp_path / "vit" / "model.safetensors").write_bytes(b"PK\x03\x04 not safetensors at all" * 10)
    with pytest.raises(ValueError, match=r"cannot load the transformers model in .*vit: .*save the model again"):
        load_teacher_file(tmp_path / "vit")


def test_a_link_loop_is_called_a_link_loop(tmp_path):
    loop = tmp_path / "teacher.onnx"
    os.symlink(tmp_path / "other", loop)
    os.symlink(loop, tmp_path / "other")
    with pytest.raises(ValueError, match=r"teacher file '.*teacher.onnx' is a link loop"):
        load_teacher_file(loop)
    os.unlink(tmp_path / "other")
    os.symlink(tmp_path / "gone", tmp_path / "other")
    with pytest.raises(FileNotFoundError, match=r"teacher file '.*other' is a broken link"):
        load_teacher_file(tmp_path / "other")


def test_a_teacher_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    big = tmp_path / "big.onnx"
    with open(big, "wb") as f:  # sparse: 2 GB on paper, nothing on disk
        f.truncate(2_000_000_001)
    with pytest.raises(ValueError, match=r"is 2,000.0 MB, above the limit of 1,024 MB .*KDISTILL_MAX_TEACHER_MB"):
        load_teacher_file(big)
    small = _onnx(tmp_path, 4)
    monkeypatch.setenv("KDISTILL_MAX_TEACHER_MB", "0.0001")
    with pytest.raises(ValueError, match=r"above the limit of 0 MB"):
        load_teacher_file(small)
    monkeypatch.setenv("KDISTILL_MAX_TEACHER_MB", "1")
    assert load_teacher_file(small).logits(torch.zeros(2, 4)).shape == (2, 10)
    monkeypatch.setenv("KDISTILL_MAX_TEACHER_MB", "lots")
    with pytest.raises(ValueError, match=r"\$KDISTILL_MAX_TEACHER_MB must be a positive number of megabytes"):
        load_teacher_file(small)


# ---------------------------------------------------------------------------------------------
# Trust


def test_trusted_never_names_process_shell_file_or_import_primitives(tiny, skops_file, tmp_path):
    for name in ("posix.system", "os.system", "nt.system", "subprocess.Popen", "shutil.rmtree", "builtins.eval",
                 "builtins.exec", "builtins.__import__", "eval", "importlib.import_module", "sys.modules",
                 "pickle.loads", "_operator.attrgetter", "ctypes.CDLL", "socket.socket"):
        with pytest.raises(ValueError, match=rf"trusted names '{name}', a process, shell, file-system, import or "
                                             rf"interpreter primitive: kdistill never trusts those"):
            load_sklearn(skops_file, trusted=[name])
        tiny["teacher"] = {"file": str(skops_file), "trusted": [name]}
        with pytest.raises(ConfigError, match=r"teacher.trusted: .*kdistill never trusts those"):
            config.validate(tiny)
    assert load_sklearn(skops_file, trusted=["mypackage.models.MyClassifier"]) is not None


def test_a_skops_payload_naming_posix_system_never_loads_even_if_trusted(tmp_path):
    path = save_sklearn({"call": os.system}, tmp_path / "evil.skops")
    with pytest.raises(ValueError, match=r"not trusted: posix.system"):
        load_sklearn(path)
    with pytest.raises(ValueError, match=r"never trusts those"):
        load_sklearn(path, trusted=["posix.system"])


@pytest.fixture
def skops_file(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    return save_sklearn(LogisticRegression().fit(rng.normal(size=(20, 3)), np.arange(20) % 2),
                        tmp_path / "lr.skops")


# ---------------------------------------------------------------------------------------------
# Tracking, the cache folder, layers


def test_an_mlflow_uri_mlflow_cannot_open_fails_validate(tiny, write_experiment, capsys, tmp_path):
    pytest.importorskip("mlflow")
    tiny["tracking"] = {"mlflow": "nosuchscheme://x"}
    assert main(["validate", str(write_experiment(tiny))]) == 2
    line = _err_line(capsys)
    assert "tracking.mlflow 'nosuchscheme://x'" in line and "give an MLflow tracking URI" in line


def test_mlflow_not_installed_gives_the_install_hint(monkeypatch):
    for name in ("mlflow", "mlflow.entities", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(ValueError, match=r"tracking needs mlflow, which is not installed: pip install "
                                         r"kdistill\[mlflow\]"):
        kdistill.MLflow("somewhere")._start("run", {})


def test_a_tensorboard_path_that_is_a_file(blobs, tmp_path, teacher, student):
    (tmp_path / "tb").write_text("a file")
    with pytest.raises(ValueError, match=r"tracking.tensorboard '.*tb/logs': .*tb is a file, not a folder"):
        kdistill.compare(teacher, {"s": student}, blobs, out=tmp_path / "run", tracking={"tensorboard": tmp_path /
                                                                                          "tb" / "logs"})
    assert not (tmp_path / "run").exists() and (tmp_path / "tb").read_text() == "a file"


def test_an_unwritable_cache_dir_is_named_before_the_teacher_trains(tiny, write_experiment, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--cache-dir", str(blocker / "cache"),
                 "--quiet"]) == 2
    line = _err_line(capsys)
    assert line.startswith(f"error: --cache-dir '{blocker / 'cache'}' (cache_dir): the teacher cache cannot be "
                           f"written there")
    assert not out.exists() and blocker.read_text().startswith("a file")


def test_layers_with_a_factory_that_raises_or_inputs_too_large(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = _module(tmp_path, "svd_layers")
    assert main(["layers", f"{name}:broken", "--input-shape", "4", "--classes", "2"]) == 2
    line = _err_line(capsys)
    assert f"model '{name}:broken': the factory's own mistake; fix the factory" in line
    assert main(["layers", "mlp", "--input-shape", "100000,100000,100000", "--classes", "2"]) == 2
    line = _err_line(capsys)
    assert line.startswith("error: out of memory (model 'mlp': ") and "lower train.batch_size" in line


# ---------------------------------------------------------------------------------------------
# Bounded work


def test_jobs_are_capped_at_the_cores_available(monkeypatch, caplog):
    from kdistill.tune.sweep import capped_jobs

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    with caplog.at_level("WARNING", logger="kdistill"):
        assert capped_jobs(8) == 2
    assert "--jobs 8 is more than the 2 core(s) available; running 2 worker(s)" in caplog.text
    assert capped_jobs(2) == 2


def test_ctrl_c_during_tune_prints_the_command_that_continues(tiny, write_experiment, tmp_path, capsys, monkeypatch):
    from kdistill.tune import context

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(context.Context, "open", interrupted)
    tiny["tune"] = {"trials": 2}
    path = write_experiment(tiny)
    out = tmp_path / "sweep"
    assert main(["tune", str(path), "--out", str(out), "--set", "tune.top=1", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"continue it with kdistill tune {path} --out {out} --set tune.top=1" in err


def test_ctrl_c_during_export_prints_the_command_that_continues(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["kdistill.export"], "export_weights", interrupted)
    assert main(["export", str(tmp_path / "w.safetensors"), "--int8"]) == 130
    assert f"run it again with kdistill export {tmp_path / 'w.safetensors'} --int8" in capsys.readouterr().err


def test_a_trusted_model_type_is_kept_as_given(tiny):
    """A type name that is no primitive passes the trust check unchanged."""
    tiny["teacher"] = {"file": "x.skops", "trusted": ["mypackage.models.MyClassifier"]}
    assert config.validate(yaml.safe_load(yaml.safe_dump(tiny))).teacher.trusted == ["mypackage.models.MyClassifier"]


def test_a_run_folder_export_stops_on_or_skips_a_model_the_exporter_refuses(tmp_path, monkeypatch, caplog):
    module = sys.modules["kdistill.export"]
    info = {"arch": {"model": "mlp", "options": {}}, "input_shape": [4], "classes": ["a", "b", "c"]}
    (tmp_path / "run" / "weights").mkdir(parents=True)
    for stem in ("good", "bad"):
        kdistill.save_weights(mlp(4, 3), tmp_path / "run" / "weights" / f"{stem}.safetensors", info)
    real = module.export_onnx

    def refusing(model, shape, path, *args):
        if path.stem == "bad":
            raise ExportError("bad", RuntimeError("Exporting the operator 'aten::linalg_svdvals' to ONNX"))
        return real(model, shape, path, *args)

    monkeypatch.setattr(module, "export_onnx", refusing)
    with pytest.raises(ValueError, match=r"1 of the 2 model files .* cannot be exported \(the others were exported\): "
                                         r"bad.safetensors: .*aten::linalg_svdvals.*--skip-unexportable"):
        module.export_weights(tmp_path / "run")
    assert (tmp_path / "run" / "onnx" / "good.onnx").is_file()
    with caplog.at_level("WARNING", logger="kdistill"):
        reports = module.export_weights(tmp_path / "run", skip=True)
    assert [r["weights"].split("/")[-1] for r in reports] == ["good.safetensors"]
    assert "skipping" in caplog.text and "aten::linalg_svdvals" in caplog.text
