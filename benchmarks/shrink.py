"""Shrink: does a student pruned from the teacher and distilled beat the same architecture trained
alone, and a zoo student of its size? Fashion-MNIST, the 431k-parameter CNN teacher of
``benchmarks/scarce_labels.py``.

Protocol (fixed by issue 22 and before any result was seen, not tuned after): two settings,
(a) all labels: 55,000 labelled training images, 5,000 validation (a seeded permutation of the
60,000), and (b) 5,000 labels plus the other 50,000 as the unlabelled pool (their labels never
read), 5,000 validation; the official 10,000 test images. Budgets: 10x and 30x fewer parameters
than the teacher. Per budget four arms:

- pruned + distilled: the trained teacher pruned (Torch-Pruning, magnitude, one shot) to the
  budget, its weights inherited, distilled;
- pruned arch alone: the same pruned architecture from new weights, trained on labels alone;
- pruned arch distilled: the same from new weights, distilled;
- zoo alone: the zoo CNN (channels [16, 32], hidden 64, scaled in width to the budget) alone.

Distillation: CE + KD (alpha 0.5, T 4, kdistill's default), the teacher's outputs from the
teacher-output cache; in (b) on the labelled images and the pool. Every student trains
``STUDENT_EPOCHS`` epochs of the distilled set (55,000 images in both settings); a student alone
in (b) trains the same number of optimizer steps on its 5,000 labels. Adam lr 0.01,
warmup-cosine, batch 64, best validation epoch kept. Teacher: (a) ``TEACHER_EPOCHS_ALL`` epochs
on 55,000, (b) ``TEACHER_EPOCHS_SCARCE`` on 5,000, lr 0.003. Seeds 0, 1, 2. Reported: test
accuracy (mean ± std), the paired difference of each arm with the pruned arch alone (t-test at
5%), parameters, ONNX Runtime latency at batch 1 and 64, wall time (pruning included).

``--part search`` times ``kdistill.shrink`` (budget 10x fewer parameters, seed 0, setting (a)):
its whole wall time over one student's training for the same epochs, the teacher's cache built
before; the front's reference points (its architectures trained alone) are timed apart.
``--part cache`` measures the teacher-output cache build's samples per second against the
teacher's ONNX Runtime throughput at the same batch size.

    apt-get install -y dataset-fashion-mnist
    nice -n 10 python benchmarks/shrink.py --part arms --setting all --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CLASSES, FASHION, RESULTS  # noqa: E402
from scarce_labels import TEACHER, fashion  # noqa: E402

import kdistill  # noqa: E402
from kdistill import CachedTeacher, models  # noqa: E402
from kdistill.data import ArrayDataset, Splits  # noqa: E402
from kdistill.metrics import predict_logits  # noqa: E402
from kdistill.models.prune import FromTeacher  # noqa: E402
from kdistill.shrink.budget import Budget, check_family  # noqa: E402
from kdistill.shrink.candidates import scale_to  # noqa: E402
from kdistill.shrink.measure import onnx_latency_ms  # noqa: E402
from kdistill.study import verdicts  # noqa: E402

VALIDATION, LABELLED_SCARCE = 5000, 5000
BATCH, LR, TEACHER_LR = 64, 0.01, 0.003
STUDENT_EPOCHS, TEACHER_EPOCHS_ALL, TEACHER_EPOCHS_SCARCE = 3, 3, 30
BUDGETS = {"10x": 10, "30x": 30}
ZOO = {"model": "cnn", "options": {"channels": [16, 32], "hidden": 64}}
ARMS = ("pruned + distilled", "pruned arch alone", "pruned arch distilled", "zoo alone")
OBJECTIVE = kdistill.methods.kd_objective(0.5, 4.0)
SHAPE = (1, 28, 28)


def splits(seed: int, setting: str, limit: int | None = None) -> Splits:
    """Setting ``all`` (55k labelled) or ``scarce`` (5k labelled + 50k unlabelled pool)."""
    x, y, test = fashion()
    order = np.random.default_rng(seed).permutation(len(y))[:limit]
    n_val = VALIDATION if not limit else limit // 6
    val, rest = order[:n_val], order[n_val:]
    if limit:
        test = ArrayDataset(test.x[:limit], test.y[:limit], "fashion.test")
    if setting == "all":
        return Splits(ArrayDataset(x[rest], y[rest], "fashion.train"), ArrayDataset(x[val], y[val], "fashion.val"),
                      test, CLASSES, name="fashion-mnist")
    n = LABELLED_SCARCE if not limit else len(rest) // 10
    lab, pool = rest[:n], rest[n:]
    return Splits(ArrayDataset(x[lab], y[lab], "fashion.train"), ArrayDataset(x[val], y[val], "fashion.val"), test,
                  CLASSES, name="fashion-mnist", unlabeled=kdistill.data.unlabeled_set(x[pool]))


def options(seed: int, epochs: int) -> dict:
    return {"epochs": epochs, "batch_size": BATCH, "lr": LR, "schedule": "warmup-cosine", "seed": seed,
            "quiet": True}


def accuracy(model, data: Splits) -> float:
    logits, labels = predict_logits(model, data.test)
    return float((logits.argmax(1) == labels).float().mean())


def student_epochs(data: Splits, distilled: bool) -> int:
    """Equal optimizer steps: STUDENT_EPOCHS epochs of the distilled set, in epochs of the model's own."""
    per = {d: len(kdistill.data.epoch_plan(data.training(d), BATCH, True, 0)) for d in (True, False)}
    return STUDENT_EPOCHS if distilled else max(1, round(STUDENT_EPOCHS * per[True] / per[False]))


