"""The bad-input table (docs/background/bad-inputs.md): one test per row, each asserting the message
(it names the input, the value and what is allowed or what to do) and, where files are involved, that the
files a user already had are untouched.

Rows covered exactly by a test elsewhere are not repeated here; that table names them:
corrupt image (test_images), labels outside the classes, teacher and student class counts,
a checkpoint of another architecture (test_engine), teacher class order (test_teachers),
unknown keys and out-of-range values in a config (test_config), a run folder that already
holds results (test_cli).
"""

import errno
import hashlib
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from torch.utils.data import Dataset

import kdistill
from kdistill import config, weights
from kdistill.cli import main
from kdistill.config import ConfigError
from kdistill.data import ArrayDataset, ImageFolder, Splits, read_table, split_arrays
from kdistill.models import cnn, mlp
from kdistill.weights import load_weights, read_state_dict


def fingerprint(root):
    """Every file under ``root`` with the hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def tensors_file(tmp_path, model=None, name="w.safetensors"):
    model = model or mlp(4, 3, hidden=[5])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / name)
    return tmp_path / name


def two_class_data(n=20):
    ds = ArrayDataset(torch.randn(n, 4), torch.arange(n) % 2)
    return Splits(ds, ds, None, ["a", "b"])


# ---------------------------------------------------------------------------------------------
# Data


def test_empty_class_folder(tmp_path, make_folder):
    root = make_folder(tmp_path / "imgs", {"a": 4, "b": 4})
    (root / "c").mkdir()
    (root / "d").mkdir()
    (root / "d" / "broken.png").write_bytes(b"\x89PNG not really")  # only unreadable images
    before = fingerprint(root)
    with pytest.raises(ValueError, match=r"class folder\(s\) \['.*imgs/c', '.*imgs/d'\] hold no readable "
                                         r"\.png/\.jpg/\.jpeg/\.bmp image \(1 unreadable file\(s\) skipped\); every "
                                         r"class needs training images"):
        ImageFolder(root, size=(4, 4))
    assert fingerprint(root) == before


def test_data_with_a_single_class():
    with pytest.raises(ValueError, match=r"'data' has 1 class\(es\) \['cat'\]; a classifier needs at least 2"):
        split_arrays(np.random.rand(20, 3), np.zeros(20, int), ["cat"])


def test_train_split_with_a_single_class():
    one = ArrayDataset(torch.randn(6, 4), torch.zeros(6))
    both = ArrayDataset(torch.randn(6, 4), torch.arange(6) % 2)
    with pytest.raises(ValueError, match=r"the train split of 'pets' holds only class 'cat' \(classes: \['cat', "
                                         r"'dog'\]\); training needs samples of at least 2 classes"):
        Splits(one, both, None, ["cat", "dog"], name="pets")


def test_class_too_small_for_a_stratified_split():
    y = np.r_[np.zeros(19, int), 1]
    with pytest.raises(ValueError, match=r"cannot carve a stratified test split of 'data': class\(es\) 'dog' \(1\) "
                                         r"have fewer than 2 samples"):
        split_arrays(np.random.rand(20, 3), y, ["cat", "dog"])


def test_labels_that_are_not_whole_class_indices():
    with pytest.raises(ValueError, match=r"data: labels must be whole class indices, but 1 are not \(first 1.5 at "
                                         r"row 2; rows \[2\]\); encode classes as 0..K-1"):
        ArrayDataset(np.zeros((3, 2)), [0.0, 1.0, 1.5])


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_inf_in_arrays(bad):
    x = np.zeros((5, 2))
    x[3, 0] = bad
    with pytest.raises(ValueError, match=r"x holds NaN or inf in 1 sample\(s\), first at rows \[3\]"):
        ArrayDataset(x, [0, 1, 0, 1, 0])


def test_inf_in_a_csv_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"size": [1.0, 2.0, np.inf, 4.0], "label": ["a", "b", "a", "b"]}).to_csv(path, index=False)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"t.csv: column 'size' holds 1 infinite value\(s\) \(inf at data row 3; "
                                         r"rows \[3\]\); only finite numbers are allowed"):
        read_table(path, "label")
    assert path.read_bytes() == before


def test_nan_in_the_csv_target(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "label": ["a", None, "a", "b"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t.csv: 1 row\(s\) have no value in the target column 'label'"):
        read_table(path, "label")


class RepeatedIndices(Dataset):
    """A user dataset whose items carry the index ``i % 5`` instead of ``i``."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.full((4,), float(i)), i % 2, i % 5


