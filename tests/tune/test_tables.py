"""Sweeps over a table: scikit-learn students and teacher, synthetic rows, out-of-fold outputs,
and a choice among students; each on a tiny make_classification table (300 rows)."""


import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from kdistill import config
from kdistill.config.tune import TuneConfig
from kdistill.tune import Recipe, Space, tune

TREE = "sklearn.tree:DecisionTreeClassifier"


@pytest.fixture
def table(tmp_path):
    x, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_redundant=1, n_classes=3,
                               n_clusters_per_class=2, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    frame["label"] = [f"c{k}" for k in y]
    frame.to_csv(tmp_path / "table.csv", index=False)

    def experiment(**tune):
        mapping = {"name": "table", "data": {"table": {"path": "table.csv", "target": "label"}, "val_size": 0.2,
                                             "test_size": 0.2},
                   "teacher": {"model": "sklearn.ensemble:RandomForestClassifier",
                               "options": {"n_estimators": 10, "random_state": 0}},
                   "student": {"model": TREE, "options": {"max_depth": 3}},
                   "students": [{"name": "alone", "methods": [{"name": "ce"}]}],
                   "seeds": [0], "tune": {"synthetic": ["none", "munge", "gibbs"], "synthetic_size": [3, 12],
                                          "trials": 8, "top": 2, "repeats": 2, **tune}}
        return config.validate(mapping, base=tmp_path)

    return experiment


def _never_worse(summary):
    """The rule: a distilled answer beat its own student alone's re-runs by more than the margin."""
    decision = summary["decision"]
    rows = {r["candidate"]: r for r in decision["candidates"]}
    if summary["choice"] == "distilled":
        assert rows[decision["chosen"]]["mean"] - rows[decision["baseline"]]["mean"] > decision["margin"]
    else:
        assert decision["chosen"] == decision["baseline"] and summary["chosen_model"] == "student alone"


@pytest.mark.slow
def test_a_tree_student_sweep_searches_synthetic_rows_and_out_of_fold_outputs(table, tmp_path):
    out = tmp_path / "sweep"
    summary = tune(table(), trials=6, out=out, quiet=True)
    distilled = [t for t in summary["trials"] if t["study"] == "distilled" and t["state"] == "COMPLETE"]
    assert len(distilled) == 6
    assert len({t["params"]["synthetic"] for t in distilled}) >= 2
    sizes = {t["params"]["synthetic_size"] for t in distilled if "synthetic_size" in t["params"]}
    assert len(sizes) >= 2 and all(3 <= s <= 12 for s in sizes)
    assert {t["params"]["oof"] for t in distilled} == {True, False}  # the sweep fits the forest: both served
    assert all("lr" not in t["params"] and "steps" not in t["params"] and "method" not in t["params"]
               for t in summary["trials"])  # a tree has no learning rate nor budget
    alone = [t for t in summary["trials"] if t["study"] == "alone"]
    assert len(alone) == 1 and alone[0]["params"] == {}  # fitted once with .fit: nothing to search
    assert (out / "weights" / "tune-teacher.skops").is_file()  # fitted once ...
    assert (out / "weights" / "tune-teacher-oof.safetensors").is_file()  # ... and cross-fitted once
    _never_worse(summary)
    labels = [c["recipe"] for c in summary["decision"]["candidates"] if c["kind"] == "distilled"]
    assert all(label.startswith("kd T=") and (" oof" in label or "no oof" in label) for label in labels)
    assert summary["cost"]["trial_cache_builds"] >= 1  # the teacher labelled new synthetic rows
    models = [m["name"] for m in summary["results"]["models"]]
    assert models[:2] == ["teacher", "student alone"] and summary["results"]["models"][0]["per_seed"][0][
        "epochs_trained"] == 0  # the sweep's forest, never fitted again


