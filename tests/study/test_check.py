"""``kdistill validate`` builds every model on real data and takes one dry step with each, so
that ``run`` never fails after the teacher has trained on something a check could see."""

import re

import pytest

from kdistill.cli import main

CNN = {"model": "cnn", "options": {"channels": [4], "hidden": 8}}
FITNET = {"name": "fitnet", "methods": [{"name": "ce"}, {"name": "fitnet", "options": {"student": "feature.0",
                                                                                   "teacher": "features.3"}}]}


def _student(tiny, **changes):
    tiny["students"][1].update(changes)
    return tiny


CASES = {
    "negative hidden width": (lambda t: _student(t, model="cnn", options={"channels": [4], "hidden": -5}),
                              r"students.1 \('kd'\): cannot build model 'cnn' with options \{'channels': \[4\], "
                              r"'hidden': -5\} for inputs of shape \(1, 8, 8\) and 10 classes: .*negative dimension"),
    "channels that are not numbers": (lambda t: _student(t, model="cnn", options={"channels": "abc"}),
                                      r"students.1 \('kd'\): cannot build model 'cnn' .*channels must be a list of "
                                      r"positive integers, got \['a', 'b', 'c'\]"),
    "a device torch does not know": (lambda t: _student(t, train={"device": "tpu"}),
                                     r"students.1 \('kd'\): train.device 'tpu' is not a device torch knows"),
    "a device this machine lacks": (lambda t: _student(t, train={"device": "cuda:3"}),
                                    r"students.1 \('kd'\): train.device 'cuda:3' is not available on this machine"),
    "a CNN on tabular data": (lambda t: {**t, "data": {"builtin": {"name": "iris"}}, "student": CNN},
                              r"students.0 \('alone'\): cannot build model 'cnn' .* for inputs of shape \(4,\) and 3 "
                              r"classes: cnn needs input_shape \(channels, height, width\)"),
    "a misspelt layer name": (lambda t: {**t, "teacher": {"model": "cnn", "options": {"channels": [4, 8]}},
                                         "student": CNN, "students": [t["students"][0], FITNET]},
                              r"students.1 \('fitnet'\): Sequential has no submodule named 'feature.0' \(did you mean "
                              r"'features.0'\?\)"),
}


@pytest.mark.parametrize("case", CASES)
def test_validate_catches_what_run_would_hit_after_the_teacher_trained(case, tiny, write_experiment, capsys):
    change, message = CASES[case]
    path = write_experiment(change(tiny))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if line.startswith("error: "))
    assert "Traceback" not in err and re.search(message, line), err


def test_run_refuses_before_the_teacher_trains(tiny, write_experiment, tmp_path, capsys):
    path = write_experiment(CASES["negative hidden width"][0](tiny))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    assert "cannot build model 'cnn'" in capsys.readouterr().err
    assert not (out / "checkpoints" / "teacher-seed0").exists() and not (out / "weights").exists()


def test_validate_names_every_model_it_built(tiny, write_experiment, capsys):
    assert main(["validate", str(write_experiment(tiny))]) == 0
    out = capsys.readouterr().out
    assert "Every model was built and ran one step on the data: teacher: mlp, 2,410 parameters, on cpu; alone: mlp, " \
           "" in out and "kd: mlp" in out
