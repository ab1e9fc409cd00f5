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


@pytest.mark.parametrize("keep", [0.5, 0.9, 20])
def test_a_truncated_idx_gz_is_a_clear_error(tmp_path, keep):
    write_idx(tmp_path / "x.gz", np.arange(2000).reshape(20, 10, 10) % 256)
    data = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(data[:keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"cannot read IDX file .*x.gz: .*\(a truncated or corrupt gzip file\?\)"):
        read_idx(tmp_path / "x.gz")


def test_idx_labels_must_be_one_integer_per_sample(tmp_path):
    write_idx(tmp_path / "x", np.zeros((3, 4, 4)))
    write_idx(tmp_path / "y", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"y: IDX labels must be a 1-d array of integers, got uint8 of shape \(3, 2\)"):
        idx_images(tmp_path / "x", tmp_path / "y")


def test_idx_images_of_wider_types_are_scaled_by_their_range(tmp_path):
    header = bytes([0, 0, 0x0B, 3]) + np.asarray((2, 2, 2), ">u4").tobytes()
    (tmp_path / "x").write_bytes(header + np.array([0, 8191, 16383, 32767] * 2, ">i2").tobytes())
    write_idx(tmp_path / "y", np.array([0, 1]))
    x, _ = idx_images(tmp_path / "x", tmp_path / "y")
    assert x.max() == pytest.approx(1.0) and x[0, 0, 0, 1] == pytest.approx(0.25, abs=1e-4)


def test_a_table_with_no_feature_columns_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"label": ["a", "b", "a", "b"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t.csv: no feature columns: the table holds \['label'\] and 'label' is the "
                                         r"target; add feature columns"):
        read_table(path, "label")
    tiny_frame().to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t.csv: no feature columns"):
        read_table(path, "label", features=[])


def test_a_target_with_one_class_is_an_error_naming_file_and_column(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["pos", "pos", "pos"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t.csv: the target column 'label' holds one class \('pos', 3 row\(s\)\); a "
                                         r"classifier needs at least 2"):
        read_table(path, "label")


def test_labels_that_differ_only_in_spaces_or_case(tmp_path, caplog):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": range(6), "label": ["pos", " pos", "pos", "neg", "neg", "neg"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t.csv: column 'label' has labels that differ only in spaces around them: "
                                         r"' pos' \(1 rows\) and 'pos' \(2 rows\); they would be separate classes"):
        read_table(path, "label")
    pd.DataFrame({"x": range(6), "label": ["A", "a", "a", "b", "b", "B"]}).to_csv(path, index=False)
    _, _, classes = read_table(path, "label")  # letters: upper and lower case may well be classes of their own
    assert classes == ["A", "B", "a", "b"]
    assert "column 'label' has labels that differ only in case: 'A' (1 rows) and 'a' (2 rows); they are kept as " \
           "separate classes" in caplog.text
