"""A trial's budget in optimizer steps, and what it reports to the pruner."""

from types import SimpleNamespace

import pytest

from kdistill import config
from kdistill.data import read_source
from kdistill.study import load_splits
from kdistill.tune import Recipe, recipe_spec
from kdistill.tune.trials import _Pruning


def test_a_budget_in_steps_is_the_same_for_every_training_set(tiny):
    tiny["data"].update({"train_fraction": 0.25, "unlabeled_rest": True})
    tiny["train"]["batch_size"] = 32
    exp = config.validate(tiny)
    data = load_splits(exp, 0, read_source(exp.data, exp.path))
    labelled, pool = len(data.train), len(data.train) + len(data.unlabeled)
    steps = 300
    for recipe, n in ((Recipe(steps=steps), labelled), (Recipe("kd", {}, 0.5, steps=steps), pool),
                      (Recipe("kd", {}, 0.5, steps=steps, unlabeled=False), labelled)):
        spec = recipe_spec(exp, recipe, data)
        per_epoch = -(-n // 32)
        assert (spec.train["epochs"], spec.train["max_steps"]) == (-(-steps // per_epoch), steps)  # the last cut short
        assert (spec.hyperparams["epochs"], spec.hyperparams["steps"]) == (spec.train["epochs"], steps)
    one = recipe_spec(exp, Recipe("kd", {}, 0.5, steps=1), data)
    assert (one.train["epochs"], one.train["max_steps"], one.hyperparams["steps"]) == (1, 1, 1)


class FakeTrial:
    def __init__(self, prune_after=None):
        self.reports, self.prune_after = [], prune_after

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune_after is not None and len(self.reports) >= self.prune_after


def _epoch(callback, epoch, epochs, value):
    callback.on_epoch_end(SimpleNamespace(epoch=epoch, config=SimpleNamespace(epochs=epochs),
                                          history=[{"val_accuracy": value}]))


@pytest.mark.parametrize("epochs", [3, 8, 20])
def test_trials_report_at_each_eighth_of_their_own_budget(epochs):
    trial = FakeTrial()
    callback = _Pruning(trial)
    for e in range(epochs):
        _epoch(callback, e, epochs, e / 100)
    assert [s for s, _ in trial.reports] == list(range(1, 9))  # eight checkpoints, whatever the epoch count
    for step, value in trial.reports:  # each checkpoint holds the first epoch that reached it
        first = next(e for e in range(epochs) if (e + 1) / epochs >= step / 8 - 1e-9)
        assert value == first / 100


def test_a_pruned_trial_stops_training():
    import optuna

    callback = _Pruning(FakeTrial(prune_after=2))
    _epoch(callback, 0, 8, 0.1)
    with pytest.raises(optuna.TrialPruned, match="after epoch 2 of 8"):
        _epoch(callback, 1, 8, 0.1)
