import json
import subprocess
import sys

import pytest

from kdistill.cli import main

KEYS = {"name", "params", "size_mb", "hyperparams", "accuracy", "macro_f1", "agreement", "kl_to_teacher", "latency_ms"}


def test_demo_smoke(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "1", "--seeds", "2", "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    names = [m["name"] for m in results["models"]]
    assert names == ["teacher", "student alone", "student KD T=2", "student KD T=6", "student KD T=2 + unlabelled"]
    for m in results["models"]:
        assert KEYS <= set(m), KEYS - set(m)
        assert 0 <= m["accuracy"] <= 1 and m["params"] > 0 and len(m["per_seed"]) == 2
    assert results["models"][0]["agreement"] == 1.0
    assert results["models"][0]["params"] > 10 * results["models"][1]["params"]
    assert len(results["comparisons"]) == 3 and all(c["seeds"] == 2 for c in results["comparisons"])
    assert results["unlabeled"] > 2 * results["split_sizes"][0]  # the demo keeps the unlabelled rest
    for png in ["confusion.png", "predictions.png", "curves-teacher.png", "curves-student-alone.png",
                "curves-student-kd-t-2.png", "curves-student-kd-t-6.png", "curves-student-kd-t-2-unlabelled.png"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    assert "| student KD T=6 |" in (out / "results.md").read_text()
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {(h["model"], h["seed"]) for h in history} >= {("teacher", 0), ("student KD T=2", 1)}
    assert len(list((out / "weights").glob("*.safetensors"))) == 10
    printed = capsys.readouterr().out
    assert "student KD T=2" in printed and "± " in printed


def test_demo_never_overwrites(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.json").write_text("mine")
    assert main(["demo", "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    assert (out / "results.json").read_text() == "mine"
    assert json.loads((tmp_path / "demo-2" / "results.json").read_text())["models"]
    assert "demo-2" in capsys.readouterr().out


def test_a_cache_dir_is_kept_and_reused_by_the_next_run(tmp_path, monkeypatch):
    """--cache-dir keeps the teacher's outputs for later runs; without it (and without
    $KDISTILL_CACHE_DIR) they live in the run folder and go when the run finishes."""
    monkeypatch.delenv("KDISTILL_CACHE_DIR", raising=False)
    cache = tmp_path / "cache"
    argv = ["demo", "--epochs", "1", "--quiet", "--cache-dir", str(cache)]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    entries = {m.parent.name: m.stat().st_mtime_ns for m in cache.glob("*/meta.json")}
    assert len(entries) == 3  # the train split, with its unlabelled rest, and the validation split
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0  # same seed: the same teacher weights
    assert {m.parent.name: m.stat().st_mtime_ns for m in cache.glob("*/meta.json")} == entries  # read, not rebuilt
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert [m["accuracy"] for m in a["models"]] == [m["accuracy"] for m in b["models"]]
    assert not (tmp_path / "a" / "teacher-cache").exists()


@pytest.mark.parametrize("argv,msg", [(["demo", "--seeds", "0"], "must be an integer >= 1"),
                                      (["demo", "--epochs", "x"], "--epochs: must be an integer >= 1, got x")])
def test_bad_arguments(argv, msg, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and msg in capsys.readouterr().err


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "kdistill", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in r.stdout


def test_output_off_a_terminal_is_plain_text_never_wrapped_or_emoji(tiny, write_experiment, tmp_path, capsys):
    """Logs, CI and nohup get one line per message: a long path stays whole, ``:fire:`` stays text."""
    long = tmp_path / ("a-folder-with-a-long-name-" * 6) / "missing:fire:.yaml"
    assert main(["validate", str(long)]) == 2
    err = capsys.readouterr().err
    assert f"experiment file {str(long)!r} does not exist" in err.splitlines()[1]
    assert "🔥" not in err
    tiny["teacher"]["name"] = "teacher:fire:"
    out = tmp_path / ("run-" * 30) / "x"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "🔥" not in printed.out + printed.err
    assert any(line.startswith("| teacher:fire: | ") for line in printed.out.splitlines())  # one row, one line
    assert f"Run folder: {out} (report.html" in printed.out
    assert "seed 0: teacher:fire: trained for 2 epoch(s)" in printed.err.splitlines()


def test_methods_lists_every_registered_method(capsys):
    from kdistill import methods

    assert main(["methods"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == methods.available()
    assert any("Hinton" in r and "temperature=4.0" in r for r in rows)


def _failing_report(monkeypatch, exc):
    def fail(folder):
        raise exc

    monkeypatch.setattr("kdistill.report.write_report", fail)


@pytest.mark.parametrize("exc, words", [
    (MemoryError(), "out of memory; lower train.batch_size"),
    (__import__("kdistill").NonFiniteLossError("the loss became non-finite at epoch 3"), "non-finite at epoch 3"),
    (OSError(28, "No space left on device", "runs/x/last.pt"), "No space left on device: 'runs/x/last.pt'; free some "
                                                               "disk space"),
    (PermissionError(13, "Permission denied", "/data/x.csv"), "Permission denied: '/data/x.csv'; check the "
                                                              "permissions"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "can't decode byte 0xff"),
    (EOFError("Compressed file ended"), "Compressed file ended"),
])
def test_failures_of_input_files_or_machine_exit_2_with_one_message(tmp_path, monkeypatch, capsys, exc, words):
    _failing_report(monkeypatch, exc)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["report", str(tmp_path), "--debug"]) == 2  # --debug anywhere adds the traceback
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and words in err.splitlines()[-1]


def test_an_internal_error_is_said_to_be_a_bug_with_its_traceback(tmp_path, monkeypatch, capsys):
    _failing_report(monkeypatch, KeyError("models"))
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err
    assert err.splitlines()[-1] == ("bug: kdistill stopped on an internal error (KeyError: 'models'); this is a bug, "
                                    "not a problem with your input: please report it with the traceback above")


def test_layers_lists_shapes_side_by_side_and_suggests_pairs(tiny, write_experiment, capsys):
    tiny["teacher"] = {"model": "cnn", "options": {"channels": [8, 16], "hidden": 16}}
    tiny["student"] = {"model": "cnn", "options": {"channels": [4, 8], "hidden": 8}}
    assert main(["layers", str(write_experiment(tiny))]) == 0
    out = capsys.readouterr().out
    assert "| teacher: layer | type | output | params | alone: layer | type | output | params |" in out
    assert "| features.0 | Conv2d | (8, 8, 8) | 72 | features.0 | Conv2d | (4, 8, 8) | 36 |" in out
    assert "| features.2 | (4, 8, 8) | features.2 | (8, 8, 8) |" in out  # pairs of equal spatial size
    assert "| features.6 | (8, 4, 4) | features.6 | (16, 4, 4) |" in out


def test_layers_of_a_model_needs_its_input_shape(capsys):
    assert main(["layers", "mlp"]) == 2
    assert "give --input-shape" in capsys.readouterr().err
    assert main(["layers", "mlp", "--input-shape", "5", "--classes", "3"]) == 0
    assert "| features.1 | Linear | (64,) | 384 |" in capsys.readouterr().out
