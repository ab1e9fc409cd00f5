"""Touching the file system safely: writers replace links instead of writing through them,
folders inside a run folder are never links, and readers open only regular files."""

import os

import pytest

from kdistill.files import atomic_write, make_dir, regular_file, staged


def test_atomic_write_replaces_a_link_and_never_writes_through_it(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tmp_path / "run").mkdir()
    link = tmp_path / "run" / "report.md"
    link.symlink_to(outside)
    atomic_write(link, "the report")
    assert outside.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == "the report"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["report.md"]  # no temporary left


def test_a_failed_write_leaves_no_temporary_and_the_old_file_whole(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=r"cannot write '.*w.bin': \[Errno 28\] No space left on device; the existing "
                                      r"w.bin is unchanged"):
        atomic_write(path, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"] and path.read_bytes() == b"old"


def test_temporaries_are_new_files_never_a_planted_link(tmp_path):
    with staged(tmp_path / "x") as tmp:
        assert tmp.is_file() and not tmp.is_symlink() and tmp.stat().st_size == 0
        assert tmp.name.startswith(f".x.{os.getpid()}.") and tmp.name.endswith(".tmp")
        tmp.write_text("x")
    with staged(tmp_path / "folder", folder=True) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
    assert (tmp_path / "x").read_text() == "x" and (tmp_path / "folder").is_dir()


def test_make_dir_refuses_a_link_inside_the_run_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError, match=r"run/checkpoints is a symbolic link \(to .*elsewhere\); kdistill writes only "
                                      r"into real folders it made"):
        make_dir(run / "checkpoints" / "a-seed0", inside=run)
    assert not any(elsewhere.iterdir())
    assert make_dir(run / "weights", inside=run).is_dir()
    user_link = tmp_path / "link-to-run"
    user_link.symlink_to(run, target_is_directory=True)
    assert make_dir(user_link / "onnx", inside=user_link).is_dir()  # the run folder itself may be the user's link


def test_regular_file_refuses_a_fifo_and_a_folder_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"image '.*pipe.png' is a FIFO \(named pipe\), not a regular file"):
        regular_file(fifo, "image")
    with pytest.raises(ValueError, match=r"is a folder, not a regular file"):
        regular_file(tmp_path)
    (tmp_path / "f").write_bytes(b"abc")
    with regular_file(tmp_path / "f") as fh:
        assert fh.read() == b"abc"
