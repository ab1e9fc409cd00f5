import numpy as np
import pytest
import torch

from kdistill.data import split_arrays
from kdistill.models import mlp

# Tiny models gain nothing from intra-op threads; several threads per test only oversubscribe
# the cores (measured: a gradient-boosting -> MLP test took 7 s with default threads, 1.6 s with 1).
torch.set_num_threads(1)


@pytest.fixture
def blobs():
    """A small, learnable 3-class tabular task (240 samples, 5 features)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 3, size=(3, 5))
    y = np.repeat(np.arange(3), 80)
    x = centers[y] + rng.normal(0, 1.0, size=(len(y), 5))
    return split_arrays(x, y, ["a", "b", "c"], name="blobs", seed=0)


@pytest.fixture
def teacher(blobs):
    torch.manual_seed(1)
    return mlp(5, 3, hidden=[32, 32], dropout=0.2)


@pytest.fixture
def student(blobs):
    torch.manual_seed(2)
    return mlp(5, 3, hidden=[8], dropout=0.1)
