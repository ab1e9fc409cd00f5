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
