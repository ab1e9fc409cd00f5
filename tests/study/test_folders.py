"""Run folders: claimed by one process at a time (a lock the kernel drops when its process
dies), resumed only with the experiment they started with, and never written through links."""

import fcntl
import json
import os
import subprocess
import sys

import pytest

from kdistill import config
from kdistill.cli import main
from kdistill.engine import TrainingInterrupted
from kdistill.study import INCOMPLETE, finish_run_dir, open_run_dir, release_run_dir
from kdistill.study.folders import LOCK


@pytest.fixture
def interrupted(tiny, write_experiment, tmp_path):
    """An experiment file and the folder of an interrupted run of it (with train.epochs=1)."""
    path = write_experiment(tiny)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / INCOMPLETE).write_text("started")
    exp = config.load(path, ["train.epochs=1"])
    (folder / "config.json").write_text(json.dumps(exp.model_dump(mode="json"), indent=2))
    return path, folder


def test_resume_with_other_settings_is_refused_naming_the_fields(interrupted, capsys):
    path, folder = interrupted
    before = (folder / "config.json").read_text()
    code = main(["run", str(path), "--out", str(folder), "--resume", "--set", "train.epochs=3", "--set",
                 "students.1.methods.1.options.temperature=6", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot resume {folder}: the experiment differs from the one the run started with" in err
    assert "students.1.methods.1.options.temperature: 4 when the run started, 6 now" in err
    assert "train.epochs: 1 when the run started, 3 now" in err
    assert (folder / "config.json").read_text() == before and not (folder / "checkpoints").exists()


def test_ctrl_c_prints_the_resume_command_with_the_set_flags(tiny, write_experiment, tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise TrainingInterrupted(2, 5, None)

    monkeypatch.setattr("kdistill.study.comparison.run_study", interrupt)  # both front doors run the study there
    path = write_experiment(tiny)
    out = tmp_path / "my run"
    code = main(["run", str(path), "--out", str(out), "--set", "train.epochs=1", "--set", "train.lr=0.02",
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert code == 130
    err = capsys.readouterr().err
    assert (f"continue it with kdistill run {path} --out '{out}' --resume --set train.epochs=1 --set train.lr=0.02 "
            f"--cache-dir {tmp_path / 'cache'}") in err


def _hold(folder):
    """Lock ``folder`` as another kdistill process would (its own open file, its pid inside)."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


def test_a_second_resume_is_refused_while_the_first_runs(interrupted, capsys):
    path, folder = interrupted
    fd = _hold(folder)
    try:
        assert main(["run", str(path), "--out", str(folder), "--resume", "--set", "train.epochs=1", "--quiet"]) == 2
    finally:
        os.close(fd)
    assert (f"cannot resume {folder}: another kdistill process (pid 4242) is running in it; wait for it to finish"
            in capsys.readouterr().err)
    assert not (folder / "checkpoints").exists()


def test_a_fresh_run_never_shares_a_claimed_folder(tmp_path):
    claimed = tmp_path / "run"
    claimed.mkdir()
    fd = _hold(claimed)  # claimed by another run that has not written anything yet
    try:
        assert open_run_dir(tmp_path / "run") == tmp_path / "run-2"
    finally:
        os.close(fd)
        release_run_dir(tmp_path / "run-2")


def test_a_lock_left_by_a_killed_process_does_not_block(interrupted):
    _, folder = interrupted
    dead = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                             f"fd = os.open({str(folder / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
                             "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert dead.stdout.readline().strip() == "locked"
    dead.kill()  # as kill -9: no chance to clean up; the lock file stays behind
    dead.wait()
    assert (folder / LOCK).exists()
    assert open_run_dir(folder, resume=True) == folder
    finish_run_dir(folder)
    assert not (folder / LOCK).exists() and not (folder / INCOMPLETE).exists()


def test_the_incomplete_marker_replaces_a_link_instead_of_writing_through_it(interrupted, tmp_path):
    _, folder = interrupted
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (folder / INCOMPLETE).unlink()
    (folder / INCOMPLETE).symlink_to(outside)
    assert open_run_dir(folder, resume=True) == folder
    release_run_dir(folder)
    assert outside.read_text() == "precious" and not (folder / INCOMPLETE).is_symlink()


def test_a_new_run_that_fails_its_checks_leaves_no_folder(tiny, write_experiment, tmp_path, capsys):
    tiny["students"][1]["train"] = {"device": "tpu"}
    out = tmp_path / "runs" / "x"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()  # nothing to resume, and the next run is not pushed to x-2
    mine = tmp_path / "mine"
    mine.mkdir()  # an empty folder the user made is kept
    assert main(["run", str(write_experiment(tiny)), "--out", str(mine), "--quiet"]) == 2
    assert mine.is_dir() and not any(mine.iterdir())
