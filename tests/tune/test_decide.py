"""Never worse than alone: candidates, the re-runs queued for them, and the answer they give."""

import math

import optuna
import pytest
from scipy.stats import t as student_t

from kdistill.tune import Candidate, candidates, decide
from kdistill.tune.decide import pending


def _study(values, params):
    study = optuna.create_study(direction="maximize")
    for value, p in zip(values, params):
        dist = {k: optuna.distributions.FloatDistribution(0, 10) for k in p}
        study.add_trial(optuna.trial.create_trial(value=value, params=p, distributions=dist))
    return study


def test_candidates_are_the_best_distinct_distilled_trials_and_the_best_alone():
    distilled = _study([0.8, 0.9, 0.9, 0.7], [{"a": 1.0}, {"a": 2.0}, {"a": 2.0}, {"a": 3.0}])
    alone = _study([0.6, 0.85], [{"lr": 1.0}, {"lr": 2.0}])
    found = candidates(distilled, alone, top=2)
    assert [(c.kind, c.number) for c in found] == [("distilled", 1), ("distilled", 0), ("alone", 1)]


def _reruns(values_by_key, seeds=(1, 2, 3)):
    study = optuna.create_study(direction="maximize")
    for key, values in values_by_key.items():
        for seed, value in zip(seeds, values):
            study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={},
                                                      user_attrs={"candidate": key, "seed": seed}))
    return study


CANDS = [Candidate("distilled", 4, 0.95, {}), Candidate("distilled", 7, 0.94, {}), Candidate("alone", 2, 0.9, {})]
LABELS = {"distilled:4": "kd a", "distilled:7": "kd b", "alone:2": "student alone"}


def test_a_gain_beyond_the_noise_makes_the_distilled_recipe_the_answer():
    runs = _reruns({"distilled:4": [0.91, 0.92, 0.93], "distilled:7": [0.95, 0.96, 0.94],
                    "alone:2": [0.88, 0.89, 0.87]})
    answer = decide(runs, CANDS, [1, 2, 3], LABELS)
    assert answer["choice"] == "distilled" and answer["chosen"] == "distilled:7"  # the best by re-run mean
    # the margin: one-sided 5%, Bonferroni over 2 distilled candidates, pooled sd over 3 x 2 degrees of freedom
    expected = student_t.ppf(1 - 0.05 / 2, 6) * 0.01 * math.sqrt(2 / 3)
    assert answer["pooled_std"] == pytest.approx(0.01) and answer["margin"] == pytest.approx(expected)
    assert answer["difference"] == pytest.approx(0.07)
    assert answer["sentence"].startswith("Distil: kd b reached 0.9500")


def test_a_gain_within_the_noise_answers_train_it_alone():
    # The sweep trial of distilled:4 looked far better (0.95 vs 0.90); its re-runs do not.
    runs = _reruns({"distilled:4": [0.90, 0.93, 0.89], "distilled:7": [0.88, 0.92, 0.87],
                    "alone:2": [0.89, 0.91, 0.88]})
    answer = decide(runs, CANDS, [1, 2, 3], LABELS)
    assert answer["choice"] == "alone" and answer["chosen"] == "alone:2"
    assert 0 < answer["difference"] < answer["margin"]
    assert answer["sentence"].startswith("Train it alone: no distilled recipe beat the student alone")


def test_a_worse_distilled_recipe_is_never_the_answer():
    runs = _reruns({"distilled:4": [0.5, 0.5, 0.5], "distilled:7": [0.4, 0.4, 0.4], "alone:2": [0.9, 0.9, 0.9]})
    assert decide(runs, CANDS, [1, 2, 3], LABELS)["choice"] == "alone"


def test_unfinished_reruns_are_an_error_and_only_the_missing_ones_are_pending():
    runs = _reruns({"distilled:4": [0.9, 0.9], "distilled:7": [0.9, 0.9, 0.9], "alone:2": [0.9, 0.9, 0.9]})
    with pytest.raises(RuntimeError, match="re-runs of distilled:4 are unfinished"):
        decide(runs, CANDS, [1, 2, 3], LABELS)
    assert [(c.key, seed) for c, seed in pending(runs, CANDS, [1, 2, 3])] == [("distilled:4", 3)]
    runs.ask()  # a re-run left running by a killed process is still pending
    assert len(pending(runs, CANDS, [1, 2, 3])) == 1
    runs.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={},
                                             user_attrs={"candidate": "distilled:4", "seed": 3}))
    assert pending(runs, CANDS, [1, 2, 3]) == []
