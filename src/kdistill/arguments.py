"""One set of argument checks for every front door: :func:`kdistill.compare`,
:func:`kdistill.distill`, :func:`kdistill.fit` and experiment files.

Each check raises a ``ValueError`` (a wrong value) or a ``TypeError`` (a wrong kind of value)
naming the argument, the value given and what is allowed, and runs before anything is trained
or any folder is made.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import numpy as np

from .data import Splits
from .data.splits import label_indices
from .methods import Method
from .report.tables import slug

__all__ = ["ALONE_SUFFIX", "check_data", "check_names", "check_objective", "check_seeds", "label_indices"]

ALONE_SUFFIX = " alone"  # the name of the student alone a study adds for a distilled student without one


def check_names(names: Iterable, what: str = "students", derived: Iterable[str] = ()) -> list[str]:
    """Model names that can name their files: non-empty strings with a letter or digit, no two
    of which (nor one and a ``derived`` name, such as ``"<name> alone"``) become the same file
    name (:func:`~kdistill.report.tables.slug`), since they would share weights and checkpoints."""
    names = list(names)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{what}: model names must be strings, got {name!r} ({type(name).__name__})")
        if not slug(name):
            raise ValueError(f"{what}: model name {name!r} has no letter or digit, so it cannot name its files "
                             f"(weights, checkpoints, plots); give it one")
    by_file: dict[str, list[str]] = {}
    for name in [*names, *derived]:
        by_file.setdefault(slug(name), []).append(name)
    clash = next((same for same in by_file.values() if len(same) > 1), None)
    if clash:
        made = [n for n in clash if n in set(derived)]
        note = f" ({made[0]!r} is the student alone added for a distilled student)" if made else ""
        raise ValueError(f"{what}: model names {' and '.join(map(repr, clash))} both become the file name "
                         f"{slug(clash[0])!r}{note} (weights, checkpoints, plots: lowercase letters and digits, "
                         f"other characters become '-'); rename one")
    return names


def check_seeds(seeds, what: str = "seeds") -> tuple[int, ...]:
    """A non-empty sequence of distinct integers >= 0 (a seed per repetition of the study)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence | np.ndarray | range):
        raise TypeError(f"{what} must be a sequence of integers >= 0, e.g. (0, 1, 2), got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError(f"{what} is empty; give at least one seed, e.g. (0,)")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"{what} must hold integers >= 0, got {seed!r} ({type(seed).__name__}) in {seeds!r}")
        if seed < 0:
            raise ValueError(f"{what} must hold integers >= 0, got {seed} in {seeds!r}")
    repeated = sorted({int(s) for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"{what} must be distinct (a repeated seed repeats the same run), repeated: {repeated}")
    return tuple(int(s) for s in seeds)


def check_objective(objective, what: str = "objective") -> None:
    """An objective is a list of ``(name, weight[, options])`` terms or method objects (a dict
    of DistilledClassifier options for a scikit-learn student is checked by it)."""
    example = "e.g. [('ce', 0.5), ('kd', 0.5, {'temperature': 4})]"
    if isinstance(objective, (str, bytes)):
        raise TypeError(f"{what} must be a list of (name, weight[, options]) terms, {example}; got the string "
                        f"{objective!r}: for that method alone pass [({objective!r}, 1.0)]")
    if isinstance(objective, dict) or isinstance(objective, Method):
        return
    if not isinstance(objective, Sequence):
        raise TypeError(f"{what} must be a list of (name, weight[, options]) terms, {example}; got {objective!r}")
    for item in objective:
        if isinstance(item, Method):
            continue
        ok = isinstance(item, (tuple, list)) and len(item) in (2, 3) and isinstance(item[0], str) \
            and isinstance(item[1], numbers.Real) and not isinstance(item[1], bool) \
            and (len(item) == 2 or isinstance(item[2], dict))
        if not ok:
            raise TypeError(f"{what}: each term is (name, weight) or (name, weight, options) with a string name, a "
                            f"number and a dict, {example}; got {item!r}")


def check_data(data, what: str = "data", seeded: bool = True) -> None:
    """``data`` is a :class:`~kdistill.data.Splits` (or, with ``seeded``, a function ``seed -> Splits``)."""
    if isinstance(data, Splits) or (seeded and callable(data) and not isinstance(data, (np.ndarray, type))):
        return
    allowed = "a kdistill.Splits or a function seed -> Splits" if seeded else "a kdistill.Splits"
    hint = (" (arrays: make splits with kdistill.split_arrays(x, y, classes), or load_table / load_dataset)"
            if isinstance(data, (np.ndarray, list, tuple)) or hasattr(data, "shape") else "")
    raise TypeError(f"{what} must be {allowed}, got {type(data).__name__}{hint}")