def measure(model) -> dict:
    return {"params": models.count_params(model), "onnx_ms_b1": onnx_latency_ms(model, SHAPE, 1),
            "onnx_ms_b64": onnx_latency_ms(model, SHAPE, 64)}


def teacher_for(seed: int, setting: str, data: Splits, folder: Path):
    path = folder / f"teacher-{setting}-seed{seed}.safetensors"
    torch.manual_seed(seed)
    teacher = models.cnn(SHAPE, 10, **TEACHER)
    start = time.perf_counter()
    if path.exists():
        kdistill.load_weights(teacher, path)
        return teacher, None
    epochs = TEACHER_EPOCHS_ALL if setting == "all" else TEACHER_EPOCHS_SCARCE
    kdistill.fit(teacher, data, **{**options(seed, epochs), "lr": TEACHER_LR})
    kdistill.save_weights(teacher, path)
    return teacher, time.perf_counter() - start


def run_arm(arm: str, budget: int, seed: int, teacher, data: Splits, cache: Path) -> dict:
    start = time.perf_counter()
    torch.manual_seed(seed)
    distilled = arm.endswith("distilled")
    if arm == "zoo alone":
        family = check_family(ZOO)
        limit = Budget("params", models.count_params(teacher) / budget)
        model = models.build_model("cnn", scale_to(family, limit, data), SHAPE, 10)
    else:
        weights = "inherit" if arm == "pruned + distilled" else "fresh"
        model = FromTeacher(prune=1 - 1 / budget, weights=weights).start(teacher, data)
    pruned_s = time.perf_counter() - start
    opts = options(seed, student_epochs(data, distilled))
    if distilled:
        history = kdistill.distill(CachedTeacher(teacher, cache_dir=cache), model, data, objective=OBJECTIVE, **opts)
    else:
        history = kdistill.fit(model, data, **opts)
    return {"test": accuracy(model, data), "val": max(e["val_accuracy"] for e in history.epochs),
            "epochs": opts["epochs"], "wall_s": time.perf_counter() - start, "prune_s": pruned_s, **measure(model)}


def arms(args) -> None:
    folder = Path(args.out) / "shrink"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        data = splits(seed, args.setting, args.limit)
        teacher, seconds = teacher_for(seed, args.setting, data, folder)
        result = {"seed": seed, "setting": args.setting, "teacher": {"test": accuracy(teacher, data),
                                                                     "wall_s": seconds, **measure(teacher)}}
        print(f"{args.setting} seed {seed} teacher: {result['teacher']}", flush=True)
        with tempfile.TemporaryDirectory() as cache:
            for name, budget in BUDGETS.items():
                for arm in ARMS:
                    result[f"{name} {arm}"] = run_arm(arm, budget, seed, teacher, data, Path(cache))
                    print(f"{args.setting} seed {seed} {name} {arm}: {result[f'{name} {arm}']}", flush=True)
                    path = folder / f"arms-{args.setting}-seed{seed}.json"
                    path.write_text(json.dumps(result, indent=2) + "\n")


