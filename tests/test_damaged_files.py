"""Randomly damaged files of every kind kdistill reads, fed to its loaders (a seeded property
test): each trial ends in a clear error naming the file, or in a documented outcome (the file
still loads, an unreadable image is skipped, a damaged cache entry is rebuilt and the right
outputs served), never in another exception or a hang.

Run with ``-s`` to see the number of trials and outcomes per kind of file.
"""

import collections
import gzip
import logging
import os
import shutil
import signal

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import kdistill
from kdistill import config
from kdistill.cli import user_errors
from kdistill.data import ImageFolder, read_idx, read_table, split_arrays
from kdistill.models import mlp
from kdistill.teachers import CachedTeacher
from kdistill.weights import rebuild, save_weights

SEED = 12
TRIALS = {"weights": 60, "checkpoint": 25, "cache entry": 40, "image": 60, "IDX": 60, "CSV": 60, "YAML": 60}
OUTCOMES: dict[str, collections.Counter] = {}


# ---------------------------------------------------------------------------------------------
# Damage


def _span(rng, n):
    start = int(rng.integers(0, max(n, 1)))
    return start, min(n, start + int(rng.integers(1, 64)))


def damage(data: bytes, rng) -> bytes:
    """``data`` truncated, with bytes flipped, zeroed, inserted, repeated or appended, or emptied."""
    kind = rng.integers(7)
    a, b = _span(rng, len(data))
    noise = rng.integers(0, 256, b - a + 1, dtype=np.uint8).tobytes()
    if kind == 0:
        return data[:int(rng.integers(0, len(data)))]
    if kind == 1:
        flipped = bytearray(data)
        for i in rng.integers(0, len(data), int(rng.integers(1, 8))):
            flipped[i] ^= 1 << int(rng.integers(8))
        return bytes(flipped)
    if kind == 2:
        return data[:a] + b"\0" * (b - a) + data[b:]
    if kind == 3:
        return data[:a] + noise + data[a:]
    if kind == 4:
        return data[:b] + data[a:]
    if kind == 5:
        return data + noise
    return b""


# ---------------------------------------------------------------------------------------------
# One valid file of each kind, and how it is loaded


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    return split_arrays(rng.normal(0, 3, (3, 5))[y] + rng.normal(size=(60, 5)), y, ["a", "b", "c"], seed=0)


def weights_case(tmp_path, blobs):
    info = {"arch": {"model": "mlp", "options": {"hidden": [8]}}, "input_shape": [5], "classes": ["a", "b", "c"]}
    path = save_weights(mlp(5, 3, hidden=[8]), tmp_path / "w.safetensors", info)
    return path, lambda: rebuild(path) and "loaded"


def checkpoint_case(tmp_path, blobs):
    kdistill.fit(mlp(5, 3), blobs, epochs=1, checkpoint_dir=str(tmp_path), quiet=True)

    def load():
        kdistill.fit(mlp(5, 3), blobs, epochs=2, checkpoint_dir=str(tmp_path), resume=True, quiet=True)
        return "loaded"

    return tmp_path / "last.pt", load


def image_case(tmp_path, blobs):
    for label, name in enumerate("ab"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 6), 40 + 150 * label, np.uint8)).save(tmp_path / name / f"{i}.png")

    def load():
        folder = ImageFolder(tmp_path, size=(4, 4))
        if folder.skipped:
            return "skipped"
        ImageFolder(tmp_path, size=(4, 4), strict=True)
        return "loaded"

    return tmp_path / "a" / "0.png", load


def idx_case(tmp_path, blobs):
    array = np.arange(4 * 5 * 5).reshape(4, 5, 5) % 256
    data = bytes([0, 0, 8, 3]) + np.asarray(array.shape, ">u4").tobytes() + array.astype(">u1").tobytes()
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(data)
    return path, lambda: read_idx(path) is not None and "loaded"


def csv_case(tmp_path, blobs):
    path = tmp_path / "t.csv"
    pd.DataFrame({"size": np.arange(12) / 3, "color": list("rgb") * 4, "label": ["x", "y"] * 6}).to_csv(path,
                                                                                                      index=False)
    return path, lambda: read_table(path, "label") and "loaded"


