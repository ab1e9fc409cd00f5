"""The frictions a newcomer hit in the first hour, each pinned: --version, a fast start, --seeds
on run and tune, a quick start run twice, progress that names model and seed, compare printing
its table, a table readable at 80 columns, epochs numbered alike, warnings that name their
model, and no "0.989" next to "0.989 ± 0.000"."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sklearn.tree import DecisionTreeClassifier
from torch import nn

import kdistill
from kdistill.cli import build_parser, main
from kdistill.models import mlp

SRC = str(Path(kdistill.__file__).resolve().parent.parent)
HEAVY = ("torch", "sklearn", "onnx", "onnxruntime", "matplotlib", "optuna", "skl2onnx", "scipy", "pandas")


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"kdistill {kdistill.__version__}"


def test_help_and_version_import_no_heavy_library_and_validate_no_plotting(tiny, write_experiment, tmp_path):
    """The startup itself is measured in benchmarks/startup.py; here: what each command imports
    (one interpreter: --help, --version and ``run --help`` first, then validate)."""
    path = write_experiment(tiny)
    probe = f"""import sys
from kdistill.cli import main
seen = []
for argv in (["--help"], ["--version"], ["run", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
    seen.append([m for m in {HEAVY!r} if m in sys.modules])
assert main(["validate", {str(path)!r}]) == 0
seen.append([m for m in {HEAVY!r} if m in sys.modules])
print(seen)"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": SRC, "PATH": ""})
    assert done.returncode == 0, done.stderr
    *light, validate = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own probe's list
    assert light == [[], [], []]
    assert "torch" in validate and not {"matplotlib", "optuna", "skl2onnx"} & set(validate)


def test_seeds_flag_on_run_and_tune_and_the_advice_names_it(tiny, write_experiment):
    from kdistill import config
    from kdistill.cli import _overrides

    path = write_experiment(tiny)
    for command in ("run", "tune"):
        args = build_parser().parse_args([command, str(path), "--seeds", "3", "--set", "seeds=[7]"])
        assert config.load(args.experiment, _overrides(args)).seeds == [0, 1, 2]  # the flag wins over --set
    assert build_parser().parse_args(["run", str(path)]).seeds is None
    from kdistill.study.verdicts import verdicts

    (verdict,) = verdicts({"a": [{"seed": 0, "accuracy": 0.8}], "b": [{"seed": 0, "accuracy": 0.9}]}, "a", ["b"])
    assert "kdistill run/tune/demo --seeds 3" in verdict["verdict"] and "seeds=range(3)" in verdict["verdict"]


def test_progress_from_python_names_model_and_seed(blobs, tmp_path, capfd):
    kdistill.compare(mlp(5, 3, hidden=(8,)), {"s": mlp(5, 3, hidden=(4,))}, blobs, out=tmp_path / "run",
                     train_teacher=True, epochs=1)
    captured = capfd.readouterr()
    assert "teacher, seed 0: epoch 1/1 " in captured.err and "s alone, seed 0: epoch 1/1 " in captured.err
    assert "s, seed 0: epoch 1/1 " in captured.err
    assert "| s alone |" in captured.out and "Recommendation: deploy " in captured.out  # compare prints its table
    kdistill.compare(DecisionTreeClassifier(max_depth=4), {"s": DecisionTreeClassifier(max_depth=2)}, blobs,
                     out=tmp_path / "run", quiet=True, synthetic=None, teacher_folds=0)
    assert capfd.readouterr().out == ""  # quiet: nothing printed, and a new folder (run-2), never a traceback
    assert (tmp_path / "run-2" / "results.json").is_file()


