"""Training throughput with 1 and 2 processes (torch.distributed through torchrun).

Each variant is a real ``torchrun --standalone --nproc-per-node N`` launch of this file in
worker mode, distilling a CNN teacher into a small CNN student on Fashion-MNIST (or digits where
``--dataset digits``) with the same global batch. Variants alternate
(1, 2, 2, 1, ...) so that machine noise hits both. Throughput is training samples per second of
the student's epochs, excluding start-up, the teacher's training and the first (warm-up) epoch.

    python benchmarks/scaling.py [--repeats 3] [--epochs 4] [--dataset fashion-mnist|digits]
                                 [--device cpu|cuda] [--out DIR]

On a CPU machine each process gets ``cores / N`` intra-op threads, so 2 processes share the
same cores as 1: the figure shows the cost or gain of data parallelism itself, not more hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def worker(args) -> None:
    """One torchrun process: train, and on rank 0 print the measured throughput as JSON."""
    import torch

    sys.path.insert(0, str(HERE))
    from _common import digits, fashion_mnist

    import kdistill
    from kdistill.engine import Runtime
    from kdistill.models import cnn

    torch.set_num_threads(args.threads)
    if args.dataset == "fashion-mnist":
        data, name = fashion_mnist(6000, 1000, 1000), "fashion-mnist (6000 train)"
    else:
        data, name = digits(), "digits"
    torch.manual_seed(0)
    teacher = cnn(data.input_shape, data.num_classes, channels=[32, 64], hidden=128)
    kdistill.fit(teacher, data, epochs=1, batch_size=args.batch, device=args.device, quiet=True)
    student = cnn(data.input_shape, data.num_classes, channels=[8, 16], hidden=32)
    history = kdistill.distill(teacher, student, data, epochs=args.epochs, batch_size=args.batch, lr=3e-3,
                               device=args.device, quiet=True)
    timed = history.epochs[1:]  # the first epoch warms up allocators and kernels
    rate = len(data.train) * len(timed) / sum(r["seconds"] for r in timed)
    rt = Runtime.current()  # one process under torchrun starts no process group
    if rt.is_main:
        print(json.dumps({"samples_per_s": rate, "dataset": name, "world_size": rt.world_size,
                          "threads": args.threads, "val_accuracy": history.epochs[-1]["val_accuracy"]}))
    rt.shutdown()


def launch(n: int, args) -> dict:
    cores = os.cpu_count() or 1
    threads = max(1, cores // n) if args.device == "cpu" else 1
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", str(n), __file__, "--worker",
           "--threads", str(threads), "--dataset", args.dataset, "--epochs", str(args.epochs),
           "--batch", str(args.batch), "--device", args.device]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=128, help="global batch size (shared out between processes)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda for one GPU per process")
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"],
                   help="fashion-mnist needs Debian's dataset-fashion-mnist")
    p.add_argument("--out", default=None, help="folder for scaling.json and scaling.md (default benchmarks/results)")
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    sys.path.insert(0, str(HERE))
    from _common import spread, write

    runs: dict[int, list[dict]] = {1: [], 2: []}
    for i in range(args.repeats):
        for n in ((1, 2) if i % 2 == 0 else (2, 1)):
            runs[n].append(launch(n, args))
    rates = {n: sorted(r["samples_per_s"] for r in rs) for n, rs in runs.items()}
    median = {n: r[len(r) // 2] for n, r in rates.items()}
    results = {"device": args.device, "cores": os.cpu_count(), "dataset": runs[1][0]["dataset"], "epochs": args.epochs,
               "global_batch": args.batch, "repeats": args.repeats, "samples_per_s": rates,
               "two_over_one": median[2] / median[1]}
    rows = [f"| {n} | {runs[n][0]['threads']} | {spread(rates[n])} | {median[n] / median[1]:.2f} |" for n in (1, 2)]
    markdown = "\n".join([
        f"Distillation throughput, {results['dataset']}, global batch {args.batch}, device {args.device}, "
        f"{os.cpu_count()} cores, {args.repeats} alternating repetitions (median [min-max])", "",
        "| processes | threads each | student samples/s | vs 1 process |", "|---|---|---|---|", *rows])
    print(markdown)
    print(f"wrote {write('scaling', results, markdown, args.out)}")


if __name__ == "__main__":
    main()
