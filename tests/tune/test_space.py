"""Recipes and the search space: what a trial's parameters mean for the student's training."""

import optuna
import pytest

from kdistill.config.tune import TuneConfig
from kdistill.tune import Recipe, Space


def test_a_recipe_is_an_objective_and_training_settings():
    assert Recipe().objective() == [("ce", 1.0)]  # the student alone
    kd = Recipe("kd", {"temperature": 2.0}, alpha=0.75, lr=0.01, steps=500, unlabeled=False)
    assert kd.objective() == [("ce", 0.25), ("kd", 0.75, {"temperature": 2.0})]
    assert kd.train_changes() == {"lr": 0.01, "unlabeled": False}
    assert Recipe("kd", {}, alpha=1.0).objective() == [("kd", 1.0, {})]  # no label term left at alpha = 1
    assert Recipe("fm", {}, alpha=None).objective() == [("fm", 1.0, {})]
    assert kd.label() == "kd T=2 α=0.75 lr=0.01 500 steps no pool"


def test_each_method_samples_its_own_options():
    cfg = TuneConfig(methods=["kd", "dkd", "fm"], lr=[0.001, 0.1], steps=[10, 100],
                     options={"kd": {"standardize": [False, True]}, "dkd": {"beta": 2.0}})
    space = Space(cfg, has_pool=True)
    kd = space.recipe({"method": "kd", "kd.temperature": 3.0, "kd.standardize": True, "alpha": 0.5,
                       "unlabeled": True, "lr": 0.01, "steps": 50}, distilled=True)
    assert kd == Recipe("kd", {"temperature": 3.0, "standardize": True}, 0.5, 0.01, 50, True)
    dkd = space.recipe({"method": "dkd", "dkd.alpha": 1.0, "dkd.temperature": 2.0, "alpha": 0.5,
                        "unlabeled": False, "lr": 0.01, "steps": 50}, distilled=True)
    assert dkd.options == {"alpha": 1.0, "beta": 2.0, "temperature": 2.0}  # beta fixed by the file
    fm = space.recipe({"method": "fm", "unlabeled": True, "lr": 0.01, "steps": 50}, distilled=True)
    assert fm.alpha is None and fm.options == {}  # function matching: no label term, T = 1
    alone = space.recipe({"lr": 0.02, "steps": 20}, distilled=False)
    assert alone == Recipe(None, {}, None, 0.02, 20)


def test_sampled_trials_stay_in_their_method_s_space():
    cfg = TuneConfig(methods=["kd", "dist"], temperature=[1.0, 4.0])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = Space(cfg, has_pool=False)
    for _ in range(12):
        trial = study.ask()
        recipe = space.distilled(trial)
        assert all(k.split(".")[0] == recipe.method for k in trial.params if "." in k)
        assert 1.0 <= recipe.options["temperature"] <= 4.0 and 0.1 <= recipe.alpha <= 1.0
        assert recipe.unlabeled is None and "unlabeled" not in trial.params  # no pool in the data
        study.tell(trial, 0.5)
    assert {t.params["method"] for t in study.trials} == {"kd", "dist"}


@pytest.mark.parametrize("changes, words", [
    ({"methods": ["kdd"]}, "did you mean 'kd'"),
    ({"methods": ["ce"]}, "learns without a teacher"),
    ({"methods": ["kd"], "options": {"dkd": {"beta": [1, 2]}}}, "not among tune.methods"),
    ({"methods": ["kd"], "options": {"kd": {"temprature": [1, 2]}}}, "not an option of method 'kd'"),
    ({"methods": ["kd"], "options": {"kd": {"temperature": [0, 2]}}}, "temperature must be a finite number > 0"),
    ({"methods": ["kd"], "options": {"kd": {"temperature": [3, 2]}}}, "low < high"),
    ({"steps": [100, 10]}, "1 <= low < high"),
    ({"labeled_share": [0.2, 1.0]}, "0 < low < high < 1"),
    ({"repeats": 1}, "greater than or equal to 2"),
])
def test_bad_tune_sections_name_the_value_and_what_is_allowed(changes, words):
    with pytest.raises(ValueError) as info:
        TuneConfig(**changes)
    assert words in str(info.value)
