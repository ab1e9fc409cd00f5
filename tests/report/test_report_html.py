"""The HTML report renders in headless Chromium (skipped where Debian's ``chromium`` is absent)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdistill.cli import main

SCRIPT = Path(__file__).parents[2] / "scripts" / "check_report_html.sh"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_report_html_renders_in_headless_chromium(tiny, write_experiment, tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(write_experiment(tiny)), "--out", str(out), "--set", "train.epochs=1", "--quiet"]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run([str(SCRIPT), str(out), str(shot)], check=True, timeout=120, env={"HEIGHT": "2000",
                                                                                    "PATH": "/usr/bin:/bin"})
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200)
    assert pixels.std() > 10  # text, tables and plots were drawn, not a blank page
    assert (pixels < 100).mean() > 0.005  # dark ink (text, axes) on the page
