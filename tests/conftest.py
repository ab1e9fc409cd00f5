"""Shared helpers: a tiny experiment (digits, MLPs, two epochs) as a dict and as a file."""

import copy

import pytest
import yaml

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
