import pytest
import torch

from kdistill.models import cnn, count_params, mlp, size_mb


def test_mlp_shapes_and_counts():
    m = mlp(4, 3, hidden=[8, 6])
    assert m(torch.randn(5, 4)).shape == (5, 3)
    assert count_params(m) == (4 * 8 + 8) + (8 * 6 + 6) + (6 * 3 + 3)
    assert size_mb(m) == pytest.approx(count_params(m) * 4 / 1e6)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 28, 28)])
def test_cnn_fits_any_image_size(shape):
    m = cnn(shape, 10, channels=[4, 8, 16])
    assert m(torch.randn(2, *shape)).shape == (2, 10)
    assert "features.0" in dict(m.named_modules())


def test_bad_sizes():
    with pytest.raises(ValueError, match=r"hidden must be a list of positive integers, got \[8, 0\]"):
        mlp(4, 3, hidden=[8, 0])
    with pytest.raises(ValueError, match=r"cnn needs input_shape \(channels, height, width\), got \(64,\)"):
        cnn(64, 3)
