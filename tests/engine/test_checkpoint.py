"""Checkpoints are checked before anything is loaded from them (keys, types, a position within
the budget), and a disk that fills up while one is written keeps the previous one whole."""

import contextlib
import resource
import signal

import pytest
import torch

import kdistill
from kdistill.models import mlp


def _resume(blobs, folder, epochs=2):
    torch.manual_seed(0)
    return kdistill.fit(mlp(5, 3), blobs, epochs=epochs, checkpoint_dir=str(folder), resume=True, quiet=True)


@pytest.fixture
def saved(blobs, tmp_path):
    torch.manual_seed(0)
    kdistill.fit(mlp(5, 3), blobs, epochs=1, checkpoint_dir=str(tmp_path), quiet=True)
    return tmp_path / "last.pt"


def _edit(path, **changes):
    blob = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del blob[key]
        else:
            blob[key] = value
    torch.save(blob, path)


@pytest.mark.parametrize("changes, message", [
    ({"history": None}, r"it lacks the key\(s\) \['history'\]"),
    ({"callbacks": None, "rng": None}, r"it lacks the key\(s\) \['callbacks', 'rng'\]"),
    ({"rng": [1, 2]}, r"key 'rng' holds a list"),
    ({"position": [9, 0], "history": [{}] * 9}, r"its position \(epoch 9, batch 0\) lies outside this run's budget "
                                                r"of 2 epoch\(s\) of 3 batch\(es\)"),
    ({"position": [1, 50]}, r"its position \(epoch 1, batch 50\) lies outside this run's budget of 2 epoch\(s\) "
                            r"of 3 batch\(es\)"),
    ({"position": [1, "0"]}, r"its position \[1, '0'\] is not \[epoch, batch\]"),
    ({"position": [2, 0]}, r"its history holds 1 epoch\(s\) but its position says 2"),
])
def test_a_checkpoint_is_checked_before_anything_is_loaded(blobs, saved, changes, message):
    _edit(saved, **changes)
    before = saved.read_bytes()
    with pytest.raises(ValueError, match=rf"cannot resume from .*last.pt: {message}; it is not a checkpoint of this "
                                         rf"run \(or was damaged\): delete it to start afresh"):
        _resume(blobs, saved.parent)
    assert saved.read_bytes() == before


@contextlib.contextmanager
def disk_holds(nbytes):
    """Writes past ``nbytes`` in any file fail as on a full disk (EFBIG; the kernel's SIGXFSZ
    is ignored so that the write returns an error instead of killing the process)."""
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)


def test_a_real_full_disk_while_checkpointing_keeps_the_last_checkpoint(blobs, saved):
    before = {p.name: p.read_bytes() for p in saved.parent.iterdir()}
    with pytest.raises(OSError, match=r"cannot write checkpoint '.*last.pt': torch.save failed \(.*MB free on that "
                                      r"disk\); the existing last.pt is unchanged"):
        with disk_holds(1024):
            _resume(blobs, saved.parent, epochs=3)
    assert {p.name: p.read_bytes() for p in saved.parent.iterdir()} == before  # no temporary left
