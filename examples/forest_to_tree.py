"""Distil a random forest into one decision tree (relabelling, soft targets, MUNGE).

Part 1 reproduces the relabelling study on iris: a RandomForest(n_estimators=100, max_depth=5)
teacher relabels the training data and one decision tree is fitted to its labels. Both are
scored against the true labels of the held-out split, and the tree's fidelity (agreement with
the forest) is given on the training data and on the held-out split.

Part 2 compares, on breast_cancer and wine, the same tree trained alone on the true labels and
distilled three ways: hard (relabelling), soft (the forest's probabilities as sample weights)
and MUNGE (soft, plus synthetic samples labelled by the forest). Each cell is the mean ± the
standard deviation over five seeds of the split, the forest and the tree. Every tree has the
same budget of 12 leaves (grown best-first), so the variants are compared at equal size: an
unlimited tree fitted to soft targets keeps splitting until each leaf holds one training point.

Run: ``python examples/forest_to_tree.py`` (about a minute on one CPU core).
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from kdistill.sklearn import DistilledClassifier

SEEDS = range(5)
STUDENT = {"max_leaf_nodes": 12}  # every tree gets the same size budget: compared at equal size
VARIANTS = {"tree alone": None, "hard": {"mode": "hard"}, "soft": {"mode": "soft"},
            "munge": {"mode": "soft", "augment": "munge"}}


def forest(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=100, max_depth=5, random_state=seed)


def split(bunch, seed: int):
    return train_test_split(bunch.data, bunch.target, test_size=0.3, stratify=bunch.target, random_state=seed)


def iris_relabelling() -> None:
    bunch = load_iris()
    x_train, x_test, y_train, y_test = split(bunch, 0)
    teacher = forest(0).fit(x_train, y_train)
    student = DistilledClassifier(teacher, DecisionTreeClassifier(random_state=0, **STUDENT), mode="hard")
    student.fit(x_train, y_train)
    names = list(bunch.target_names)
    for title, model in (("teacher: random forest", teacher), ("student: decision tree", student)):
        print(f"\n== iris, {title}, held-out split ({len(y_test)} samples)")
        print(classification_report(y_test, model.predict(x_test), target_names=names, digits=3))
    held_out = np.mean(student.predict(x_test) == teacher.predict(x_test))
    print(f"student fidelity to the teacher: {student.fidelity_:.3f} on the training data, "
          f"{held_out:.3f} on the held-out split; tree depth {student.student_.get_depth()}, "
          f"{student.student_.get_n_leaves()} leaves")


def scores(bunch, seed: int, variant) -> list[float]:
    x_train, x_test, y_train, y_test = split(bunch, seed)
    teacher = forest(seed).fit(x_train, y_train)
    tree = DecisionTreeClassifier(random_state=seed, **STUDENT)
    if variant is None:
        model = tree.fit(x_train, y_train)
    else:
        model = DistilledClassifier(teacher, tree, random_state=seed, **variant).fit(x_train, y_train)
        tree = model.student_
    pred = model.predict(x_test)
    return [accuracy_score(y_test, pred), f1_score(y_test, pred, average="macro"),
            np.mean(pred == teacher.predict(x_test)), tree.get_depth(), tree.get_n_leaves()]


def teacher_scores(bunch, seed: int) -> list[float]:
    x_train, x_test, y_train, y_test = split(bunch, seed)
    pred = forest(seed).fit(x_train, y_train).predict(x_test)
    return [accuracy_score(y_test, pred), f1_score(y_test, pred, average="macro"), 1.0, np.nan, np.nan]


def cell(values, digits: int) -> str:
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return "-"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def comparison() -> None:
    header = ["dataset", "model", "accuracy", "macro-F1", "fidelity (test)", "depth", "leaves"]
    rows = []
    for name, loader in (("breast_cancer", load_breast_cancer), ("wine", load_wine)):
        bunch = loader()
        runs = {"forest (teacher)": [teacher_scores(bunch, s) for s in SEEDS]}
        runs.update({label: [scores(bunch, s, v) for s in SEEDS] for label, v in VARIANTS.items()})
        for label, results in runs.items():
            cols = np.array(results).T
            rows.append([name, label] + [cell(c, 3) for c in cols[:3]] + [cell(c, 1) for c in cols[3:]])
    print(f"\n== forest -> tree, held-out split, mean ± std over {len(SEEDS)} seeds")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    iris_relabelling()
    comparison()
