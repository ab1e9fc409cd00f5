"""Runtime: torchrun/DDP on CPU with gloo, bf16 mixed precision, Ctrl-C with mid-epoch resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import kdistill
from kdistill.engine import TrainingInterrupted, fit
from kdistill.methods.base import Method
from kdistill.models import mlp

SCRIPTS = Path(__file__).parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from ddp_fit import OPTIONS, problem  # noqa: E402

can_spawn = pytest.mark.skipif(os.environ.get("KDISTILL_NO_SUBPROCESS") == "1" or shutil.which("torchrun") is None
                               and not (Path(sys.executable).parent / "torchrun").exists(),
                               reason="processes cannot be spawned here (KDISTILL_NO_SUBPROCESS=1 or no torchrun)")


def torchrun(mode: str, out: Path, n: int = 2) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    launcher = Path(sys.executable).parent / "torchrun"
    cmd = [str(launcher) if launcher.exists() else "torchrun", "--standalone", "--nproc-per-node", str(n),
           str(SCRIPTS / "ddp_fit.py"), mode, str(out)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.distributed
@can_spawn
def test_two_processes_with_gloo_equal_one_process(tmp_path):
    """2 ranks x (8 + 7) samples per step with DDP == 1 process x 15 samples, to float tolerance."""
    torchrun("full", tmp_path)
    data, model = problem()
    history = fit(model, data, **OPTIONS)
    ddp = load_file(tmp_path / "weights.safetensors")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp[name], value, atol=1e-5, rtol=1e-4)  # stated tolerance: reduction order only
    with safe_open(str(tmp_path / "weights.safetensors"), "pt") as f:
        assert f.metadata()["world_size"] == "2"
    ddp_history = json.loads((tmp_path / "history.json").read_text())
    assert ddp_history[-1]["val_accuracy"] == pytest.approx(history.epochs[-1]["val_accuracy"])


@pytest.mark.distributed
@can_spawn
def test_two_processes_interrupted_mid_epoch_resume_like_an_uninterrupted_run(tmp_path):
    """Ctrl-C on rank 0 stops both ranks at the same batch; the epoch's partial sums are saved
    over both ranks, so the resumed history (and weights) equal an uninterrupted 2-process run."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    full.mkdir(), cut.mkdir()
    torchrun("full", full)
    torchrun("interrupt", cut)
    assert (cut / "interrupted0").exists() and (cut / "interrupted1").exists()
    assert torch.load(cut / "ckpt" / "last.pt", weights_only=True)["position"] == [1, 3]
    torchrun("resume", cut)
    a, b = (json.loads((d / "history.json").read_text()) for d in (full, cut))
    assert len(a) == len(b) == OPTIONS["epochs"]
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb, rel=1e-6)
    wa, wb = (load_file(d / "weights.safetensors") for d in (full, cut))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.distributed
@can_spawn
def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    torchrun("nan", tmp_path)
    assert (tmp_path / "raised0").exists() and (tmp_path / "raised1").exists()


def test_single_process_runtime_defaults():
    rt = kdistill.engine.Runtime.create("cpu", "32")
    assert (rt.rank, rt.world_size, rt.distributed, rt.is_main) == (0, 1, False, True)
    assert rt.all_sum(torch.ones(2)).tolist() == [1.0, 1.0] and rt.broadcast("x") == "x"


_DTYPES = {}


class _DtypeProbe(Method):
    """Records the dtypes the losses see; contributes nothing to the objective's value."""

    name = "dtype_probe"

    def forward(self, step):
        _DTYPES["logits_s"], _DTYPES["logits_t"] = step.logits_s.dtype, step.logits_t.dtype
        return step.logits_s.sum() * 0.0


def test_bf16_autocast_on_cpu_with_float32_losses(blobs, teacher, student):
    forward_dtypes = set()
    hook = student.classifier.register_forward_hook(lambda m, i, o: forward_dtypes.add(o.dtype))
    history = kdistill.distill(teacher, student, blobs, objective=[("ce", 0.5), ("kd", 0.5), _DtypeProbe()],
                               epochs=8, batch_size=16, lr=0.01, precision="bf16", quiet=True)
    hook.remove()
    assert torch.bfloat16 in forward_dtypes  # the student's forward ran in bf16 ...
    assert _DTYPES == {"logits_s": torch.float32, "logits_t": torch.float32}  # ... the losses in float32
    assert history.epochs[-1]["val_accuracy"] > 0.8
    assert all(p.dtype == torch.float32 for p in student.parameters())


def test_fp16_needs_cuda(blobs):
    with pytest.raises(ValueError, match="precision 'fp16' needs a CUDA device .* use precision 'bf16' on CPU"):
        kdistill.fit(mlp(5, 3), blobs, precision="fp16", device="cpu", quiet=True)


def test_bad_precision(blobs):
    with pytest.raises(ValueError, match="precision must be one of 32, bf16, fp16, got 'fp8'"):
        kdistill.fit(mlp(5, 3), blobs, precision="fp8", quiet=True)


class _CtrlC:
    """Sends this process SIGINT after a given batch, as a user pressing Ctrl-C would."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_batch_end(self, state):
        if (state.epoch, state.batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def ctrl_c_enabled():
    """Ctrl-C as in a terminal, even where the suite runs with SIGINT ignored (a background job of
    a shell without job control, nohup): kdistill rightly leaves an ignored SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_saves_mid_epoch_and_resume_matches(blobs, tmp_path, ctrl_c_enabled):
    opts = dict(epochs=4, lr=0.02, batch_size=16, patience=10, quiet=True, seed=1)

    def fresh():
        torch.manual_seed(0)
        return mlp(5, 3, hidden=[16], dropout=0.3)

    full = fresh()
    h_full = fit(full, blobs, **opts)
    part = fresh()
    with pytest.raises(TrainingInterrupted, match=r"interrupted in epoch 2 after batch 4; saved to .*last.pt"):
        fit(part, blobs, checkpoint_dir=str(tmp_path), callbacks=[_CtrlC(1, 3)], **opts)
    blob = torch.load(tmp_path / "last.pt", weights_only=True)
    assert blob["position"] == [1, 4] and blob["partial"]["seen"] == 4 * 16
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = fresh()
    h_res = fit(resumed, blobs, checkpoint_dir=str(tmp_path), resume=True, **opts)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in h_full.epochs] == \
        [{k: v for k, v in r.items() if k not in drop} for r in h_res.epochs]
