"""Write the small data files the examples read (nothing is downloaded):

- ``data/wine.csv``: scikit-learn's wine data as a table, with the target ``cultivar`` and a
  categorical ``region`` column (derived from the alcohol content, so it carries signal).
- ``data/xray/<class>/*.png``: a synthetic two-class grayscale image set shaped like the chest
  X-ray case study ("NORMAL": smooth lungs; "PNEUMONIA": bright patches), imbalanced 1:2.

    python examples/make_data.py [--images-per-class 60]
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_wine

HERE = Path(__file__).parent / "data"


def write_wine(path: Path) -> None:
    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = [f"cultivar_{int(c)}" for c in frame["cultivar"]]
    frame["region"] = np.where(frame["alcohol"] > 13.0, "north", "south")
    frame.to_csv(path, index=False, float_format="%.4g")


def lung_image(rng, sick: bool, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.15 + 0.05 * rng.standard_normal((size, size))
    for cx in (0.32, 0.68):  # two lungs: dark ellipses in a brighter chest
        inside = ((xx - cx) / 0.16) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1
        img[~inside] += 0.35
    if sick:
        for _ in range(rng.integers(2, 5)):
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.7), rng.uniform(0.04, 0.09)
            img += 0.45 * np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r ** 2)))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_xray(root: Path, per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name, sick, n in (("NORMAL", False, per_class), ("PNEUMONIA", True, 2 * per_class)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(lung_image(rng, sick)).save(root / name / f"{name.lower()}-{i:04d}.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images-per-class", type=int, default=60)
    args = parser.parse_args()
    HERE.mkdir(exist_ok=True)
    write_wine(HERE / "wine.csv")
    write_xray(HERE / "xray", args.images_per_class)
    print(f"wrote {HERE / 'wine.csv'} and {HERE / 'xray'}")