def search(args) -> None:
    """kdistill.shrink at 10x fewer parameters on setting (a), seed 0, the teacher's cache built
    before: its search's wall time over one student's training alone for the same epochs."""
    folder = Path(args.out) / "shrink"
    folder.mkdir(parents=True, exist_ok=True)
    seed = args.seeds[0]
    data = splits(seed, "all", args.limit)
    teacher, _ = teacher_for(seed, "all", data, folder)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        start = time.perf_counter()
        served = CachedTeacher(teacher, cache_dir=cache)
        for ds in (data.training(True), data.val):
            served.for_dataset(ds)
        cache_s = time.perf_counter() - start
        alone = run_arm("zoo alone", 10, seed, teacher, data, cache)
        start = time.perf_counter()
        out = kdistill.shrink(teacher, data, budget={"params": 0.1}, family=ZOO, objective=OBJECTIVE,
                              out=Path(tmp) / "run", cache_dir=cache, quiet=True,
                              **{k: v for k, v in options(seed, STUDENT_EPOCHS).items() if k not in ("seed", "quiet")})
        total = time.perf_counter() - start
        (folder / "pareto.md").write_text((Path(tmp) / "run" / "pareto.md").read_text())
        (folder / "pareto.png").write_bytes((Path(tmp) / "run" / "pareto.png").read_bytes())
    cost = out["cost"]
    result = {"seed": seed, "cache_build_s": cache_s, "alone_train_s": alone["wall_s"], "search_s": cost["search_s"],
              "prepare_s": cost["prepare_s"], "shrink_total_s": total,
              "search_over_alone": cost["search_s"] / alone["wall_s"],
              "search_and_candidates_over_alone": (cost["search_s"] + cost["prepare_s"]) / alone["wall_s"],
              "epochs_trained": cost["epochs"], "one_student_epochs": cost["one_student_epochs"],
              "references_s": cost["references_s"], "reference_epochs": cost["reference_epochs"],
              "search_and_references_over_alone": (cost["search_s"] + cost["references_s"]) / alone["wall_s"],
              "candidates": out["candidates"], "references": out["references"], "chosen": out["chosen"],
              "alone_test": out["alone_test_accuracy"]}
    (folder / "search.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "candidates"}, indent=2, default=str))


def cache_speed(args) -> None:
    """Samples per second of the teacher-output cache build (before: eager PyTorch, now: its
    fastest engine) against ONNX Runtime alone on the same teacher and batch size (128, the
    cache's), one thread; the best of 3 alternating rounds of each (shared cores only add time)."""
    import io

    from kdistill.export.runtime import session
    from kdistill.export.torch_onnx import to_onnx
    from kdistill.teachers import cache as cache_module

    x, _, _ = fashion()
    x = x[:args.limit or 50_000]  # the size of the unlabelled pool of setting (b)
    ds = ArrayDataset(x, np.zeros(len(x), np.int64), "fashion.cache")
    torch.manual_seed(0)
    teacher = models.cnn(SHAPE, 10, **TEACHER).eval()
    buffer = io.BytesIO()
    to_onnx(teacher, torch.zeros(2, *SHAPE), buffer)
    sess, xs, b = session(buffer.getvalue(), threads=1), np.asarray(x, dtype=np.float32), 128

    def ort():
        for i in range(0, len(xs), b):
            sess.run(None, {"input": xs[i:i + b]})

    def build(engine):
        def go():
            saved = cache_module.onnx_runner
            if engine == "eager":
                cache_module.onnx_runner = lambda t, batch: None  # the build as it was: eager PyTorch
            try:
                with tempfile.TemporaryDirectory() as d:
                    CachedTeacher(teacher, cache_dir=d, batch_size=b).for_dataset(ds)
            finally:
                cache_module.onnx_runner = saved
        return go

    best = {name: float("inf") for name in ("onnxruntime", "build before (eager)", "build now")}
    runs = {"onnxruntime": ort, "build before (eager)": build("eager"), "build now": build("fast")}
    for _ in range(3):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    rate = {name: len(xs) / s for name, s in best.items()}
    result = {"samples": len(xs), "batch": b, "samples_per_s": rate,
              "before_over_onnxruntime": rate["build before (eager)"] / rate["onnxruntime"],
              "now_over_onnxruntime": rate["build now"] / rate["onnxruntime"]}
    folder = Path(args.out) / "shrink"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cache.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def importance(args) -> None:
    """Not part of the issue's protocol, a side measurement of the pruning choices: setting (a),
    seed 0, the teacher of the arms; magnitude or Taylor importance, one shot or 5 iterative steps,
    at 10x and 30x fewer parameters: test accuracy right after pruning (no training) and after one
    epoch of distillation (the recipe of the arms)."""
    folder = Path(args.out) / "shrink"
    seed = args.seeds[0]
    data = splits(seed, "all", args.limit)
    teacher, _ = teacher_for(seed, "all", data, folder)
    out = []
    with tempfile.TemporaryDirectory() as cache:
        for budget in BUDGETS.values():
            for imp in ("magnitude", "taylor"):
                for steps in (1, 5):
                    torch.manual_seed(seed)
                    start = time.perf_counter()
                    model = FromTeacher(prune=1 - 1 / budget, importance=imp, iterative_steps=steps).start(teacher,
                                                                                                           data)
                    row = {"budget": budget, "importance": imp, "steps": steps, "prune_s": time.perf_counter() - start,
                           "params": models.count_params(model), "test_pruned": accuracy(model, data)}
                    kdistill.distill(CachedTeacher(teacher, cache_dir=cache), model, data, objective=OBJECTIVE,
                                     **options(seed, 1))
                    row["test_after_1_epoch"] = accuracy(model, data)
                    out.append(row)
                    print(row, flush=True)
                    (folder / "importance.json").write_text(json.dumps(out, indent=2) + "\n")


def table(folder: Path) -> str:
    """The Markdown table of every per-seed result file found (whatever finished)."""
    lines = []
    for setting in ("all", "scarce"):
        runs = [json.loads(p.read_text()) for p in sorted(folder.glob(f"arms-{setting}-seed*.json"))]
        if not runs:
            continue
        teacher = [r["teacher"]["test"] for r in runs]
        lines += [f"\n### ({'a' if setting == 'all' else 'b'}) {setting} labels: seeds "
                  f"{[r['seed'] for r in runs]}; teacher {runs[0]['teacher']['params']:,} parameters, test "
                  f"{statistics.mean(teacher):.4f} ± {_std(teacher):.4f}, ONNX b1 "
                  f"{runs[0]['teacher']['onnx_ms_b1']:.3f} ms, b64 {runs[0]['teacher']['onnx_ms_b64']:.3f} ms\n",
                  "| budget | arm | seeds | params | test accuracy | Δ vs pruned arch alone (paired) | vs teacher | "
                  "ONNX ms b1 | ONNX ms b64 | wall s (pruning incl.) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name in BUDGETS:
            base = f"{name} pruned arch alone"
            per_seed = {arm: [{"seed": r["seed"], "accuracy": r[f"{name} {arm}"]["test"]} for r in runs
                              if f"{name} {arm}" in r] for arm in ARMS}
            found = {v["model"]: v for v in verdicts({f"{name} {a}": s for a, s in per_seed.items()}, base,
                                                     [f"{name} {a}" for a in ARMS if a != "pruned arch alone"])}
            for arm in ARMS:
                rows = [r[f"{name} {arm}"] for r in runs if f"{name} {arm}" in r]
                if not rows:
                    continue
                acc = [x["test"] for x in rows]
                gap = statistics.mean(acc) - statistics.mean(teacher[:len(acc)])
                v = found.get(f"{name} {arm}")
                delta = (f"{v['accuracy_delta']:+.4f} ± {v['accuracy_delta_std']:.4f} "
                         f"({'significant' if v['significant'] else 'within noise'})") if v else "—"
                lines.append(f"| {name} fewer | {arm} | {len(rows)} | {rows[0]['params']:,} | "
                             f"{statistics.mean(acc):.4f} ± {_std(acc):.4f} | {delta} | {gap:+.4f} | "
                             f"{rows[0]['onnx_ms_b1']:.3f} | {rows[0]['onnx_ms_b64']:.3f} | "
                             f"{statistics.mean(x['wall_s'] for x in rows):.0f} |")
    return "\n".join(lines) + "\n"


def _std(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("arms", "search", "cache", "importance", "table"), default="arms")
    parser.add_argument("--setting", choices=("all", "scarce"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (a smoke run)")
    args = parser.parse_args()
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found in {FASHION}; apt-get install -y dataset-fashion-mnist")
    torch.set_num_threads(1)
    if args.limit:
        global STUDENT_EPOCHS, TEACHER_EPOCHS_ALL, TEACHER_EPOCHS_SCARCE
        STUDENT_EPOCHS, TEACHER_EPOCHS_ALL, TEACHER_EPOCHS_SCARCE = 1, 1, 1
    if args.part == "arms":
        arms(args)
    elif args.part == "search":
        search(args)
    elif args.part == "cache":
        cache_speed(args)
    elif args.part == "importance":
        importance(args)
    text = table(Path(args.out) / "shrink")
    (Path(args.out) / "shrink" / "arms.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
