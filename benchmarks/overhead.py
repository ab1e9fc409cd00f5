"""What does distillation cost compared with training the student alone?

On real Fashion-MNIST, with a teacher whose forward pass costs >= 20x the student's (measured
and reported), time E epochs of

(a) the student alone (``kdistill.train``),
(b) distillation with the live teacher on every batch (``kdistill.distill``),
(c) distillation with the teacher-output cache (``distill(cache=...)``, a fresh cache folder per
    repetition, so the one teacher pass that builds it is included),
(d) a hand-written loop in the style of the usual examples: teacher on every batch, no
    validation pass,
(e) distillation reading a cache entry built before the timing (a second student or sweep
    trial sharing the teacher and data),

interleaved per repetition (a b c d, d c b a, ...), each repetition with its own seed shared by
all variants. The teacher is trained once beforehand (not timed). Prints and writes JSON and a
Markdown table with ``live_over_alone``, ``cached_over_alone``, ``teacher_over_student_forward``
and the test accuracy of every variant. Target: cached_over_alone <= 1.15 with (b) and (c)
equally accurate within seed noise.

Why E matters: the cache costs one teacher pass over train + validation, which is worth about
``teacher_over_student_forward / 3`` student epochs (a training step costs ~3 forward passes),
plus the KD term per batch. So ``cached_over_alone`` ~ 1 + that pass / (E student epochs) + the
KD term's share; with a 20-30x teacher the pass alone is ~8 student epochs, and the target needs
E of 100 or more, or a cache shared by several students (variant e).

    python benchmarks/overhead.py [--epochs 150] [--repeats 3] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, fashion_mnist, forward_ratio, spread, write  # noqa: E402

import kdistill  # noqa: E402
from kdistill import models  # noqa: E402
from kdistill.metrics import predict_logits  # noqa: E402

# ~24x the student's forward on the benchmark's real inputs, on a quiet machine: a margin over the
# 20x the comparison asks for (measured and reported each run, with a warning when below 20x).
# [64, 128, 256] gave 18-19x on real images (23x on random ones); [80, 160, 320] gives 29x.
TEACHER = {"channels": [72, 144, 288], "hidden": 288}
STUDENT = {"channels": [4, 8], "hidden": 16, "dropout": 0.0}
ALPHA, TEMPERATURE, BATCH, LR = 0.5, 4.0, 64, 3e-3


def hand_written(teacher, student, x, y, epochs: int, seed: int) -> None:
    """Distillation as the usual examples write it: the teacher runs on every batch."""
    optimizer = torch.optim.Adam(student.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(seed)
    teacher.eval()
    student.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), BATCH):
            idx = order[start:start + BATCH]
            xb, yb = x[idx], y[idx]
            with torch.no_grad():
                logits_t = teacher(xb)
            logits_s = student(xb)
            soft = F.kl_div(F.log_softmax(logits_s / TEMPERATURE, 1), F.softmax(logits_t / TEMPERATURE, 1),
                            reduction="batchmean") * TEMPERATURE ** 2
            loss = (1 - ALPHA) * F.cross_entropy(logits_s, yb) + ALPHA * soft
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def accuracy(model, data) -> float:
    logits, labels = predict_logits(model, data.test)
    return float((logits.argmax(1) == labels).float().mean())


def variants(data, teacher, epochs: int, cache_root: Path) -> dict:
    shape, k = data.input_shape, data.num_classes
    options = {"epochs": epochs, "batch_size": BATCH, "lr": LR, "quiet": True}

    def student(seed):
        torch.manual_seed(seed)
        return models.cnn(shape, k, **STUDENT)

    def alone(r):
        s = student(r)
        kdistill.fit(s, data, seed=r, **options)
        return {"accuracy": accuracy(s, data)}

    def live(r):
        s = student(r)
        kdistill.distill(teacher, s, data, alpha=ALPHA, temperature=TEMPERATURE, seed=r, **options)
        return {"accuracy": accuracy(s, data)}

    def cached(r):
        s = student(r)
        kdistill.distill(teacher, s, data, alpha=ALPHA, temperature=TEMPERATURE, seed=r,
                         cache=tempfile.mkdtemp(dir=cache_root), **options)
        return {"accuracy": accuracy(s, data)}

    warm_root = tempfile.mkdtemp(dir=cache_root)
    kdistill.CachedTeacher(teacher, cache_dir=warm_root).for_dataset(data.train)
    kdistill.CachedTeacher(teacher, cache_dir=warm_root).for_dataset(data.val)

    def warm(r):
        s = student(r)
        kdistill.distill(teacher, s, data, alpha=ALPHA, temperature=TEMPERATURE, seed=r, cache=warm_root, **options)
        return {"accuracy": accuracy(s, data)}

    def reference(r):
        s = student(r)
        hand_written(teacher, s, data.train.x, data.train.y, epochs, r)
        return {"accuracy": accuracy(s, data)}

    return {"student alone": alone, "distill, live teacher": live, "distill, cached teacher": cached,
            "hand-written distill, live teacher": reference, "distill, cache built before (shared)": warm}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train", type=int, default=600, help="training samples (default 600)")
    parser.add_argument("--val", type=int, default=150, help="validation samples (default 150)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the cores are shared)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = fashion_mnist(args.train, args.val, 2000)
    torch.manual_seed(0)
    teacher = models.cnn(data.input_shape, data.num_classes, **TEACHER)
    # Trained to early stopping (not timed), so that it is better than the student it teaches.
    kdistill.fit(teacher, data, epochs=60, patience=10, batch_size=BATCH, lr=1e-3, quiet=True)
    ratio = forward_ratio(teacher, models.cnn(data.input_shape, data.num_classes, **STUDENT), data.train.x[:BATCH])
    with tempfile.TemporaryDirectory() as cache_root:
        for name, run in variants(data, teacher, 1, Path(cache_root)).items():
            run(-1)  # warm-up of every code path with one epoch, not timed
        runs = alternate(variants(data, teacher, args.epochs, Path(cache_root)), args.repeats, warmup=False)
    results = summarize(runs, ratio, accuracy(teacher, data), args)
    folder = write("overhead", results, markdown(results), args.out)
    print(markdown(results))
    print(f"written to {folder}/overhead.json and overhead.md")
    return 0


def summarize(runs: dict, ratio: float, teacher_accuracy: float, args) -> dict:
    seconds = {name: [r["seconds"] for r in rs] for name, rs in runs.items()}
    cpu = {name: [r["cpu_seconds"] for r in rs] for name, rs in runs.items()}
    alone = cpu["student alone"]
    over = {name: [t / a for t, a in zip(ts, alone)] for name, ts in cpu.items()}
    med = {name: statistics.median(ts) / statistics.median(alone) for name, ts in cpu.items()}
    wall = {name: statistics.median(ts) / statistics.median(seconds["student alone"]) for name, ts in seconds.items()}
    acc = {name: [r["accuracy"] for r in rs] for name, rs in runs.items()}
    return {
        "task": f"Fashion-MNIST, {args.train} train / {args.val} val / 2000 test, batch {BATCH}, {args.epochs} epochs",
        "teacher": TEACHER, "student": STUDENT, "teacher_test_accuracy": teacher_accuracy,
        "teacher_over_student_forward": ratio,
        # Headline: the median over repetitions of the paired ratio (variants of one repetition
        # run back to back, so slow drifts of the shared machine cancel out).
        "live_over_alone": statistics.median(over["distill, live teacher"]),
        "cached_over_alone": statistics.median(over["distill, cached teacher"]),
        "hand_written_over_alone": statistics.median(over["hand-written distill, live teacher"]),
        "shared_cache_over_alone": statistics.median(over["distill, cache built before (shared)"]),
        "accuracy_live": statistics.mean(acc["distill, live teacher"]),
        "accuracy_cached": statistics.mean(acc["distill, cached teacher"]),
        "cpu_seconds": cpu, "seconds": seconds, "paired_over_alone": over, "median_over_alone": med,
        "wall_median_over_alone": wall, "test_accuracy": acc,
        "repeats": args.repeats, "threads": args.threads, "torch": torch.__version__,
    }


def markdown(res: dict) -> str:
    rows = ["| variant | CPU s (median [min-max]) | over student alone: paired ratios, median [min-max] "
            "| ratio of median CPU s | wall s (median [min-max]) | wall ratio of medians "
            "| test accuracy (mean ± std over seeds) |",
            "|---|---|---|---|---|---|---|"]
    for name, ts in res["cpu_seconds"].items():
        acc = res["test_accuracy"][name]
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        rows.append(f"| {name} | {spread(ts)} | **{spread(res['paired_over_alone'][name])}** "
                    f"| {res['median_over_alone'][name]:.3f} | {spread(res['seconds'][name])} "
                    f"| {res['wall_median_over_alone'][name]:.3f} | {statistics.mean(acc):.4f} ± {std:.4f} |")
    return "\n".join([
        "# Cost of distillation vs training the student alone", "",
        f"{res['task']}; teacher cnn{res['teacher']['channels']} (test accuracy {res['teacher_test_accuracy']:.4f}), "
        f"student cnn{res['student']['channels']}; {res['repeats']} alternating repetitions (seed = repetition), "
        f"{res['threads']} torch thread(s), torch {res['torch']}. Ratios use the process CPU time (steady on "
        f"shared cores, where wall time also counts time spent descheduled); wall times are shown beside them.", "",
        f"- teacher_over_student_forward: **{res['teacher_over_student_forward']:.1f}x** (inference, batch {BATCH}, "
        f"CPU time, fastest of 10 alternating rounds)"
        + ("" if res["teacher_over_student_forward"] >= 20 else " - BELOW the 20x this comparison needs: was the "
           "machine busy? Rerun on a quiet machine"),
        f"- live_over_alone: **{res['live_over_alone']:.3f}**",
        f"- cached_over_alone: **{res['cached_over_alone']:.3f}** (cache build included; target <= 1.15)",
        f"- shared_cache_over_alone: **{res['shared_cache_over_alone']:.3f}** (entry built before, as for a "
        f"second student or sweep trial)", "",
        *rows]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
