"""Shared fixtures: a tiny tabular task with MLPs, and a tiny experiment (digits, MLPs, two
epochs) as a dict and as a file."""

import copy

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from kdistill.data import split_arrays
from kdistill.models import mlp
from kdistill.teachers import Teacher, TorchTeacher
from kdistill.teachers.cache import teacher_fingerprint

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

TINY = {
    "name": "tiny",
    "data": {"builtin": {"name": "digits"}, "train_fraction": 0.2},
    "teacher": {"model": "mlp", "options": {"hidden": [32]}},
    "student": {"model": "mlp", "options": {"hidden": [8]}},
    "students": [
        {"name": "alone", "methods": [{"name": "ce", "weight": 1.0}]},
        {"name": "kd", "methods": [{"name": "ce", "weight": 0.5},
                                   {"name": "kd", "weight": 0.5, "options": {"temperature": 4}}]},
    ],
    "train": {"epochs": 2, "batch_size": 64, "lr": 0.01},
    "seeds": [0],
}


@pytest.fixture
def tiny():
    """A fresh copy of the tiny experiment mapping."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_experiment(tmp_path):
    """Write a mapping as ``tmp_path/<name>.yaml`` and return the path."""
    def write(mapping, name="experiment"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        return path

    return write


class CountingTeacher(Teacher):
    """A torch teacher that counts the samples it is run on (cacheable: it has a fingerprint)."""

    def __init__(self, module):
        self.inner, self.samples = TorchTeacher(module), 0

    def logits(self, x, index=None):
        self.samples += len(x)
        return self.inner.logits(x, index)

    def fingerprint(self):
        return teacher_fingerprint(self.inner)


@pytest.fixture
def counting_teacher():
    """The class of a teacher that counts the samples it runs on."""
    return CountingTeacher


@pytest.fixture
def make_folder():
    """A function writing class folders of tiny images (class by class darker to brighter),
    with text files to ignore and ``corrupt`` broken PNGs in the first class."""
    return _make_folder


def _make_folder(root, counts=None, size=10, mode="L", corrupt=0):
    """Class folders of tiny images: class ``a`` dark, class ``b`` bright."""
    rng = np.random.default_rng(0)
    for label, (name, n) in enumerate((counts or {"a": 6, "b": 6}).items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 100, (size, size)) + 150 * label
            img = Image.fromarray(pixels.astype(np.uint8), "L").convert(mode)
            img.save(root / name / f"{i}.{'png' if i % 2 else 'bmp'}")
        (root / name / "notes.txt").write_text("not an image")
    for i in range(corrupt):
        (root / next(iter(counts or {"a": 0})) / f"broken{i}.png").write_bytes(b"\x89PNG not really")
    return root
