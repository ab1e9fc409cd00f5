"""Tables through the study: a DataFrame with categorical and missing values and string labels,
out-of-fold teacher outputs, synthetic rows, the default recipe's guard and the memorisation
warning, estimators saved and exported as themselves."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

import kdistill
from kdistill.categoricals import NativeCategoricals
from kdistill.cli import main
from kdistill.export import session
from kdistill.models import mlp
from kdistill.report.fields import undocumented


def frame(n=500, seed=0):
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"age": rng.normal(40, 10, n), "city": rng.choice(["Oslo", "Lima", "Pune"], n),
                        "income": rng.normal(size=n)})
    score = np.sin(out.age / 5) + out.income ** 2 - (out.city == "Lima")
    out["churn"] = np.where(score > 0.3, "stays", "leaves")
    out.loc[::11, "age"] = np.nan
    out.loc[::17, "city"] = None
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables") / "cmp"
    data = lambda seed: kdistill.load_table(frame(), "churn", seed=seed)  # noqa: E731
    results = kdistill.compare(HistGradientBoostingClassifier(max_iter=30),
                               {"tree": DecisionTreeClassifier(max_depth=3), "logreg": LogisticRegression(),
                                "mlp": lambda shape, k: mlp(shape, k, hidden=(8,))},
                               data, seeds=(0, 1), out=folder, quiet=True, epochs=3,
                               synthetic={"kind": "munge", "size": 2})
    return results, folder


def test_a_dataframe_goes_through_compare_with_out_of_fold_outputs_and_synthetic_rows(study):
    results, folder = study
    assert results["classes"] == ["leaves", "stays"]
    assert results["synthetic"] == {"kind": "munge", "size": 2, "rows": 2 * results["split_sizes"][0]}
    assert [c["folds"] for c in results["teacher_checks"]] == [5, 5]
    names = [m["name"] for m in results["models"]]
    assert names[0] == "teacher" and names[4:] == ["tree", "logreg", "mlp"]
    assert sorted(names[1:4]) == ["logreg alone", "mlp alone", "tree alone"]
    tree = next(m for m in results["models"] if m["name"] == "tree")
    assert tree["hyperparams"] == {"max_depth": 3, **kdistill.study.defaults.TABLE_ESTIMATOR}
    config = json.loads((folder / "config.json").read_text())["compare"]
    assert config["synthetic"] == {"kind": "munge", "size": 2} and config["teacher_folds"] is None
    assert undocumented(json.loads((folder / "results.json").read_text())) == []  # docs/reference/results.md


def test_a_distilled_estimator_is_saved_and_exported_as_itself(study):
    results, folder = study
    loaded = kdistill.load_sklearn(folder / "weights" / "tree-seed0.skops")
    assert type(loaded) is DecisionTreeClassifier  # what one deploys, not a wrapper holding a teacher
    x = kdistill.load_table(frame(), "churn", seed=0).test.x.numpy()
    onnx_p = session(folder / "onnx" / "tree-seed0.onnx").run(None, {"input": x})[0]
    np.testing.assert_allclose(onnx_p, loaded.predict_proba(x), atol=1e-5)
    for m in results["models"]:
        assert m["onnx_mb"] > 0 and m["speedup"] > 0, m["name"]  # the teacher too: the speed-up is shown


def test_bare_students_on_a_table_get_the_table_recipe(study):
    results, _ = study
    mlp_row = next(m for m in results["models"] if m["name"] == "mlp")
    assert (mlp_row["hyperparams"]["alpha"], mlp_row["hyperparams"]["T"]) == (
        kdistill.study.defaults.TABLE_TORCH["alpha"], kdistill.study.defaults.TABLE_TORCH["temperature"])


def test_synthetic_rows_give_a_bare_torch_student_half_labelled_batches_and_its_budget_of_steps(study):
    results, _ = study
    rows = {m["name"]: m for m in results["models"]}
    assert rows["mlp alone"]["hyperparams"]["epochs"] == 3 and "labeled_share" not in rows["mlp alone"]["hyperparams"]
    assert rows["mlp"]["hyperparams"]["labeled_share"] == kdistill.study.defaults.TABLE_TORCH_TRAIN["labeled_share"]
    alone_steps = 3 * -(-results["split_sizes"][0] // 64)  # 3 epochs of the labelled rows, batches of 64
    assert rows["mlp"]["hyperparams"]["max_steps"] == alone_steps
    assert "max_steps" not in rows["mlp alone"]["hyperparams"]
    assert rows["mlp"]["hyperparams"]["epochs"] < 3  # longer epochs (over the synthetic rows), the same steps
    assert rows["mlp"]["per_seed"][0]["epochs_trained"] == rows["mlp"]["hyperparams"]["epochs"]


@pytest.mark.parametrize("pool, given", [(0, {}), (0, {"labeled_share": 0.25}), (0, {"epochs": 130}), (300, {}),
                                         (20000, {}), (0, {"max_steps": 50})])
def test_the_table_budget_counts_the_steps_the_trainer_takes(pool, given):
    """The optimizer steps the student would take without the synthetic rows (the student alone's
    when there is no pool), exactly: the epochs over the synthetic rows that reach them, the last
    cut short (the trainer's cut: tests/engine/test_loop.py), also where that is less than one."""
    from kdistill.data import epoch_plan, unlabeled_set
    from kdistill.data.synthetic import with_synthetic
    from kdistill.study.defaults import TABLE_TORCH_TRAIN, table_budget

    data = kdistill.load_table(frame(), "churn", seed=0)
    if pool:
        rows = np.random.default_rng(0).normal(size=(pool, data.input_shape[0])).astype(np.float32)
        data = dataclasses.replace(data, unlabeled=unlabeled_set(rows, "pool"))
    train = {"epochs": 60, "batch_size": 64, **given}
    synthetic = {"kind": "munge", "size": 30}
    budget = table_budget(train, data, synthetic)
    assert budget["labeled_share"] == given.get("labeled_share", TABLE_TORCH_TRAIN["labeled_share"])
    per_epoch = len(epoch_plan(with_synthetic(data, seed=0, **synthetic).training(distilled=True), 64, True, 0,
                               budget["labeled_share"]))
    per_alone = -(-(len(data.train) + pool) // 64)
    wanted = min(train["epochs"] * per_alone, given.get("max_steps", 10**9))
    assert (budget["max_steps"], budget["epochs"]) == (wanted, -(-wanted // per_epoch)), (budget, per_epoch)
    short = table_budget({**train, "epochs": 1}, data, synthetic)  # fewer steps than one epoch of synthetic rows
    assert (short["epochs"], short["max_steps"]) == (1, min(per_alone, given.get("max_steps", 10**9)))
    assert short["max_steps"] < per_epoch
    assert table_budget({**train, "unlabeled": False}, data, synthetic) == {**train, "unlabeled": False}
    assert table_budget(train, data, None) == train


def test_the_default_recipe_keeps_the_student_alone_where_the_teacher_only_misleads(tmp_path):
    data = kdistill.load_table(frame(), "churn", seed=0)
    x, y = data.train.x.numpy(), data.train.y.numpy()
    wrong = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, np.random.default_rng(0).permutation(y))
    results = kdistill.compare(wrong, {"tree": DecisionTreeClassifier(max_depth=4)}, data, out=tmp_path / "c",
                               quiet=True, synthetic=None)
    rows = {m["name"]: m for m in results["models"]}
    assert rows["tree"]["accuracy"] == rows["tree alone"]["accuracy"]
    assert any("tree is tree alone: distilled, it was less accurate on validation" in w for w in results["warnings"])
    verdict = results["comparisons"][0]
    assert verdict["kept_alone_seeds"] == [0] and "On seed(s) 0 the default recipe kept the student alone" in verdict[
        "verdict"]
    assert undocumented(json.loads((tmp_path / "c" / "results.json").read_text())) == []
    explicit = kdistill.compare(wrong, {"tree": (DecisionTreeClassifier(max_depth=4), {"mode": "soft"})}, data,
                                out=tmp_path / "e", quiet=True, synthetic=None)
    rows = {m["name"]: m for m in explicit["models"]}
    assert rows["tree"]["accuracy"] < rows["tree alone"]["accuracy"]  # a recipe the user gave is run as given


def test_a_teacher_that_memorised_its_training_rows_is_named(tmp_path):
    data = kdistill.load_table(frame(), "churn", seed=0)
    knn = KNeighborsClassifier(1).fit(data.train.x.numpy(), data.train.y.numpy())
    results = kdistill.compare(knn, {"tree": DecisionTreeClassifier(max_depth=3)}, data, out=tmp_path / "c",
                               quiet=True, synthetic=None)
    assert any("it has memorised its training rows" in w for w in results["warnings"])
    assert results["teacher_checks"][0]["train_accuracy"] == 1.0


def test_out_of_fold_outputs_need_a_scikit_learn_teacher_the_study_fits(tmp_path):
    data = kdistill.load_table(frame(), "churn", seed=0)
    with pytest.raises(ValueError, match="teacher folds = 3: out-of-fold outputs need a scikit-learn teacher that "
                                         "the study fits \\(this one is used as loaded\\)"):
        kdistill.compare(KNeighborsClassifier(1).fit(data.train.x.numpy(), data.train.y.numpy()),
                         {"tree": DecisionTreeClassifier()}, data, out=tmp_path / "c", quiet=True, teacher_folds=3)
    with pytest.raises(ValueError, match="teacher folds must be 0"):
        kdistill.compare(HistGradientBoostingClassifier(), {"tree": DecisionTreeClassifier()}, data,
                         out=tmp_path / "d", quiet=True, teacher_folds=1)
    with pytest.raises(ValueError, match="synthetic must be 'auto', None or a dict"):
        kdistill.compare(HistGradientBoostingClassifier(), {"tree": DecisionTreeClassifier()}, data,
                         out=tmp_path / "d", quiet=True, synthetic="munge")
    assert not (tmp_path / "d").exists()


def test_an_experiment_file_sets_synthetic_rows_and_teacher_folds(tmp_path):
    frame(300).to_csv(tmp_path / "churn.csv", index=False)
    exp = {"name": "churn", "seeds": [0],
           "data": {"table": {"path": "churn.csv", "target": "churn"}, "synthetic": {"kind": "gibbs", "size": 1.5}},
           "teacher": {"model": "sklearn.ensemble:HistGradientBoostingClassifier", "options": {"max_iter": 20},
                       "folds": 3},
           "student": {"model": "sklearn.tree:DecisionTreeClassifier", "options": {"max_depth": 3}},
           "students": [{"name": "alone"}, {"name": "soft", "distill": {"alpha": 0.8}}]}
    (tmp_path / "churn.yaml").write_text(json.dumps(exp))
    assert main(["run", str(tmp_path / "churn.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["synthetic"]["kind"] == "gibbs" and results["teacher_checks"][0]["folds"] == 3
    soft = next(m for m in results["models"] if m["name"] == "soft")
    assert soft["hyperparams"]["alpha"] == 0.8
    exp["data"] = {"builtin": {"name": "digits"}, "synthetic": {"kind": "munge"}}
    (tmp_path / "bad.yaml").write_text(json.dumps(exp))
    assert main(["validate", str(tmp_path / "bad.yaml")]) == 2


def _lgbm():
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, min_data_per_group=5, n_jobs=1, verbose=-1)


def _splits_a_category_set(model) -> bool:
    return '"decision_type": "=="' in json.dumps(model.booster_.dump_model())


def test_boosted_trees_take_the_categorical_columns_natively(tmp_path):
    catboost = pytest.importorskip("catboost")
    pytest.importorskip("onnxmltools")
    cat = catboost.CatBoostClassifier(iterations=10, depth=3, thread_count=1, verbose=0, allow_writing_files=False)
    results = kdistill.compare(_lgbm(), {"lgbm": _lgbm(), "catboost": cat}, kdistill.load_table(frame(300), "churn"),
                               out=tmp_path / "c", quiet=True, synthetic=None)
    folder = tmp_path / "c"
    for name in ("teacher", "lgbm-alone", "lgbm"):
        model = kdistill.load_sklearn(folder / "weights" / f"{name}-seed0.skops")
        assert isinstance(model, NativeCategoricals) and model.estimator_.n_features_in_ == 3  # age, income, city
        assert _splits_a_category_set(model.estimator_), name  # the city column split as a category
    rows = {m["name"]: m for m in results["models"]}
    assert rows["lgbm"]["onnx_mb"] > 0 and rows["teacher"]["onnx_mb"] > 0  # exported, parity checked
    assert rows["catboost"]["onnx_mb"] is None and rows["catboost"]["accuracy"] > 0.5  # kept, not exported:
    assert any("catboost no ONNX file" in w and "does not support categorical features" in w
               for w in results["warnings"])
    assert json.loads((folder / "config.json").read_text())["compare"]["categoricals"] == "native"


def test_categoricals_onehot_in_an_experiment_file_keeps_the_one_hot_columns(tmp_path):
    pytest.importorskip("lightgbm")
    frame(300).to_csv(tmp_path / "churn.csv", index=False)
    lgbm = {"model": "lightgbm:LGBMClassifier", "options": {"n_estimators": 10, "num_leaves": 8, "n_jobs": 1}}
    exp = {"name": "churn", "seeds": [0], "teacher": lgbm, "student": lgbm, "students": [{"name": "alone"}],
           "data": {"table": {"path": "churn.csv", "target": "churn", "categoricals": "onehot"}, "synthetic": None}}
    (tmp_path / "churn.yaml").write_text(json.dumps(exp))
    assert main(["run", str(tmp_path / "churn.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    for name in ("teacher", "alone"):
        model = kdistill.load_sklearn(tmp_path / "run" / "weights" / f"{name}-seed0.skops")
        assert type(model).__name__ == "LGBMClassifier" and model.n_features_in_ == 6  # 2 numbers, 4 city columns
        assert not _splits_a_category_set(model)
    exp["data"]["table"]["categoricals"] = "codes"
    (tmp_path / "bad.yaml").write_text(json.dumps(exp))
    assert main(["validate", str(tmp_path / "bad.yaml")]) == 2
    with pytest.raises(ValueError, match="categoricals must be 'native' .* or 'onehot' .* got 'codes'"):
        kdistill.compare(_lgbm(), {"lgbm": _lgbm()}, kdistill.load_table(frame(300), "churn"), out=tmp_path / "d",
                         quiet=True, categoricals="codes")
    assert not (tmp_path / "d").exists()
