"""The report of a run folder from elsewhere: nothing is written through a link, and only
regular PNG files inside the folder are embedded."""

import io
import json
import logging

import pytest
from PIL import Image

from kdistill.cli import main
from kdistill.report import write_report

RESULTS = {"title": "a study", "dataset": "d", "classes": ["a", "b"], "seeds": [0], "split_sizes": [4, 2, 2],
           "models": [{"name": "m", "params": 10, "per_class": {}, "per_seed": [{"epoch_kept": 1,
                                                                                  "epochs_trained": 2}]}],
           "comparisons": []}


def _png(color=0) -> bytes:
    out = io.BytesIO()
    Image.new("L", (4, 4), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(RESULTS))
    return folder


def test_the_report_never_writes_through_a_link(run, tmp_path, capsys):
    outside = tmp_path / "outside.md"
    outside.write_text("precious")
    (run / "report.md").symlink_to(outside)
    assert main(["report", str(run)]) == 0
    assert outside.read_text() == "precious"
    assert not (run / "report.md").is_symlink() and "# a study" in (run / "report.md").read_text()


def test_only_regular_png_files_inside_the_run_folder_are_embedded(run, tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:SECRET")
    outside_png = tmp_path / "outside.png"
    outside_png.write_bytes(_png(200))
    (run / "curves-m.png").symlink_to(secret)  # a link to any file (as to /etc/passwd)
    (run / "confusion.png").symlink_to(outside_png)  # a link to a real image outside the folder
    (run / "tradeoff.png").unlink(missing_ok=True)
    (run / "tradeoff.png").symlink_to(outside_png)  # its section too is left out, not shown with an empty image
    (run / "predictions.png").write_text("not an image, only named like one")
    (run / "tune-objective.png").write_bytes(_png(100))
    (run / "trials.json").write_text("[]")
    with caplog.at_level(logging.WARNING, logger="kdistill"):
        _, page = write_report(run)
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 1  # only the real PNG inside the folder
    for name, problem in (("curves-m.png", "a symbolic link"), ("confusion.png", "a symbolic link"),
                          ("tradeoff.png", "a symbolic link"), ("predictions.png", "not a PNG image")):
        assert f"report: left out {run / name}: it is {problem}" in caplog.text
    import base64

    for leaked in (secret.read_bytes(), outside_png.read_bytes()):
        assert base64.b64encode(leaked).decode() not in html
    assert "Confusion matrices" not in html and "Predictions on test images" not in html
    assert "Accuracy against size and latency" not in html


def test_a_results_file_that_kdistill_did_not_write_is_a_clear_error(run, capsys):
    (run / "results.json").write_text(json.dumps({"title": "x", "models": "oops"}))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run}: its results.json, data.json, trials.json or shrink.json is not what kdistill writes" in err
    assert "Traceback" not in err