def test_the_quick_start_runs_twice(blobs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the README's quick start, twice in the same folder
        teacher = mlp(5, 3, hidden=(16,))
        kdistill.fit(teacher, blobs, epochs=1, quiet=True)
        student = mlp(5, 3, hidden=(4,))
        kdistill.distill(teacher, student, blobs, epochs=1, checkpoint_dir="runs/my-student", quiet=True)
    assert (tmp_path / "runs" / "my-student" / "last.pt").is_file()
    assert (tmp_path / "runs" / "my-student-2" / "last.pt").is_file()


def test_the_results_table_is_readable_at_80_columns():
    from rich.console import Console

    from kdistill.report import table_rows
    from kdistill.terminal import show_table

    model = {"name": "tiny alone", "kind": "torch", "params": 1234, "size_mb": 0.01, "hyperparams": {"alpha": 0.5},
             "accuracy": 0.912, "std": {"accuracy": 0.01}, "macro_f1": 0.9, "agreement": 0.9, "kl_to_teacher": 0.1,
             "ece": 0.02, "latency_ms": 0.001, "onnx_ms_b1": 0.01, "onnx_ms_b64": 0.02, "onnx_mb": 0.01,
             "speedup": 12.0}
    results = {"models": [{**model, "name": "teacher"}, model, {**model, "name": "student KD T=2 + unlabelled"}]}
    buffer = io.StringIO()
    show_table("comparison", *table_rows(results), console=Console(width=80, file=buffer))
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("tiny alone", "student KD T=2 + unlabelled", "0.912 ± 0.010", "speedup vs teacher (b=64)"):
        assert whole in text, whole
    wide = io.StringIO()
    show_table("comparison", *table_rows(results), console=Console(width=400, file=wide))
    assert "┃ model" in wide.getvalue() and wide.getvalue().count("\n") < text.count("\n")  # one table when it fits


def test_run_with_the_seeds_flag_and_epochs_numbered_from_one(tiny, write_experiment, tmp_path, capfd):
    tiny["train"]["epochs"] = 2
    tiny["students"] = tiny["students"][:1]
    assert main(["run", str(write_experiment(tiny)), "--out", str(tmp_path / "r"), "--seeds", "2"]) == 0
    assert json.loads((tmp_path / "r" / "results.json").read_text())["seeds"] == [0, 1]
    history = [json.loads(line) for line in (tmp_path / "r" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["model"] == "teacher"] == [1, 2, 1, 2]  # as the log numbers them
    err = capfd.readouterr().err
    assert "teacher, seed 0: epoch 1/2 " in err and "alone, seed 1: epoch 2/2 " in err


def test_a_teacher_check_warning_names_the_student():
    from kdistill.data import split_arrays
    from kdistill.study.fitness import check_teacher

    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    x = torch.randn(60, 4, generator=g) + 3 * nn.functional.one_hot(y, 4).float()
    data = split_arrays(x.numpy(), y.numpy(), ["a", "b", "c"], seed=0)
    good = nn.Linear(4, 3)
    with torch.no_grad():
        good.weight.copy_(torch.eye(3, 4) * 5)
        good.bias.zero_()
    bad = nn.Linear(4, 3)  # predicts a wrong class for each (no collapse: its predictions vary)
    with torch.no_grad():
        bad.weight.copy_(torch.eye(3, 4).roll(1, 0) * 5)
        bad.bias.zero_()
    check = check_teacher(0, data, bad, {"small alone": nn.Linear(4, 3), "wide alone": good})
    assert check["alone_model"] == "wide alone"
    assert f"student alone's ({check['alone_accuracy']:.3f}, 'wide alone', of 2 students alone: 'wide alone', " \
           f"'small alone')" in check["message"]


def test_a_number_equal_on_every_seed_shows_no_zero_spread():
    from kdistill.report.tables import _cell

    teacher = {"accuracy": 0.989, "std": {"accuracy": 1e-17, "speedup": 1e-9}, "speedup": 1.0}
    assert _cell(teacher, "accuracy") == "0.989" and _cell(teacher, "speedup") == "1.0x"
    assert _cell({"accuracy": 0.9, "std": {"accuracy": 0.0004}}, "accuracy") == "0.900"
    assert _cell({"accuracy": 0.9, "std": {"accuracy": 0.004}}, "accuracy") == "0.900 ± 0.004"