def test_duplicate_sample_indices():
    with pytest.raises(ValueError, match=r"data.train: item indices must be 0..7, each exactly once, but index 0 "
                                         r"appears 2 times \(repeated: \[0, 1, 2\]\); give item i the index i"):
        Splits(RepeatedIndices(), None, None, ["a", "b"])


def test_items_without_an_index():
    class Pairs(RepeatedIndices):
        def __getitem__(self, i):
            return torch.zeros(4), i % 2

    with pytest.raises(ValueError, match=r"data.train: item 0 is a tuple, not an \(x, y, index\) triple"):
        Splits(Pairs(), None, None, ["a", "b"])


def test_image_size_mismatching_the_model():
    data = kdistill.load_dataset("digits")  # 1x8x8 images
    with pytest.raises(ValueError, match=r"the student cannot run on the data's inputs of shape \(1, 8, 8\)"):
        kdistill.fit(mlp((1, 16, 16), 10), data, epochs=1, quiet=True)


def test_weights_for_another_input_size(tmp_path):
    path = tensors_file(tmp_path, cnn((1, 16, 16), 3, channels=[4, 8]))
    with pytest.raises(ValueError, match=r"do not fit Sequential \(another architecture or input size\?\): of "
                                         r"another shape \['classifier.1.weight \(\d+, 128\) in the file, \(\d+, 32\) "
                                         r"in the model'\]; only in the file none; only in the model none; pass "
                                         r"partial=True \(weights_partial: true in an experiment file\)"):
        load_weights(cnn((1, 8, 8), 3, channels=[4, 8]), path)


# ---------------------------------------------------------------------------------------------
# Checkpoints and weight files


def truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    return path.read_bytes()


@pytest.mark.parametrize("keep", [5, -20])  # the header cut, or only the end of the tensors
def test_truncated_safetensors_file(tmp_path, keep):
    path = tensors_file(tmp_path)
    before = truncate(path, keep)
    with pytest.raises(ValueError, match=r"cannot read weights .*w.safetensors: not a complete safetensors file .*"
                                         r"it may be truncated or corrupt"):
        read_state_dict(path)
    with pytest.raises(ValueError, match="not a complete safetensors file .*it may be truncated or corrupt"):
        weights.load_weights(mlp(4, 3, hidden=[5]), path)
    assert path.read_bytes() == before


def test_truncated_torch_state_dict(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(mlp(4, 3).state_dict(), path)
    before = truncate(path, -100)
    with pytest.raises(ValueError, match=r"cannot read weights .*w.pt: neither a safetensors file nor a state dict "
                                         r"readable with torch.load\(weights_only=True\) \(a truncated or corrupt"):
        read_state_dict(path)
    assert path.read_bytes() == before


def test_truncated_engine_checkpoint(blobs, tmp_path):
    kdistill.fit(mlp(5, 3), blobs, epochs=1, checkpoint_dir=str(tmp_path), quiet=True)
    before = truncate(tmp_path / "last.pt", -100)
    with pytest.raises(ValueError, match=r"cannot resume from .*last.pt: the file is truncated or corrupt"):
        kdistill.fit(mlp(5, 3), blobs, epochs=2, checkpoint_dir=str(tmp_path), resume=True, quiet=True)
    assert (tmp_path / "last.pt").read_bytes() == before


class Payload:
    """Unpickling this writes a marker file: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_payload_does_run_when_unpickled(tmp_path):
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()  # so the tests below, which find no marker, can fail


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch reading a plain pickle, before refusing
@pytest.mark.parametrize("name", ["w.pt", "w.pth", "w.safetensors", "w.skops"])
def test_pickle_where_weights_are_expected_is_never_unpickled(tmp_path, name):
    marker = tmp_path / "marker"
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"state_dict": Payload(marker)}))
    zipped = tmp_path / f"zipped-{name}"
    torch.save({"model": Payload(marker)}, zipped)  # torch's own zip container around the pickle
    for file in (path, zipped):
        with pytest.raises(ValueError, match=r"weights_only=True|not a complete safetensors file"):
            read_state_dict(file)
        with pytest.raises(ValueError, match=r"pickled objects are never unpickled|not a complete safetensors file"):
            weights.load_weights(mlp(4, 3), file)
        with pytest.raises(ValueError, match=r"is not a skops file: it holds neither"):
            weights.load_sklearn(file)
    assert not marker.exists()


def test_pickled_engine_checkpoint_is_never_unpickled(blobs, tmp_path):
    marker = tmp_path / "marker"
    torch.save({"epoch": 0, "model": Payload(marker)}, tmp_path / "last.pt")
    before = fingerprint(tmp_path)
    with pytest.raises(ValueError, match=r"cannot resume from .*last.pt"):
        kdistill.fit(mlp(5, 3), blobs, epochs=2, checkpoint_dir=str(tmp_path), resume=True, quiet=True)
    assert not marker.exists()
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize("model", ["os:system", "subprocess:Popen"])
def test_import_path_to_something_other_than_a_model_is_never_called(tiny, tmp_path, model):
    marker = tmp_path / "marker"
    tiny["teacher"] = {"model": model, "options": {"command": f"touch {marker}", "args": ["touch", str(marker)]}}
    with pytest.raises(ConfigError, match=rf"teacher.model: model '{model}': '\w+' is a .*; a model must be a "
                                          rf"Python function returning a torch.nn.Module, an nn.Module subclass, "
                                          rf"or a scikit-learn classifier or regressor class"):
        config.validate(tiny)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# Output folders: read-only, full


@pytest.fixture
def unwritable(tmp_path):
    """A folder nothing can be written into: chmod 0o555 where that stops writes; as root (where
    it does not), a regular file standing where the folder should be."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").write_text("x")
    except PermissionError:
        yield folder
        folder.chmod(0o755)
        return
    (folder / "probe").unlink()
    folder.chmod(0o755)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    yield blocker


