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


# ---------------------------------------------------------------------------------------------
# Any bit depth or mode, scaled not clipped; no file that hangs the reader or floods memory


def _folder_of(tmp_path, images, ext="png"):
    """A two-class folder: class ``a`` holds ``images``, class ``b`` one plain grey image."""
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        img.save(tmp_path / "imgs" / "a" / f"{i}.{ext}")
    Image.new("L", (4, 4), 128).save(tmp_path / "imgs" / "b" / "0.png")
    return tmp_path / "imgs"


@pytest.mark.parametrize("kind, ext, expected", [
    ("16-bit", "png", 30000 / 65535), ("16-bit", "tif", 30000 / 65535), ("32-bit integer", "tif", 30000 / 65535),
    ("float", "tif", 0.3),
])
def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path, kind, ext, expected):
    """X-ray and other medical images are often 16-bit or float: clipped to 8 bits, 99.6% of
    their pixels became 255."""
    from PIL import Image

    values = {"16-bit": np.full((6, 6), 30000, np.uint16), "32-bit integer": np.full((6, 6), 30000, np.int32),
              "float": np.full((6, 6), 0.3, np.float32)}[kind]
    root = _folder_of(tmp_path, [Image.fromarray(values)], ext)
    folder = ImageFolder(root, size=(3, 3), extensions=[".png", ".tif"])
    x, y = folder.parts["all"]
    assert not folder.skipped
    np.testing.assert_allclose(x[y == 0], expected, rtol=1e-5)
    np.testing.assert_allclose(x[y == 1], 128 / 255, rtol=1e-5)
    rgb = ImageFolder(root, size=(3, 3), color="rgb", extensions=[".png", ".tif"]).parts["all"][0]
    assert rgb.shape == (2, 3, 3, 3) and np.allclose(rgb[0], rgb[0, :1])


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "1", "I;16", "CMYK"])
def test_every_mode_is_read_in_range(tmp_path, mode):
    from PIL import Image

    img = Image.fromarray(np.linspace(0, 255, 36).reshape(6, 6).astype(np.uint8), "L")
    img = img.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(img).astype(np.uint16) * 257))
    if mode == "P":
        img.info["transparency"] = 0
    ext = "tif" if mode == "CMYK" else "png"
    folder = ImageFolder(_folder_of(tmp_path, [img], ext), size=(6, 6), extensions=[".png", ".tif"])
    x = folder.parts["all"][0][0]
    assert not folder.skipped and 0 <= x.min() < 0.1 and 0.9 < x.max() <= 1


def test_an_image_too_large_is_skipped_and_named_or_refused_with_strict(tmp_path, monkeypatch, caplog):
    from PIL import Image

    root = _folder_of(tmp_path, [Image.new("L", (40, 40), 10), Image.new("L", (4, 4), 10)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 40x40 is over it, as a decompression bomb is over the default
    folder = ImageFolder(root, size=(4, 4))
    assert folder.skipped == [str(root / "a" / "0.png")]
    assert folder.problems[str(root / "a" / "0.png")].startswith("too large (Image size (1600 pixels) exceeds limit")
    with pytest.raises(ValueError, match=r"cannot read image .*a/0.png: too large \(.*\) \(strict: true; set strict: "
                                         r"false to skip unreadable images\)"):
        ImageFolder(root, size=(4, 4), strict=True)


@pytest.fixture
def no_hang():
    """Fail instead of hanging for ever."""
    import signal

    def hung(*_):
        raise TimeoutError("the reader hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_fifo_named_png_never_hangs_the_reader(tmp_path, no_hang):
    import os

    from PIL import Image

    root = _folder_of(tmp_path, [Image.new("L", (4, 4), 10)])
    os.mkfifo(root / "a" / "pipe.png")
    (root / "a" / "folder.png").mkdir()
    folder = ImageFolder(root, size=(4, 4))
    assert sorted(folder.problems.items()) == [
        (str(root / "a" / "folder.png"), f"image '{root / 'a' / 'folder.png'}' is a folder, not a regular file"),
        (str(root / "a" / "pipe.png"), f"image '{root / 'a' / 'pipe.png'}' is a FIFO (named pipe), not a regular file")]
    with pytest.raises(ValueError, match=r"cannot read image .*folder.png: .* is a folder, not a regular file"):
        ImageFolder(root, size=(4, 4), strict=True)