EXPERIMENT = {"name": "tiny", "data": {"builtin": {"name": "iris"}}, "teacher": {"model": "mlp"},
              "student": {"model": "mlp", "options": {"hidden": [4]}},
              "students": [{"name": "alone", "methods": [{"name": "ce"}]},
                           {"name": "kd", "methods": [{"name": "ce", "weight": 0.5}, {"name": "kd", "weight": 0.5}]}],
              "train": {"epochs": 2, "lr": 0.01}, "seeds": [0, 1]}


def yaml_case(tmp_path, blobs):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT, sort_keys=False))
    return path, lambda: config.load(path) and "loaded"


CASES = {"weights": weights_case, "checkpoint": checkpoint_case, "image": image_case, "IDX": idx_case,
         "CSV": csv_case, "YAML": yaml_case}


@pytest.fixture
def no_hang():
    def hung(*_):
        raise TimeoutError("a loader hung on a damaged file")

    previous = signal.signal(signal.SIGALRM, hung)
    yield lambda: signal.alarm(10)
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _outcome(load, path) -> str:
    """What loading gave: ``loaded``, ``skipped``, or ``error`` when it is a user error naming
    the file; anything else (another exception, a message without the file) fails the test."""
    try:
        return load()
    except user_errors() as exc:
        assert path.name in str(exc), f"{type(exc).__name__} without the file's name: {exc}"
        return "error"


@pytest.mark.parametrize("kind", CASES)
def test_damaged_files_give_a_clear_error_or_a_documented_outcome(kind, tmp_path, blobs, no_hang):
    rng = np.random.default_rng([SEED, list(CASES).index(kind)])
    path, load = CASES[kind](tmp_path, blobs)
    pristine = path.read_bytes()
    counts = OUTCOMES.setdefault(kind, collections.Counter())
    for trial in range(TRIALS[kind]):
        damaged = damage(pristine, rng)
        path.write_bytes(damaged)
        no_hang()
        try:
            counts[_outcome(load, path)] += 1
        except Exception as exc:  # noqa: BLE001 - reported with the damage that caused it
            raise AssertionError(f"{kind} trial {trial}: {type(exc).__name__}: {exc} (damaged file: "
                                 f"{len(damaged)} of {len(pristine)} bytes)") from exc
        path.write_bytes(pristine)
    assert counts["error"] + counts["skipped"] > 0  # the damage reached the reader: some trials were refused


def test_damaged_cache_entries_are_rebuilt_and_never_serve_wrong_outputs(tmp_path, blobs, no_hang, caplog):
    torch.manual_seed(0)
    cached = CachedTeacher(mlp(5, 3, hidden=[8]), cache_dir=tmp_path / "cache", dtype="float32")
    entry = cached.for_dataset(blobs.train).entry
    pristine = tmp_path / "pristine"
    shutil.copytree(entry, pristine)
    live = cached.teacher.logits(blobs.train.x)
    everything = torch.arange(len(blobs.train))
    rng = np.random.default_rng([SEED, 99])
    counts = OUTCOMES.setdefault("cache entry", collections.Counter())
    for trial in range(TRIALS["cache entry"]):
        shutil.rmtree(entry, ignore_errors=True)
        shutil.copytree(pristine, entry)
        part = entry / ["values.npy", "meta.json"][trial % 2]
        part.write_bytes(damage(part.read_bytes(), rng))
        caplog.clear()
        no_hang()
        with caplog.at_level(logging.WARNING, logger="kdistill"):
            served = cached.for_dataset(blobs.train).logits(None, everything)
        torch.testing.assert_close(served, live, rtol=0, atol=0, msg=f"trial {trial}: wrong outputs served")
        counts["rebuilt" if "rebuilding it" in caplog.text else "used (undamaged values)"] += 1
    assert counts["rebuilt"] > 0  # the damage reached the entry check


@pytest.mark.skipif(bool(os.environ.get("PYTEST_XDIST_WORKER")), reason="pytest-xdist shares the tests above out "
                    "among processes, so no process holds every count")
def test_report_the_counts():
    """The trials and outcomes of the tests above (shown with -s)."""
    lines = [f"{kind}: {sum(c.values())} trials, " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
             for kind, c in OUTCOMES.items()]
    print("\ndamaged files:\n  " + "\n  ".join(lines) + f"\n  total: {sum(sum(c.values()) for c in OUTCOMES.values())}")
    assert len(OUTCOMES) in (0, len(TRIALS))  # all kinds ran, or this test ran alone

