"""A gradient-boosting teacher, an MLP student and a decision-tree student, compared from Python
with kdistill.compare: the same run folder, table, verdicts and report as `kdistill run`.

    python examples/compare.py [--seeds 3] [--lightgbm]
"""

import argparse

import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

import kdistill
from kdistill.models import mlp
from kdistill.report import table_rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lightgbm", action="store_true", help="a LightGBM teacher (pip install lightgbm)")
    parser.add_argument("--out", default="runs/compare-gbm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.lightgbm:
        from lightgbm import LGBMClassifier

        teacher = LGBMClassifier(n_estimators=200, learning_rate=0.1, verbose=-1)
    else:
        teacher = HistGradientBoostingClassifier(max_iter=200)
    data = lambda seed: kdistill.load_dataset("digits", seed=seed)  # noqa: E731 - a split per seed
    results = kdistill.compare(
        teacher,  # unfitted: trained on each seed's train split
        {"mlp": mlp((1, 8, 8), 10, hidden=(32,)),  # distilled with kd_objective(0.5, 4); "mlp alone" added
         "tree": (DecisionTreeClassifier(max_depth=8), {"mode": "soft", "temperature": 2.0})},
        data, seeds=range(args.seeds), out=args.out, epochs=40, lr=3e-3, patience=10, quiet=True)
    header, rows = table_rows(results)
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    print("\n".join(c["verdict"] for c in results["comparisons"]))
    print(f"Run folder: {results['folder']}")


if __name__ == "__main__":
    main()
