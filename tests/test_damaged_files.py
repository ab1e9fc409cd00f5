"""Randomly damaged files of every kind kdistill reads, fed to its loaders (a seeded property
test): each trial ends in a clear error naming the file, or in a documented outcome (the file
still loads, an unreadable image is skipped, a damaged cache entry is rebuilt and the right
outputs served), never in another exception or a hang. Likewise randomly bad arguments to the
Python API's front doors (compare, distill, fit, split_arrays): each ends in a ``ValueError`` or
``TypeError`` naming the argument, before any folder is made.

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
TRIALS = {"weights": 60, "checkpoint": 25, "cache entry": 40, "image": 60, "IDX": 60, "CSV": 60, "YAML": 60,
          "API arguments": 80}
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


# ---------------------------------------------------------------------------------------------
# Bad arguments to the Python API


def _bad_seeds(rng):
    kind = int(rng.integers(5))
    if kind == 0:
        return [(), [], range(0)][int(rng.integers(3))]
    if kind == 1:
        return tuple(int(v) for v in rng.integers(0, 5, int(rng.integers(0, 3)))) + (-int(rng.integers(1, 99)),)
    if kind == 2:
        seed = int(rng.integers(0, 9))
        return (seed, *rng.permutation([seed, seed + 1]).tolist())
    if kind == 3:
        return (0, [0.5, "1", None, True, 1.0, np.float32(2)][int(rng.integers(6))])
    return [None, 3, "01", {0: 1}, 2.0][int(rng.integers(5))]


def _word(rng):
    return "".join(rng.choice(list("abcdefghij"), int(rng.integers(1, 6))))


def _colliding(rng, word):
    """Another spelling of ``word`` that becomes the same file name."""
    spelled = "".join(c.upper() if rng.random() < 0.5 else c for c in word)
    return rng.choice(["", " ", "_", "!", "--"]) + spelled + rng.choice([" ", ".", "?!", "-", "_"])


def _bad_students(rng, make):
    word, kind = _word(rng), int(rng.integers(5))
    if kind == 0:
        return {word: make(), [int(rng.integers(9)), None, 1.5, ("a",)][int(rng.integers(4))]: make()}
    if kind == 1:
        return {word: make(), ["", " ", "--", "!?", "_"][int(rng.integers(5))]: make()}
    if kind == 2:
        return {word: make(), _colliding(rng, word): make()}
    if kind == 3:
        return {word: make(), f"{word} alone": make()}  # both distilled: the first one's "<word> alone" is taken
    return {_colliding(rng, "teacher"): make()}


BAD_OBJECTIVES = ["kd", b"kd", "ce", 3, 0.5, [("ce",)], [("ce", "1")], [(1, 1.0)], [("ce", 1.0, "T=4")],
                  [("ce", True)], ["kd"], {"kd"}]


def _bad_data(rng, blobs):
    n = int(rng.integers(2, 30))
    x = rng.normal(size=(n, 5))
    return [x, x.tolist(), (x, np.arange(n) % 3), {"train": x}, None, 3, "data.csv", blobs.train][int(rng.integers(8))]


def _bad_call(rng, blobs, out):
    """One call of a front door with one bad argument: ``(call, the argument its error must name)``."""
    def make():
        return mlp(5, 3, hidden=[int(rng.integers(2, 6))])

    door, what = int(rng.integers(4)), int(rng.integers(3))
    if door == 0:  # compare: seeds, student names, an objective, data
        what = int(rng.integers(4))
        args = {"seeds": (0,), "students": {"s": make()}, "data": blobs}
        if what == 0:
            args["seeds"] = _bad_seeds(rng)
        elif what == 1:
            args["students"] = _bad_students(rng, make)
        elif what == 2:
            args["students"] = {"s": (make(), BAD_OBJECTIVES[int(rng.integers(len(BAD_OBJECTIVES)))])}
        else:
            args["data"] = _bad_data(rng, blobs)
        named = ["seeds", "students", "objective", "data"][what]
        return (lambda: kdistill.compare(make(), args["students"], args["data"], seeds=args["seeds"], out=out,
                                         epochs=1, quiet=True)), named
    if door in (1, 2):  # distill and fit: an objective, data, the model
        objective = BAD_OBJECTIVES[int(rng.integers(len(BAD_OBJECTIVES)))] if what == 0 else None
        data = _bad_data(rng, blobs) if what == 1 else blobs
        model = [None, "mlp", LogisticRegressionStandIn()][int(rng.integers(3))] if what == 2 and door == 2 else make()
        named = ["objective", "data", "model" if door == 2 else "objective"][what]
        if door == 2:
            return (lambda: kdistill.fit(model, data, objective=objective or [("ce", 1.0)], epochs=1)), named
        objective = objective if what != 2 else "kd"
        return (lambda: kdistill.distill(make(), model, data, objective=objective, epochs=1)), named
    n = int(rng.integers(6, 40))  # split_arrays: labels and shapes
    x, classes = rng.normal(size=(n, int(rng.integers(1, 4)))), ["cat", "dog", "eel"]
    if what == 0:
        y = np.arange(n + int(rng.choice([-2, -1, 1, 3]))) % 3
        named = "y has"
    elif what == 1:
        y = np.array(classes + ["fox"])[np.arange(n) % 4]
        named = "y holds label"
    else:
        y = np.arange(n) % 2 == 0
        named = "y holds booleans"
    return (lambda: kdistill.split_arrays(x, y, classes)), named


class LogisticRegressionStandIn:
    """Something that is not a torch module, given to fit as the model."""


def test_bad_api_arguments_are_named_before_any_folder_is_made(tmp_path, blobs, no_hang):
    rng = np.random.default_rng([SEED, 1000])
    counts = OUTCOMES.setdefault("API arguments", collections.Counter())
    for trial in range(TRIALS["API arguments"]):
        out = tmp_path / f"run{trial}"
        call, named = _bad_call(rng, blobs, out)
        no_hang()
        try:
            call()
        except (ValueError, TypeError) as exc:
            assert named in str(exc), f"trial {trial}: {type(exc).__name__} without {named!r}: {exc}"
            counts[type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001 - reported with the call that caused it
            raise AssertionError(f"trial {trial} ({named}): {type(exc).__name__}: {exc}") from exc
        else:
            raise AssertionError(f"trial {trial}: a bad {named} was accepted")
        assert not out.exists(), f"trial {trial}: a folder was left behind"
    assert counts["TypeError"] > 0 and counts["ValueError"] > 0


@pytest.mark.skipif(bool(os.environ.get("PYTEST_XDIST_WORKER")), reason="pytest-xdist shares the tests above out "
                    "among processes, so no process holds every count")
def test_report_the_counts():
    """The trials and outcomes of the tests above (shown with -s)."""
    lines = [f"{kind}: {sum(c.values())} trials, " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
             for kind, c in OUTCOMES.items()]
    print("\ndamaged files:\n  " + "\n  ".join(lines) + f"\n  total: {sum(sum(c.values()) for c in OUTCOMES.values())}")
    assert len(OUTCOMES) in (0, len(TRIALS))  # all kinds ran, or this test ran alone

