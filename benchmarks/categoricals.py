"""Native categoricals or one-hot columns for a small LightGBM on real tables?

Data: DNA (3,186 x 180 categorical columns of two levels each, 3 classes) and Vowel (990 x 9
numbers and the speaker, a categorical column of 15 levels, 11 classes) of R's ``mlbench``, read
as :mod:`benchmarks.tabular` reads them (see the steps at the top of that file), split 65/15/20 by
:func:`kdistill.load_table` (seeds 0-2).

Model: LightGBM of 20 trees x 8 leaves, its defaults otherwise, alone (no teacher), fitted on the
train split's one-hot columns (*onehot*) or inside :class:`kdistill.categoricals.NativeCategoricals`
(*native*, what a study gives a boosted tree by default). Reported: validation and test accuracy,
mean ± std over the seeds, and the largest |probability difference| between the two on
validation. The default was not chosen from these numbers.

    python benchmarks/categoricals.py [--data DIR] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402
from tabular import DATA, read  # noqa: E402

import kdistill  # noqa: E402
from kdistill.categoricals import NativeCategoricals  # noqa: E402
from kdistill.study import members  # noqa: E402

TABLES = ("DNA", "Vowel")  # the target column of both is "Class"
SEEDS = (0, 1, 2)


def measure(frame, seed: int) -> dict:
    data = kdistill.load_table(frame, "Class", seed=seed)
    (x, y), (xv, yv), (xt, yt) = (members.arrays(s) for s in (data.train, data.val, data.test))
    from lightgbm import LGBMClassifier

    lgbm = LGBMClassifier(n_estimators=20, num_leaves=8, random_state=seed, n_jobs=1, verbose=-1)
    out, proba = {}, {}
    for kind, model in (("onehot", lgbm), ("native", NativeCategoricals(lgbm, data.info["layout"]))):
        model = clone(model).fit(x, y)
        proba[kind] = model.predict_proba(xv)
        out[kind] = {"val": float((model.predict(xv) == yv).mean()), "test": float((model.predict(xt) == yt).mean())}
    out["max_dp_val"] = float(np.abs(proba["native"] - proba["onehot"]).max())
    return out


def markdown(rows: dict) -> str:
    lines = ["| table | onehot val | native val | onehot test | native test | max abs dp (val) |",
             "|---|---|---|---|---|---|"]
    for name, seeds in rows.items():
        cells = [f"{np.mean([s[k][part] for s in seeds]):.4f} ± {np.std([s[k][part] for s in seeds]):.4f}"
                 for part in ("val", "test") for k in ("onehot", "native")]
        lines.append(f"| {name} | {' | '.join(cells)} | {max(s['max_dp_val'] for s in seeds):.3g} |")
    return "\n".join(lines) + f"\n\nSeeds {', '.join(map(str, SEEDS))}; LightGBM 20 trees x 8 leaves.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("KDISTILL_MLBENCH", DATA)))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not (args.data / "DNA.rda").exists():
        raise SystemExit(f"mlbench data not found in {args.data}: see the steps at the top of benchmarks/tabular.py")
    torch.set_num_threads(1)
    rows = {name: [measure(read(args.data, name), seed) for seed in SEEDS] for name in TABLES}
    md = markdown(rows)
    write("categoricals", rows, md, args.out)
    print(md)


if __name__ == "__main__":
    main()
