"""Teacher-cache entries: used only when their name, metadata, shapes, checksums and values all
check out (anything else is rebuilt with a warning), and cleared only when verifiably kdistill's."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kdistill import CachedTeacher, clear_cache, load_dataset, models
from kdistill.cli import main


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", train_fraction=0.2)


@pytest.fixture
def cached(tmp_path):
    torch.manual_seed(0)
    return CachedTeacher(models.mlp((1, 8, 8), 10, hidden=[16]), cache_dir=tmp_path, dtype="float32")


def _values(entry):
    return np.load(entry / "values.npy", mmap_mode="r+")


@pytest.mark.parametrize("damage", ["finite garbage", "nan", "wrong shape", "checksum edited"])
def test_a_damaged_entry_is_rebuilt_with_a_warning_never_used(data, cached, caplog, damage):
    entry = cached.for_dataset(data.train).entry
    if damage == "finite garbage":  # the header intact, the values replaced
        values = _values(entry)
        values[:] = np.random.default_rng(0).normal(size=values.shape)
        values.flush()
    elif damage == "nan":
        values = _values(entry)
        values[3, 2] = np.nan
        values.flush()
    elif damage == "wrong shape":
        np.save(entry / "values.npy", np.zeros((len(data.train), 7), np.float32))
    else:
        meta = json.loads((entry / "meta.json").read_text())
        meta["checksums"]["values"] = "0" * 64
        (entry / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        view = cached.for_dataset(data.train)
    assert f"teacher cache {entry} is stale or damaged" in caplog.text and "rebuilding it" in caplog.text
    expected = {"finite garbage": "checksum of values.npy does not match", "nan": "checksum of values.npy",
                "wrong shape": "values.npy holds float32 of shape", "checksum edited": "checksum of values.npy"}
    assert expected[damage] in caplog.text
    live = cached.teacher.logits(data.train.x)
    torch.testing.assert_close(view.logits(None, torch.arange(len(data.train))), live)


def test_an_intact_entry_is_read_without_a_rebuild(data, cached, caplog):
    entry = cached.for_dataset(data.train).entry
    written = (entry / "values.npy").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        cached.for_dataset(data.train)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (entry / "values.npy").stat().st_mtime_ns == written


def test_a_link_at_an_entry_name_is_refused(data, cached, tmp_path):
    entry = cached.for_dataset(data.train).entry
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    entry.rename(elsewhere)
    entry.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError, match=r"is a symbolic link .*kdistill neither follows nor removes it"):
        cached.for_dataset(data.train)
    assert (elsewhere / "meta.json").is_file()


def test_cache_clear_deletes_only_verifiable_entries(data, cached, tmp_path, capsys):
    entry = cached.for_dataset(data.val).entry
    keep = {}
    keep["notes"] = tmp_path / "notes"  # a folder of the user's holding a meta.json
    keep["notes"].mkdir()
    (keep["notes"] / "meta.json").write_text("{}")
    keep["renamed"] = tmp_path / ("a" * 32)  # named like a key, but its meta.json names another
    keep["renamed"].mkdir()
    (keep["renamed"] / "meta.json").write_text(json.dumps({"key": "b" * 32}))
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "meta.json").write_text(json.dumps({"key": "c" * 32}))
    keep["link"] = tmp_path / ("c" * 32)
    keep["link"].symlink_to(outside, target_is_directory=True)
    keep["user tmp"] = tmp_path / "backup.tmp"
    keep["user tmp"].mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keep["live build"] = tmp_path / f".{'d' * 32}.{sleeper.pid}.00ff.tmp"
        keep["live build"].mkdir()
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        unfinished = tmp_path / f".{'e' * 32}.{dead}.1234abcd.tmp"
        unfinished.mkdir()
        (unfinished / "values.npy").write_bytes(b"\0" * 100)
        assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert "removed 2 teacher-cache entries" in capsys.readouterr().out
    assert not entry.exists() and not unfinished.exists()
    assert all(os.path.lexists(p) for p in keep.values()), {k: os.path.lexists(p) for k, p in keep.items()}
    assert (outside / "meta.json").is_file()
    assert clear_cache(tmp_path) == (1, 0)  # the build whose process has ended since
    assert not keep["live build"].exists() and keep["notes"].is_dir()
