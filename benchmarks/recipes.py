"""Does the sweep choose well? ``kdistill tune`` on three tasks of different shape, each: the
sweep's answer (a distilled recipe, or "train it alone") against the student alone given the same
search, on the test split, paired over 3 seeds.

Tasks (every setting below was fixed before any test number was seen; nothing here is tuned on test):

- **digits**: scikit-learn's 8x8 digits, 25% of the training labels, the rest as the unlabelled
  pool; a 110k-parameter CNN teacher (the demo's) and a 3.7k-parameter CNN student.
- **fashion**: Fashion-MNIST as in issue 13's protocol: 5,000 labelled training images, 5,000 for
  validation, the other 50,000 training images as the unlabelled pool, the official 10,000 test
  images; a ~440k-parameter CNN teacher and a ~4.4k-parameter CNN student. No augmentation (the
  lead's pilot found the pool worth far more than views for this student; random augmentation
  would run the teacher live on every batch).
- **tabular**: a synthetic 4-class table (scikit-learn's ``make_classification``: 20,000 rows,
  20 features, 10 informative, 3 clusters per class, 2% label noise; written to CSV and read as
  a table source), ~11.5% of the training labels, the rest as the pool; a HistGradientBoosting
  teacher fitted on the labelled training rows, used through ``as_teacher`` (the output cache
  keys it by its content), and an MLP student with one hidden layer of 16. Issue 19 added the
  tabular levers to its search: synthetic rows (none, MUNGE or Gibbs; 3 to 50 per labelled
  training row, labelled by the teacher and joined to the pool).

Each sweep searches kd (with and without logit standardization), dist, dkd and fm, the label
weight, the learning rate, the budget in optimizer steps and whether the pool joins; the student
alone searches the same learning rates and budgets. The best candidates are re-run with 3 seeds
to decide the answer on validation; then the answer and the student alone are trained with seeds
0, 1, 2 (same split, the sweep's teacher) and compared on test by the study's paired t-test.

Targets (issue 14): on no task is the answer significantly worse than the student alone; on at
least two of three it is significantly better.

    python benchmarks/recipes.py [--tasks digits,fashion,tabular] [--jobs 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # gradient boosting on a shared 2-core machine

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FASHION, write  # noqa: E402

from kdistill import as_teacher, config  # noqa: E402
from kdistill.data import read_source  # noqa: E402
from kdistill.study import load_splits  # noqa: E402
from kdistill.tune import tune  # noqa: E402

SEEDS = [0, 1, 2]
METHODS = ["kd", "dist", "dkd", "fm"]
SEARCH = {"methods": METHODS, "options": {"kd": {"standardize": [False, True]}}, "alpha": [0.1, 1.0],
          "temperature": [1.0, 8.0], "top": 3, "repeats": 3}
STUDENT_TRAIN = {"batch_size": 64, "schedule": "warmup-cosine"}

TASKS = {
    "digits": {
        "data": {"builtin": {"name": "digits"}, "train_fraction": 0.25, "unlabeled_rest": True},
        "teacher": {"model": "cnn", "options": {"channels": [32, 64, 128], "hidden": 128},
                    "train": {"epochs": 40, "lr": 0.003, "schedule": "cosine"}},
        "student": {"model": "cnn", "options": {"channels": [8, 16], "hidden": 32}},
        "tune": {**SEARCH, "lr": [0.001, 0.02], "steps": [150, 1500], "trials": 16, "baseline_trials": 8},
    },
    "fashion": {
        "data": {"idx": {"train_images": str(FASHION / "train-images-idx3-ubyte.gz"),
                         "train_labels": str(FASHION / "train-labels-idx1-ubyte.gz"),
                         "test_images": str(FASHION / "t10k-images-idx3-ubyte.gz"),
                         "test_labels": str(FASHION / "t10k-labels-idx1-ubyte.gz")},
                 "val_size": 5000 / 60000, "train_fraction": 5000 / 55000, "unlabeled_rest": True},
        "teacher": {"model": "cnn", "options": {"channels": [32, 64, 128], "hidden": 300, "dropout": 0.3},
                    "train": {"epochs": 30, "lr": 0.003, "schedule": "cosine"}},
        "student": {"model": "cnn", "options": {"channels": [4, 8], "hidden": 10, "dropout": 0.0}},
        "tune": {**SEARCH, "top": 2, "lr": [0.002, 0.02], "steps": [1500, 6000], "trials": 10,
                 "baseline_trials": 5},
    },
    "tabular": {
        "data": {"table": {"path": "tabular.csv", "target": "label"}, "val_size": 0.15, "test_size": 0.2,
                 "train_fraction": 0.115, "unlabeled_rest": True},
        "teacher": {"model": "mlp"},  # replaced by the gradient-boosting teacher given from Python
        "student": {"model": "mlp", "options": {"hidden": [16]}},
        "tune": {**SEARCH, "lr": [0.001, 0.02], "synthetic": ["none", "munge", "gibbs"], "synthetic_size": [3, 50],
                 "steps": [300, 3000], "trials": 12, "baseline_trials": 6},
    },
}


def write_table(path: Path) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=20000, n_features=20, n_informative=10, n_redundant=4, n_classes=4,
                               n_clusters_per_class=3, class_sep=1.2, flip_y=0.02, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    frame["label"] = [f"class{k}" for k in y]
    frame.to_csv(path, index=False)


def gradient_boosting_teacher(exp):
    from sklearn.ensemble import HistGradientBoostingClassifier

    source = read_source(exp.data, exp.path)
    data = load_splits(exp, exp.seeds[0], source)  # the sweep's split: the teacher sees its labelled rows only
    x, y = data.train.x.reshape(len(data.train), -1).numpy(), data.train.y.numpy()
    return as_teacher(HistGradientBoostingClassifier(random_state=0).fit(x, y))  # fingerprinted by content


def experiment(name: str, work: Path):
    task = TASKS[name]
    mapping = {"name": name, "data": task["data"], "teacher": task["teacher"], "student": task["student"],
               "students": [{"name": "student alone", "methods": [{"name": "ce"}]}],
               "train": STUDENT_TRAIN, "seeds": SEEDS, "tune": task["tune"]}
    if name == "tabular":
        write_table(work / "tabular.csv")
    return config.validate(mapping, base=work)


def run_task(name: str, work: Path, jobs: int) -> dict:
    exp = experiment(name, work)
    start = time.perf_counter()
    teacher = gradient_boosting_teacher(exp) if name == "tabular" else None
    summary = tune(exp, out=work / f"{name}-sweep", quiet=True, jobs=jobs, teacher=teacher)
    models = {m["name"]: m for m in summary["results"]["models"]}
    alone = models["student alone"]
    verdict = next((c for c in summary["comparisons"] if c["model"] == summary["distilled_model"]), None)
    chosen = models[summary["chosen_model"]]
    decision = summary["decision"]
    recipe = next(c["recipe"] for c in decision["candidates"] if c["candidate"] == decision["chosen"])
    row = {"task": name, "answer": summary["choice"], "recipe": recipe,
           "teacher": summary["teacher_test_accuracy"], "alone": alone["accuracy"],
           "alone_std": alone["std"]["accuracy"],
           "chosen": chosen["accuracy"], "chosen_std": chosen["std"]["accuracy"],
           "gap_recovered": summary["gap_recovered"], "sweep_seconds": summary["cost"]["sweep_seconds"],
           "final_seconds": summary["cost"]["final_seconds"], "teacher_passes": summary["cost"]["teacher_passes"],
           "trainings": summary["cost"]["trainings"], "total_seconds": round(time.perf_counter() - start, 1),
           "decision": {k: summary["decision"][k] for k in ("difference", "margin", "pooled_std")},
           "distilled_verdict": verdict, "sentence": summary["answer"]}
    if summary["choice"] == "distilled":
        row["delta"], row["significant"] = verdict["accuracy_delta"], verdict["significant"]
    else:
        row["delta"], row["significant"] = 0.0, False  # the answer is the student alone itself
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["# Recipes chosen by the sweep vs the student alone (test accuracy, 3 seeds, mean ± std)", "",
             "| task | answer | teacher | student alone | answer's test accuracy | Δ vs alone (paired) | gap recovered "
             "| sweep wall s | final s | teacher passes | trainings |", "|" + "---|" * 11]
    for r in rows:
        sig = "significant" if r["significant"] else "not significant"
        delta = "–" if r["answer"] == "alone" else f"{r['delta']:+.4f} ({sig})"
        gap = "–" if r["gap_recovered"] is None else f"{r['gap_recovered']:.0%}"
        lines.append(f"| {r['task']} | {'distil: ' + r['recipe'] if r['answer'] == 'distilled' else 'train it alone'} "
                     f"| {r['teacher']:.4f} | {r['alone']:.4f} ± {r['alone_std']:.4f} | {r['chosen']:.4f} ± "
                     f"{r['chosen_std']:.4f} | {delta} | {gap} | {r['sweep_seconds']:.0f} | {r['final_seconds']:.0f} "
                     f"| {r['teacher_passes']} | {r['trainings']} |")
    worse = [r["task"] for r in rows if r["answer"] == "distilled" and r["significant"] and r["delta"] < 0]
    better = [r["task"] for r in rows if r["answer"] == "distilled" and r["significant"] and r["delta"] > 0]
    lines += ["", f"- Significantly worse than the student alone: {', '.join(worse) or 'none'} "
                  f"(target: none) -> {'met' if not worse else 'MISSED'}.",
              f"- Significantly better: {', '.join(better) or 'none'} ({len(better)} of {len(rows)}; target: at least "
              f"2 of 3) -> {'met' if len(better) >= 2 else 'MISSED'}."]
    lines += ["", "Answers, as the sweep said them:", ""] + [f"- {r['task']}: {r['sentence']}" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="digits,fashion,tabular")
    parser.add_argument("--jobs", type=int, default=2, help="trial processes per sweep (default 2, one per core)")
    parser.add_argument("--out", default=None,
                        help="folder of recipes.json and recipes.md (default benchmarks/results)")
    parser.add_argument("--keep", default=None, help="keep the sweeps' run folders here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    np.random.seed(0)
    logging.getLogger("kdistill").setLevel(logging.INFO)  # one line per trial (and per worker's trial)
    logging.getLogger("kdistill").addHandler(logging.StreamHandler())
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kdistill-recipes-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in args.tasks.split(","):
            rows.append(run_task(name, work, args.jobs))
            print(markdown(rows), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    folder = write("recipes", {"tasks": rows, "seeds": SEEDS, "jobs": args.jobs}, markdown(rows), args.out)
    print(f"wrote {folder / 'recipes.json'} and {folder / 'recipes.md'}")


if __name__ == "__main__":
    main()
