"""The study's verdict: is a distilled student better than the student alone, beyond seed noise?"""

import pytest

from kdistill.study import verdicts


def verdict(alone, distilled):
    per_seed = {"alone": [{"accuracy": a} for a in alone], "kd": [{"accuracy": d} for d in distilled]}
    return verdicts(per_seed, "alone", ["kd"])[0]


@pytest.mark.parametrize("alone,distilled,significant", [
    ([0.90, 0.90], [0.91, 0.93], False),              # mean +0.02, p = 0.30 with 2 seeds
    ([0.90, 0.90, 0.90], [0.91, 0.93, 0.92], False),  # +0.02 +- 0.006: t = 3.5 < 4.30
    ([0.90, 0.90, 0.90], [0.92, 0.921, 0.919], True),  # +0.02 +- 0.0006: far beyond noise
    ([0.90, 0.90, 0.90], [0.88, 0.881, 0.879], True),
    ([0.90, 0.91], [0.92, 0.93], True),               # the same gain on every seed
])
def test_paired_t_test(alone, distilled, significant):
    v = verdict(alone, distilled)
    assert v["significant"] is significant
    word = ("better" if v["accuracy_delta"] > 0 else "worse") if significant else "no different"
    assert word in v["verdict"]


def test_one_seed_makes_no_claim():
    v = verdict([0.9], [0.95])
    assert v["significant"] is None and "one seed" in v["verdict"]