def test_read_only_folder_for_weights_and_models(unwritable):
    with pytest.raises(OSError, match=r"cannot write '.*w.safetensors': .*check that the folder exists and is "
                                      r"writable and that the disk has free space"):
        weights.save_weights(mlp(4, 3), unwritable / "w.safetensors")
    model = LogisticRegression().fit(np.random.rand(10, 2), np.arange(10) % 2)
    with pytest.raises(OSError, match=r"cannot write '.*m.skops': .*check that the folder exists and is writable"):
        weights.save_sklearn(model, unwritable / "m.skops")


def test_read_only_run_folder(tiny, write_experiment, unwritable, capsys):
    code = main(["run", str(write_experiment(tiny)), "--out", str(unwritable / "run"), "--quiet"])
    assert code == 2
    assert "cannot write the run folder" in capsys.readouterr().err


def test_read_only_checkpoint_dir(blobs, unwritable):
    epochs = []

    class Count:
        def on_epoch_end(self, state):
            epochs.append(state.epoch)

    with pytest.raises(OSError, match=r"checkpoint_dir .* cannot be written"):
        kdistill.fit(mlp(5, 3), blobs, epochs=2, checkpoint_dir=str(unwritable / "ckpt"), callbacks=[Count()],
                       quiet=True)
    assert epochs == []  # refused before any training time is spent


def disk_full_after(nbytes):
    """A writer that writes ``nbytes`` of its file, then fails as a full disk does."""
    def write(*args, **kwargs):
        target = next(a for a in (*args, *kwargs.values()) if isinstance(a, (str, os.PathLike)))
        with open(target, "wb") as fh:
            fh.write(b"\0" * nbytes)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return write


@pytest.mark.parametrize("kind", ["weights", "sklearn"])
def test_full_disk_keeps_the_existing_file(tmp_path, monkeypatch, kind):
    if kind == "weights":
        path = weights.save_weights(mlp(4, 3), tmp_path / "w.safetensors")
        monkeypatch.setattr("safetensors.torch.save_file", disk_full_after(10))
        save = lambda: weights.save_weights(mlp(4, 3), path)  # noqa: E731
    else:
        model = LogisticRegression().fit(np.random.rand(10, 2), np.arange(10) % 2)
        path = weights.save_sklearn(model, tmp_path / "m.skops")
        monkeypatch.setattr("skops.io.dump", disk_full_after(10))
        save = lambda: weights.save_sklearn(model, path)  # noqa: E731
    before = fingerprint(tmp_path)
    with pytest.raises(OSError, match=rf"cannot write '.*{path.name}': \[Errno {errno.ENOSPC}\] No space left on "
                                      rf"device; the existing {path.name} is unchanged"):
        save()
    assert fingerprint(tmp_path) == before  # the old file intact, no partial file left beside it


def test_full_disk_while_checkpointing(blobs, tmp_path, monkeypatch):
    kdistill.fit(mlp(5, 3), blobs, epochs=1, checkpoint_dir=str(tmp_path / "a"), quiet=True)
    before = fingerprint(tmp_path / "a")
    monkeypatch.setattr(torch, "save", disk_full_after(10))
    with pytest.raises(OSError, match=r"cannot write checkpoint .*last.pt.*No space left on device.*the existing "
                                      r"last.pt is unchanged"):
        kdistill.fit(mlp(5, 3), blobs, epochs=2, checkpoint_dir=str(tmp_path / "a"), resume=True, quiet=True)
    assert fingerprint(tmp_path / "a") == before
