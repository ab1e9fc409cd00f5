"""Is the engine lean? Training throughput (samples/s, student alone) of ``kdistill.fit`` against
a minimal hand-written PyTorch loop on the same model, data, batch size and optimizer.

Both slice the same in-memory tensors with a seeded permutation per epoch; the engine also
accumulates its per-epoch loss and accuracy, checks the loss is finite and calls its callbacks.
Repetitions alternate (engine, hand-written, hand-written, engine, ...). Target: >= 0.95.

    python benchmarks/loop.py [--repeats 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, digits, fashion_mnist, spread, write  # noqa: E402

from kdistill import models  # noqa: E402
from kdistill.data import Splits  # noqa: E402
from kdistill.engine import fit  # noqa: E402

LR = 1e-3


def hand_written(model, x, y, epochs: int, batch_size: int, seed: int) -> None:
    """The loop users write: shuffle, slice, forward, cross-entropy, backward, step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def case(name: str, data: Splits, build, epochs: int, batch_size: int, repeats: int) -> dict:
    train_only = Splits(data.train, None, None, data.classes, name=data.name)
    x, y = data.train.x, data.train.y
    samples = len(y) * epochs

    def engine(r):
        torch.manual_seed(r)
        fit(build(), train_only, epochs=epochs, batch_size=batch_size, lr=LR, seed=r, quiet=True)

    def manual(r):
        torch.manual_seed(r)
        hand_written(build(), x, y, epochs, batch_size, r)

    runs = alternate({"engine": engine, "hand-written": manual}, repeats)
    engine_sps = [samples / r["cpu_seconds"] for r in runs["engine"]]
    manual_sps = [samples / r["cpu_seconds"] for r in runs["hand-written"]]
    wall = [m["seconds"] / e["seconds"] for e, m in zip(runs["engine"], runs["hand-written"])]
    ratios = [e / m for e, m in zip(engine_sps, manual_sps)]
    return {"case": name, "samples_per_epoch": len(y), "epochs": epochs, "batch_size": batch_size,
            "engine_samples_per_s": engine_sps, "hand_written_samples_per_s": manual_sps,
            "engine_over_hand_written": statistics.median(ratios),
            "ratio_of_medians": statistics.median(engine_sps) / statistics.median(manual_sps),
            "paired_ratios": ratios, "paired_wall_ratios": wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the cores are shared)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [
        case("digits (1,149 train), demo student cnn[8,16] hidden 32, batch 32, 20 epochs", digits(),
             lambda: models.cnn((1, 8, 8), 10, channels=[8, 16], hidden=32, dropout=0.0), 20, 32, args.repeats),
        case("digits, tiny cnn[4,8] hidden 16 (the shortest step: worst case), batch 32, 20 epochs", digits(),
             lambda: models.cnn((1, 8, 8), 10, channels=[4, 8], hidden=16, dropout=0.0), 20, 32, args.repeats),
        case("Fashion-MNIST (10,000 train), student cnn[8,16], batch 64, 2 epochs", fashion_mnist(10_000, 1_000, 1_000),
             lambda: models.cnn((1, 28, 28), 10, channels=[8, 16], hidden=32, dropout=0.0), 2, 64, args.repeats),
    ]
    rows = ["| case | engine samples/s | hand-written samples/s | engine / hand-written: paired ratios, "
            "median [min-max] | ratio of medians | paired wall-time ratios |", "|---|---|---|---|---|---|"]
    for c in cases:
        rows.append(f"| {c['case']} | {spread(c['engine_samples_per_s'])} | {spread(c['hand_written_samples_per_s'])} "
                    f"| **{spread(c['paired_ratios'])}** | {c['ratio_of_medians']:.3f} "
                    f"| {spread(c['paired_wall_ratios'])} |")
    markdown = "\n".join(["# Engine throughput vs a minimal hand-written loop (student alone)", "",
                          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                          f"{args.repeats} alternating repetitions; throughput per CPU second of this process "
                          f"(steady on shared cores; wall-time ratios beside it); target >= 0.95.", "", *rows]) + "\n"
    folder = write("loop", {"cases": cases, "repeats": args.repeats, "torch": torch.__version__}, markdown, args.out)
    print(markdown)
    print(f"written to {folder}/loop.json and loop.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
