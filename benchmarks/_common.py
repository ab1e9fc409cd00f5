"""Shared helpers of the benchmarks: the Fashion-MNIST task, alternating timed repetitions and
result files (JSON + Markdown) under ``benchmarks/results/``."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from kdistill.data import ArrayDataset, Splits, idx_images, load_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]


def fashion_mnist(n_train: int, n_val: int, n_test: int, seed: int = 0) -> Splits:
    """A seeded subset of the real Fashion-MNIST: train/val from its training set, test from its test set."""
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {FASHION}; install it with "
                         f"`apt-get install -y dataset-fashion-mnist`, or pass --dataset digits")
    x, y = idx_images(FASHION / "train-images-idx3-ubyte.gz", FASHION / "train-labels-idx1-ubyte.gz")
    xt, yt = idx_images(FASHION / "t10k-images-idx3-ubyte.gz", FASHION / "t10k-labels-idx1-ubyte.gz")
    order = np.random.default_rng(seed).permutation(len(y))
    tr, va = order[:n_train], order[n_train:n_train + n_val]
    te = np.random.default_rng(seed + 1).permutation(len(yt))[:n_test]
    return Splits(ArrayDataset(x[tr], y[tr], "fashion.train"), ArrayDataset(x[va], y[va], "fashion.val"),
                  ArrayDataset(xt[te], yt[te], "fashion.test"), CLASSES, name="fashion-mnist")


def digits() -> Splits:
    return load_dataset("digits")


def alternate(variants: dict, repeats: int, warmup: bool = True) -> dict[str, list]:
    """Run every variant ``repeats`` times, interleaved (ABC, CBA, ABC, ...) so that machine
    load drifts hit all variants alike. Each variant is called with the repetition number and
    returns a dict; its wall time is added as ``seconds`` and the CPU time of this process as
    ``cpu_seconds``. On shared cores a descheduled process keeps losing wall time but not CPU
    time, so with one torch thread the CPU time is the steadier measure of the work done. With
    ``warmup`` each variant first runs once untimed (repetition -1)."""
    out = {name: [] for name in variants}
    names = list(variants)
    for name in names if warmup else ():  # not timed: a first run pays one-off initialization
        variants[name](-1)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            record = variants[name](r) or {}
            record["seconds"], record["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
            out[name].append(record)
    return out


def forward_ratio(slow: torch.nn.Module, fast: torch.nn.Module, x: torch.Tensor, rounds: int = 10,
                  calls: int = 10) -> float:
    """How many times longer ``slow``'s inference forward pass on ``x`` takes than ``fast``'s:
    CPU time of ``calls`` passes, the two models alternating for ``rounds`` rounds, keeping the
    fastest round of each (on shared cores contention only ever adds time)."""
    best = {"slow": float("inf"), "fast": float("inf")}
    with torch.inference_mode():
        for model in (slow.eval(), fast.eval()):
            model(x)
        for _ in range(rounds):
            for name, model in (("slow", slow), ("fast", fast)):
                c0 = time.process_time()
                for _ in range(calls):
                    model(x)
                best[name] = min(best[name], time.process_time() - c0)
    return best["slow"] / best["fast"]


def spread(values) -> str:
    """``median [min-max]`` of a list of numbers."""
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def write(name: str, results: dict, markdown: str, out: str | None) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` into ``out`` (default benchmarks/results/)."""
    folder = Path(out) if out else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / f"{name}.md").write_text(markdown)
    return folder
