import numpy as np
import pytest
import torch

from kdistill.data import Augment, ImageFolder, split_parts
from kdistill.engine import fit
from kdistill.models import mlp


def test_auto_split_folder_with_corrupt_image_skipped_and_counted(tmp_path, make_folder):
    folder = ImageFolder(make_folder(tmp_path / "imgs", {"a": 6, "b": 12}, corrupt=1), size=(8, 6))
    x, y = folder.parts["all"]
    assert x.shape == (18, 1, 8, 6) and x.min() >= 0 and x.max() <= 1
    assert folder.classes == ["a", "b"] and np.bincount(y).tolist() == [6, 12]
    info = folder.summary()
    assert info["skipped"] == 1 and "broken0.png" in info["skipped_files"][0]
    splits = split_parts(folder.parts, folder.classes, seed=0, val_size=0.25, test_size=0.25)
    assert sum(splits.info["sizes"]) == 18


def test_strict_raises_on_corrupt_image(tmp_path, make_folder):
    with pytest.raises(ValueError, match=r"cannot read image .*broken0.png.*strict"):
        ImageFolder(make_folder(tmp_path / "imgs", corrupt=1), size=(8, 8), strict=True)


def test_split_layout_rgb_and_errors(tmp_path, make_folder):
    for part in ("train", "test"):
        make_folder(tmp_path / "ds" / part, {"a": 4, "b": 4}, mode="RGB")
    folder = ImageFolder(tmp_path / "ds", size=(5, 5), color="rgb")
    assert set(folder.parts) == {"train", "test"} and folder.parts["train"][0].shape == (8, 3, 5, 5)
    splits = split_parts(folder.parts, folder.classes, seed=1, val_size=0.25)
    assert splits.info["sizes"] == [6, 2, 8]  # val carved from train; test kept whole
    make_folder(tmp_path / "ds" / "val", {"c": 2})
    with pytest.raises(ValueError, match=r"class folder\(s\) \['c'\] that the train folder lacks"):
        ImageFolder(tmp_path / "ds", size=(5, 5))
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")


def test_augment_zero_settings_is_identity_and_flips_are_flips():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 7, 7)
    assert torch.allclose(Augment()(x), x, atol=1e-5)
    flipped = Augment(horizontal_flip=True)(x)
    for a, b in zip(flipped, x):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)
    assert not torch.allclose(flipped, x)


def test_augment_respects_normalization_and_changes_images():
    torch.manual_seed(0)
    mean, std = [0.5], [0.2]
    x = (torch.rand(4, 1, 9, 9) - 0.5) / 0.2
    same = Augment(brightness=(1.0, 1.0), mean=mean, std=std)(x)
    assert torch.allclose(same, x, atol=1e-4)
    darker = Augment(brightness=(0.5, 0.5), mean=mean, std=std)(x)
    assert torch.allclose(darker * 0.2 + 0.5, (x * 0.2 + 0.5) * 0.5, atol=1e-4)
    moved = Augment(rotation=30, shear=10, zoom=0.2)(torch.rand(4, 1, 9, 9))
    assert moved.shape == (4, 1, 9, 9)
    with pytest.raises(ValueError, match="image batches"):
        Augment()(torch.rand(4, 9))


def test_engine_augments_training_batches_only():
    rng = np.random.default_rng(0)
    splits = split_parts({"all": (rng.random((40, 1, 4, 4)), np.arange(40) % 2)}, ["a", "b"], val_size=0.25,
                         test_size=0.25)
    seen = []

    def augment(x):
        seen.append(len(x))
        return x

    splits.augment = augment
    fit(mlp((1, 4, 4), 2), splits, epochs=2, batch_size=8, quiet=True)
    assert sum(seen) == 2 * len(splits.train)
