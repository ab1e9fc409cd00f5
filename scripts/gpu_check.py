"""Checks that need a CUDA GPU (the test suite never does): run where one is lent.

    python scripts/gpu_check.py [OUT_DIR]

Each check prints one line, ``PASS`` or ``FAIL``, with what it measured; the exit status is the
number of failures. The checks: training on CUDA matches CPU in accuracy (fp32), bf16 and fp16
autocast (with the gradient scaler) train to the same accuracy; distillation from the cached and
the live teacher on CUDA agree; a feature method (FitNet + AT) trains under bf16; unlabelled
inputs with fixed mixup views come from the cache on CUDA; Ctrl-C mid-epoch and resume on CUDA
equal an uninterrupted run (CUDA RNG state included); mutual learning on CUDA; ``kdistill run``
with ``train.device=cuda`` and ``kdistill export`` of that run folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, for the resume check

import torch  # noqa: E402

import kdistill  # noqa: E402
from kdistill.data import Augment, ViewDataset  # noqa: E402
from kdistill.engine import TrainingInterrupted  # noqa: E402
from kdistill.models import cnn, mlp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")  # "cpu": a dry run of the script itself, without a GPU
FAILURES: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        FAILURES.append(name)


def acc(model, data) -> float:
    return kdistill.evaluate(model.cpu(), data.test, data.classes)["accuracy"]


def student(data, seed=1):
    torch.manual_seed(seed)
    return cnn(data.input_shape, data.num_classes, channels=(8, 16), hidden=32)


def main(out: Path) -> int:
    if DEVICE == "cuda":
        assert torch.cuda.is_available(), "no CUDA device"
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}", flush=True)
    data = kdistill.load_dataset("digits", seed=0)
    opts = dict(epochs=15, batch_size=64, lr=0.003, quiet=True, seed=0)

    # 1. fp32 on CUDA vs CPU, then bf16 and fp16 autocast on CUDA
    scores = {}
    runs = [("cpu", "32"), (DEVICE, "32"), (DEVICE, "bf16")] + ([(DEVICE, "fp16")] if DEVICE == "cuda" else [])
    for device, precision in runs:
        model = student(data)
        t0 = time.perf_counter()
        history = kdistill.fit(model, data, device=device, precision=precision, **opts)
        on = next(model.parameters()).device.type
        scores[(device, precision)] = acc(model, data)
        check(f"fit {device} {precision}", on == device and scores[(device, precision)] > 0.85,
              f"test accuracy {scores[(device, precision)]:.3f}, params on {on}, best epoch {history.best_epoch}, "
              f"{time.perf_counter() - t0:.1f} s")
    base = scores[("cpu", "32")]
    check("CUDA accuracy within 0.03 of CPU", all(abs(v - base) <= 0.03 for v in scores.values()),
          ", ".join(f"{d}/{p} {v:.3f}" for (d, p), v in scores.items()))

    # 2. the teacher on CUDA; KD from the cache and from the live teacher
    torch.manual_seed(0)
    teacher = cnn(data.input_shape, data.num_classes, channels=(32, 64, 128), hidden=128)
    kdistill.fit(teacher, data, device=DEVICE, **opts)
    t_acc = acc(teacher, data)  # on the CPU; each distill moves the teacher to DEVICE again
    kd = {}
    for cache in (False, str(out / "cache")):
        model = student(data)
        kdistill.distill(teacher, model, data, temperature=4.0, cache=cache, device=DEVICE, **opts)
        kd[bool(cache)] = acc(model, data)
    check("KD on CUDA: cached and live teacher agree", abs(kd[True] - kd[False]) <= 0.03 and min(kd.values()) > 0.85,
          f"teacher {t_acc:.3f}; student KD cached {kd[True]:.3f}, live {kd[False]:.3f}")

    # 3. feature methods under bf16
    objective = [("ce", 0.1), ("kd", 0.9, {"temperature": 4}),
                 ("fitnet", 10.0, {"student": "features.3", "teacher": "features.3"}),
                 ("at", 1.0, {"student": ["features.3"], "teacher": ["features.3"]})]
    model = student(data)
    history = kdistill.distill(teacher, model, data, objective=objective, device=DEVICE, precision="bf16", **opts)
    final = history.epochs[-1]
    score = acc(model, data)
    check("FitNet + AT + KD on CUDA bf16", score > 0.85 and all(v == v for v in final.values() if isinstance(v, float)),
          f"test accuracy {score:.3f}; last epoch {({k: round(v, 4) for k, v in final.items()})}")

    # 4. scarce labels: unlabelled rest + fixed mixup views, from the cache, on CUDA
    scarce = kdistill.load_dataset("digits", seed=0, train_fraction=0.25)
    scarce.unlabeled = kdistill.data.unlabeled_set(data.train.x)  # the whole training split, as inputs only
    scarce.views = lambda base, labeled: ViewDataset(base, 4, Augment(translate=0.1), mixup=0.2, seed=0,
                                                     labeled=labeled)
    model = student(scarce)
    history = kdistill.distill(teacher, model, scarce, objective=[("ce", 0.5), ("kd", 0.5, {"temperature": 2})],
                               cache=str(out / "cache"), device=DEVICE, **opts)
    alone = student(scarce)
    kdistill.fit(alone, scarce, device=DEVICE, **opts)
    score = acc(model, scarce)
    check("unlabelled inputs + 4 mixup views from the cache on CUDA", score > 0.8,
          f"{len(scarce.train)} labelled + {len(scarce.unlabeled)} unlabelled; distilled {score:.3f}, "
          f"alone {acc(alone, scarce):.3f}, best epoch {history.best_epoch}")

    # 5. Ctrl-C mid-epoch on CUDA, resume == uninterrupted (weights and history)
    torch.use_deterministic_algorithms(True)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class CtrlC:
        def on_batch_end(self, state):
            if (state.epoch, state.batch) == (2, 5):
                os.kill(os.getpid(), signal.SIGINT)

    def fresh():
        torch.manual_seed(0)
        return mlp(data.input_shape, data.num_classes, hidden=[64], dropout=0.3)

    ropts = dict(opts, epochs=5)
    full = fresh()
    h_full = kdistill.distill(teacher, full, data, device=DEVICE, **ropts)
    ckpt = out / "ckpt"
    part = fresh()
    try:
        kdistill.distill(teacher, part, data, device=DEVICE, checkpoint_dir=str(ckpt), callbacks=[CtrlC()], **ropts)
        interrupted = False
    except TrainingInterrupted:
        interrupted = True
    resumed = fresh()
    h_res = kdistill.distill(teacher, resumed, data, device=DEVICE, checkpoint_dir=str(ckpt), resume=True, **ropts)
    same = all(torch.equal(v.cpu(), resumed.state_dict()[k].cpu()) for k, v in full.state_dict().items())
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in h_full.epochs]
    check("Ctrl-C and resume on CUDA equal an uninterrupted run", interrupted and same and strip == [
        {k: v for k, v in r.items() if k != "seconds"} for r in h_res.epochs],
        f"interrupted={interrupted}, identical weights={same}")
    torch.use_deterministic_algorithms(False)

    # 6. mutual learning on CUDA
    peers = [student(data, 1), student(data, 2)]
    result = kdistill.mutual(peers, data, device=DEVICE, **opts)
    scores_m = [acc(p, data) for p in peers]
    check("mutual learning on CUDA", min(scores_m) > 0.85, f"peers {scores_m}; {type(result).__name__}")

    # 7. the CLI: kdistill run on CUDA, then export of that run folder
    run_dir = out / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "kdistill", "run", str(ROOT / "examples" / "digits.yaml"), "--out", str(run_dir),
           "--quiet", "--set", f"train.device={DEVICE}", "--set", "train.precision=bf16", "--set", "train.epochs=10",
           "--set", "data.augment={views: 4, mixup: 0.2, translate: 0.1}", "--cache-dir", str(out / "cache")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    check("kdistill run on CUDA (bf16, views)", r.returncode == 0 and (run_dir / "report.html").is_file(),
          f"exit {r.returncode}; " + (r.stdout.strip().splitlines() or [""])[-1][:200] + r.stderr[-800:])
    r = subprocess.run([sys.executable, "-m", "kdistill", "export", str(run_dir), "--int8"], env=env,
                       capture_output=True, text=True, timeout=600)
    check("kdistill export of the CUDA run", r.returncode == 0, f"exit {r.returncode}; {r.stdout[-600:]}"
                                                                 f"{r.stderr[-800:]}")
    print(f"{len(FAILURES)} failure(s): {FAILURES}", flush=True)
    return len(FAILURES)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    sys.exit(main(folder))
