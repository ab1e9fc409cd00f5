"""Surviving a crash: a `kdistill run` killed with SIGKILL mid-training, then `--resume`, ends
with the same weights and metrics as a run that was never interrupted."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from kdistill.study import INCOMPLETE, open_run_dir

KEYS = ("accuracy", "macro_f1", "agreement", "kl_to_teacher")


def kdistill(*args, **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "kdistill", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finish(proc):
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.distributed
@pytest.mark.skipif(os.environ.get("KDISTILL_NO_SUBPROCESS") == "1", reason="processes cannot be spawned here")
def test_sigkill_mid_training_then_resume_matches_an_uninterrupted_run(tiny, write_experiment, tmp_path):
    tiny["train"] = {"epochs": 12, "batch_size": 16, "lr": 0.01}
    tiny["student"]["options"]["dropout"] = 0.2  # the RNG state must be restored too
    path = str(write_experiment(tiny))
    full = kdistill("run", path, "--out", str(tmp_path / "full"), "--quiet")  # runs alongside the one we kill

    killed = tmp_path / "killed"
    proc = kdistill("run", path, "--out", str(killed), "--quiet")
    ckpt = killed / "checkpoints" / "alone-seed0" / "last.pt"
    deadline = time.time() + 180
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (killed / INCOMPLETE).exists() and not (killed / "results.json").exists()
    position = torch.load(ckpt, weights_only=True)["position"]
    assert position[0] < 12, "the run finished before it could be killed; the test proves nothing"

    finish(kdistill("run", path, "--out", str(killed), "--resume", "--quiet"))
    finish(full)
    assert not (killed / INCOMPLETE).exists() and not (killed / "checkpoints").exists()
    for name in ("teacher-seed0", "alone-seed0", "kd-seed0"):
        a, b = (load_file(tmp_path / run / "weights" / f"{name}.safetensors") for run in ("full", "killed"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    ra, rb = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("full", "killed"))
    for ma, mb in zip(ra["models"], rb["models"]):
        assert [ma[k] for k in KEYS] == [mb[k] for k in KEYS], ma["name"]
    history = [json.loads(line) for line in (killed / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["model"] == "alone"] == list(range(1, 13))  # from 1, as the log


def test_an_interrupted_run_is_never_reused_silently(tmp_path, caplog):
    first = open_run_dir(tmp_path / "run")
    assert (first / INCOMPLETE).exists()
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        second = open_run_dir(tmp_path / "run")
    assert second == tmp_path / "run-2"
    assert "holds an interrupted run (continue it with --resume)" in caplog.text
    assert open_run_dir(tmp_path / "run", resume=True) == first


def test_resume_needs_an_interrupted_run(tmp_path):
    with pytest.raises(FileExistsError, match="cannot resume .*: it holds no interrupted run"):
        open_run_dir(tmp_path / "nothing", resume=True)
    done = tmp_path / "done"
    done.mkdir()
    (done / "results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="it holds a finished run"):
        open_run_dir(done, resume=True)
