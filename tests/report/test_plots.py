"""Plots: images shown as read, reliability diagrams and the accuracy trade-off."""

import numpy as np

from kdistill.data import Normalize
from kdistill.report import CalibrationDisplay, TradeoffDisplay, display_images


def test_prediction_images_are_shown_as_read():
    rng = np.random.default_rng(0)
    read = rng.uniform(0, 1, (4, 3, 5, 5)).astype(np.float32)
    norm = Normalize()
    normalized = norm(read)(read)
    mean, std = norm.fitted
    np.testing.assert_allclose(display_images(normalized, {"mean": mean, "std": std}), read, atol=1e-5)
    np.testing.assert_array_equal(display_images(read, None), read)  # without normalization: as read


def test_displays_draw_on_given_axes():
    import matplotlib.pyplot as plt

    _, (a, b) = plt.subplots(1, 2)
    bins = [{"count": 0, "confidence": None, "accuracy": None}] * 14 + [{"count": 3, "confidence": 0.97,
                                                                          "accuracy": 1.0}]
    assert CalibrationDisplay(bins, "m", 0.03).plot(ax=a).ax_ is a
    models = [{"name": "t", "size_mb": 1.0, "accuracy": 0.9}, {"name": "s", "size_mb": None, "accuracy": 0.8}]
    shown = TradeoffDisplay(models, "size_mb").plot(ax=b)
    assert "no size_mb: s" in shown.ax_.get_title()
    plt.close("all")


def test_curves_show_each_loss_term_and_the_epoch_kept():
    import matplotlib.pyplot as plt

    from kdistill.report import CurvesDisplay

    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "train_accuracy": 0.5, "train_ce": 0.6 / (e + 1),
                "train_kd": 0.4 / (e + 1), "val_loss": 1.0, "val_ce": 0.7, "val_kd": 0.5} for e in range(4)]
    _, ax = plt.subplots()
    CurvesDisplay(history, "terms", best_epoch=2).plot(ax=ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train_ce", "val_ce", "train_kd", "val_kd", "epoch kept"]
    assert ax.lines[0].get_xdata().tolist() == [1, 2, 3, 4] and ax.lines[-1].get_xdata()[0] == 3  # from 1
    plt.close("all")


def test_the_tradeoff_plot_has_error_bars_over_seeds():
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    from kdistill.report import TradeoffDisplay

    models = [{"name": "a", "size_mb": 1.0, "accuracy": 0.9, "std": {"accuracy": 0.02, "size_mb": 0.5}},
              {"name": "b", "size_mb": 0.1, "accuracy": 0.8, "std": {}}]
    _, ax = plt.subplots()
    TradeoffDisplay(models, "size_mb").plot(ax=ax)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2 and bars[0].has_yerr and not bars[1].has_yerr and not bars[0].has_xerr
    segments = bars[0].lines[2][0].get_segments()[0]
    assert [round(y, 3) for _, y in segments] == [0.88, 0.92]
    plt.close("all")


def test_a_model_still_improving_at_its_last_epoch_is_noted():
    from kdistill.study.runner import still_improving

    models = [{"name": "kd", "per_seed": [{"seed": 0, "epochs_trained": 5, "epoch_kept": 5},
                                          {"seed": 1, "epochs_trained": 5, "epoch_kept": 3}]},
              {"name": "alone", "per_seed": [{"seed": 0, "epochs_trained": 5, "epoch_kept": 2}]},
              {"name": "tree", "per_seed": [{"seed": 0, "epochs_trained": 0, "epoch_kept": 0}]}]
    (note,) = still_improving(models)
    assert note.startswith("kd was still improving when training ended: its best validation epoch was its last "
                           "(5 of 5) on seed(s) 0.") and "train.epochs" in note and "kdistill tune" in note
    assert "max_steps" not in note
    models[0]["hyperparams"] = {"epochs": 9, "max_steps": 40}  # a step budget may end it before the epochs do
    (note,) = still_improving(models)
    assert "train.max_steps, which caps it at 40 optimizer steps" in note and "train.epochs" in note