@pytest.mark.slow
def test_the_sweep_chooses_among_students_each_against_its_own_alone(table, tmp_path):
    exp = table(students=["shallow", "deep"], synthetic=["none", "munge"], oof=[False], trials=6)
    exp = config.validate({**exp.model_dump(mode="json", exclude_none=True), "students": [
        {"name": "shallow", "methods": [{"name": "ce"}]},
        {"name": "deep", "model": TREE, "options": {"max_depth": 8}, "methods": [{"name": "ce"}]}]},
        base=tmp_path)
    summary = tune(exp, out=tmp_path / "sweep", quiet=True)
    alone = [t for t in summary["trials"] if t["study"] == "alone"]
    assert len(alone) == 2  # one per student, each fitted once
    rows = summary["decision"]["candidates"]
    assert {r["student"] for r in rows if r["kind"] == "alone"} == {"shallow", "deep"}
    _never_worse(summary)
    baseline = next(r for r in rows if r["candidate"] == summary["decision"]["baseline"])
    best = next(r for r in rows if r["candidate"] == summary["decision"]["best_distilled"])
    assert baseline["student"] == best["student"] and best["recipe"].startswith(f"{best['student']}: kd")
    assert summary["student"] in ("shallow", "deep")


def test_labels_and_spaces_of_table_recipes():
    recipe = Recipe("kd", {"temperature": 1.0}, 0.5, synthetic="gibbs", synthetic_size=10, oof=True)
    assert recipe.label() == "kd T=1 α=0.5 gibbs x10 oof"
    assert Recipe(student="tree", synthetic="none", oof=False).label() == "tree: student alone no synthetic no oof"
    cfg = TuneConfig(synthetic=["munge"], synthetic_size=[3, 50])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    image = Space(cfg, has_pool=False, table=False)
    trial = study.ask()
    assert image.distilled(trial).synthetic is None and "synthetic" not in trial.params  # tables only
    tree = Space(cfg, has_pool=True, table=True, students={"tree": True, "mlp": False}, oof=[True])
    for _ in range(10):
        trial = study.ask()
        r = tree.distilled(trial)
        assert r.synthetic == "munge" and 3 <= r.synthetic_size <= 50 and r.oof is True
        if r.student == "tree":
            assert r.method == "kd" and r.lr is None and r.steps is None and r.unlabeled is None
        else:
            assert r.unlabeled is True  # synthetic rows join the pool: never searched without it
        study.tell(trial, 0.5)


@pytest.mark.parametrize("changes, words", [
    ({"synthetic": ["mung"]}, "synthetic-row choices among ['none', 'munge', 'gibbs', 'gaussian']"),
    ({"synthetic": []}, "synthetic-row choices"),
    ({"synthetic_size": [0, 10]}, "0 < low < high <= 200 (rows per training row)"),
    ({"synthetic_size": [10, 500]}, "0 < low < high <= 200"),
    ({"oof": []}, "[true], [false] or [true, false]"),
    ({"students": ["a", "a"]}, "distinct student entries"),
    ({"student": "a", "students": ["a", "b"]}, "not both"),
])
def test_bad_table_levers_name_the_value_and_what_is_allowed(changes, words):
    with pytest.raises(ValueError) as info:
        TuneConfig(**changes)
    assert words in str(info.value)


def test_unknown_students_and_oof_without_a_fitted_estimator_teacher_are_refused_before_training(table, tmp_path):
    with pytest.raises(ValueError, match=r"tune.students: 'nobody' is not a student; students: \['alone'\]"):
        tune(table(students=["alone", "nobody"]), out=tmp_path / "a", quiet=True)
    assert not (tmp_path / "a").exists()
    exp = table(oof=[True, False])
    exp = config.validate({**exp.model_dump(mode="json", exclude_none=True), "teacher": {"model": "mlp"}},
                          base=tmp_path)
    with pytest.raises(ValueError, match="tune.oof = \\[True, False\\]: out-of-fold teacher outputs need a "
                                         "scikit-learn teacher that the sweep fits"):
        tune(exp, out=tmp_path / "b", quiet=True)
    assert not (tmp_path / "b").exists()
