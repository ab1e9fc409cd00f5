"""The demo: the seed case study on scikit-learn's digits, as a bundled experiment file."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from .. import config
from .experiment import run_experiment


def demo_file():
    """The bundled experiment file of the demo (``kdistill/experiments/demo.yaml``)."""
    return files("kdistill") / "experiments" / "demo.yaml"


def run_demo(out="runs/demo", seeds: int = 1, epochs: int | None = None, quiet: bool = False,
             cache_dir=None) -> tuple[dict, Path]:
    """The seed case study on ``digits`` (:func:`demo_file`): a CNN teacher, and a small CNN
    student trained alone and distilled at T=2 and T=6 (alpha=0.5). Never overwrites: an
    existing non-empty ``out`` makes it write to the next free ``out-N``. Returns the results
    and the folder used."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    overrides = [f"seeds={list(range(seeds))}"] + ([f"train.epochs={epochs}"] if epochs is not None else [])
    with as_file(demo_file()) as path:
        exp = config.load(path, overrides)
    return run_experiment(exp, out=out, quiet=quiet, cache_dir=cache_dir)
