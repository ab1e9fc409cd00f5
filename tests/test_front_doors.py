"""One set of rules for every front door (issue 20, item 1): compare, distill, fit and experiment
files refuse bad names, seeds, objectives, data and labels with an error naming the argument,
before anything is trained or any folder is made."""

import numpy as np
import pytest

import kdistill
from kdistill import config
from kdistill.config import ConfigError
from kdistill.models import mlp


def _compare(blobs, tmp_path, students, **kw):
    return kdistill.compare(mlp(5, 3, hidden=[8]), students, blobs, out=tmp_path / "run", epochs=1, quiet=True,
                            **kw)


@pytest.mark.parametrize("students, message", [
    ({"Student KD": "a", "student-kd": "b"}, r"'Student KD' and 'student-kd' both become the file name 'student-kd'"),
    ({"mlp": "a", "mlp alone": "b"}, r"'mlp alone' .*both become the file name 'mlp-alone' \('mlp alone' is the "
                                     r"student alone added"),
    ({"teacher": "a"}, r"'teacher' and 'teacher' both become the file name 'teacher'"),
    ({"": "a"}, r"model name '' has no letter or digit"),
    ({"--": "a"}, r"model name '--' has no letter or digit"),
])
def test_compare_refuses_names_that_collide_as_files(blobs, tmp_path, students, message):
    models = {"a": mlp(5, 3, hidden=[4]), "b": mlp(5, 3, hidden=[6])}
    with pytest.raises(ValueError, match=message):
        _compare(blobs, tmp_path, {name: models[m] for name, m in students.items()})
    assert not (tmp_path / "run").exists()


def test_compare_refuses_a_name_that_is_not_a_string(blobs, tmp_path):
    with pytest.raises(TypeError, match=r"students: model names must be strings, got 3 \(int\)"):
        _compare(blobs, tmp_path, {3: mlp(5, 3, hidden=[4])})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seeds, error, message", [
    ((), ValueError, r"seeds is empty; give at least one seed"),
    ((-1,), ValueError, r"seeds must hold integers >= 0, got -1 in \[-1\]"),
    ((0, 0), ValueError, r"seeds must be distinct .*repeated: \[0\]"),
    ((0.5,), TypeError, r"seeds must hold integers >= 0, got 0.5 \(float\)"),
    ("01", TypeError, r"seeds must be a sequence of integers >= 0"),
    (3, TypeError, r"seeds must be a sequence of integers >= 0, e.g. \(0, 1, 2\), got 3"),
])
def test_compare_refuses_bad_seeds(blobs, tmp_path, seeds, error, message):
    with pytest.raises(error, match=message):
        _compare(blobs, tmp_path, {"s": mlp(5, 3, hidden=[4])}, seeds=seeds)
    assert not (tmp_path / "run").exists()


def test_an_objective_given_as_a_string_says_what_to_pass(blobs, tmp_path, teacher, student):
    hint = r"got the string 'kd': for that method alone pass \[\('kd', 1.0\)\]"
    with pytest.raises(TypeError, match=r"students\['s'\] objective must be a list of .*" + hint):
        _compare(blobs, tmp_path, {"s": (mlp(5, 3, hidden=[4]), "kd")})
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match=r"objective must be a list .*" + hint):
        kdistill.distill(teacher, student, blobs, objective="kd", epochs=1)
    with pytest.raises(TypeError, match=r"objective: each term is \(name, weight\)"):
        kdistill.fit(student, blobs, objective=[("ce", "1")], epochs=1)


def test_an_array_as_data_says_what_to_pass(blobs, tmp_path, teacher, student):
    x = np.zeros((10, 5))
    with pytest.raises(TypeError, match=r"data must be a kdistill.Splits or a function seed -> Splits, got "
                                        r"ndarray \(arrays: make splits with kdistill.split_arrays"):
        kdistill.compare(teacher, {"s": student}, x, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match=r"data must be a kdistill.Splits, got ndarray"):
        kdistill.distill(teacher, student, x, epochs=1)
    with pytest.raises(TypeError, match=r"data must be a kdistill.Splits, got tuple"):
        kdistill.fit(student, (x, np.zeros(10)), epochs=1)


def test_a_data_function_that_returns_no_splits_is_named(blobs, tmp_path, teacher, student):
    with pytest.raises(TypeError, match=r"data\(seed\) must be a kdistill.Splits, got dict"):
        kdistill.compare(teacher, {"s": student}, lambda seed: {"x": 1}, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_string_labels_are_mapped_to_the_given_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    names = np.array(["cat", "dog", "eel"])[np.arange(60) % 3]
    by_name = kdistill.split_arrays(x, names, ["cat", "dog", "eel"], seed=0)
    by_index = kdistill.split_arrays(x, np.arange(60) % 3, ["cat", "dog", "eel"], seed=0)
    assert by_name.train.y.tolist() == by_index.train.y.tolist()
    with pytest.raises(ValueError, match=r"y holds label\(s\) \['fox'\] that are not among classes \['cat', 'dog', "
                                         r"'eel'\]"):
        kdistill.split_arrays(x, np.where(names == "eel", "fox", names), ["cat", "dog", "eel"])


def test_experiment_files_take_the_same_seed_rules(tiny, write_experiment):
    for seeds, message in (([-1], r"seeds must hold integers >= 0"), ([1, 1], r"seeds must be distinct")):
        with pytest.raises(ConfigError, match=message):
            config.load(write_experiment({**tiny, "seeds": seeds}))


def test_experiment_files_take_the_same_name_rules(tiny, write_experiment):
    tiny["students"][1]["name"] = "Alone"
    with pytest.raises(ConfigError, match=r"'alone' and 'Alone' both become the file name 'alone'"):
        config.load(write_experiment(tiny))
