import gzip

import numpy as np
import pandas as pd
import pytest

from kdistill.data import idx_images, read_idx, read_table, split_parts, table_encoder


def write_idx(path, array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype({0x08: ">u1", 0x0D: ">f4"}[code]).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def test_idx_roundtrip_gzip_and_errors(tmp_path):
    images = np.arange(3 * 4 * 5).reshape(3, 4, 5) % 256
    write_idx(tmp_path / "x.gz", images)
    write_idx(tmp_path / "y", np.array([0, 2, 1]))
    assert np.array_equal(read_idx(tmp_path / "x.gz"), images)
    x, y = idx_images(tmp_path / "x.gz", tmp_path / "y", limit=2)
    assert x.shape == (2, 1, 4, 5) and x.max() <= 1 and y.tolist() == [0, 2]
    write_idx(tmp_path / "f", np.ones((2, 2), np.float32), code=0x0D)
    assert read_idx(tmp_path / "f").dtype == np.dtype(">f4")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1]))
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(tmp_path / "short")


def tiny_frame(n=40):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "size": rng.normal(size=n),
        "weight": np.where(np.arange(n) % 7 == 0, np.nan, rng.normal(size=n)),
        "color": rng.choice(["red", "green", "blue"], n),
        "label": np.where(np.arange(n) % 2, "yes", "no"),
    })


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_table_numeric_and_categorical_features(tmp_path, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    frame = tiny_frame()
    path = tmp_path / f"t.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    x, y, classes = read_table(path, "label")
    assert classes == ["no", "yes"] and list(x.columns) == ["size", "weight", "color"]
    splits = split_parts({"all": (x, y)}, classes, seed=0, prepare=table_encoder())
    assert splits.input_shape == (2 + 3,)  # two numeric columns, three colors one-hot
    train = splits.train.x.numpy()
    assert np.isfinite(train).all() and abs(train[:, 0].mean()) < 1e-5  # standardized on train


def test_encoder_is_fitted_on_train_only():
    frame = pd.DataFrame({"c": ["a", "b", "a", "b"], "n": [1.0, 2.0, 3.0, 4.0]})
    transform = table_encoder(categorical=["c"])(frame)
    out = transform(pd.DataFrame({"c": ["zzz"], "n": [2.5]}))
    assert out.tolist() == [[0.0, 0.0, 0.0]]  # centred number, unseen category all zeros


def test_table_errors_name_the_column(tmp_path):
    path = tmp_path / "t.csv"
    tiny_frame().to_csv(path, index=False)
    with pytest.raises(ValueError, match="target column 'lable' not found .did you mean 'label'"):
        read_table(path, "lable")
    with pytest.raises(ValueError, match="features column 'colour'"):
        read_table(path, "label", features=["colour"])
    (tmp_path / "t.xlsx").write_text("")
    with pytest.raises(ValueError, match="unknown file type"):
        read_table(tmp_path / "t.xlsx", "label")
