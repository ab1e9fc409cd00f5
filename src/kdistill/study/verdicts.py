"""Verdicts: is a distilled student's difference from the student alone beyond seed-to-seed noise?"""

from __future__ import annotations

from scipy.stats import t as student_t

from ..metrics import mean_std


def verdicts(per_seed: dict[str, list[dict]], alone: str | None, students: list[str],
             baselines: dict[str, str] | None = None) -> list[dict]:
    """Paired comparison of each distilled student with the student trained alone (its own
    baseline in ``baselines``, else ``alone``), seed by seed (``per_seed`` entries carry their
    ``seed``; a seed a student skipped is left out of its pairs). The ± of a verdict is the
    standard error of the mean difference; the table's ± is the standard deviation over seeds."""
    found = [_verdict(per_seed, name, (baselines or {}).get(name, alone)) for name in students]
    return [v for v in found if v is not None]


def _verdict(per_seed: dict[str, list[dict]], name: str, alone: str) -> dict | None:
    baseline = {m.get("seed", i): m["accuracy"] for i, m in enumerate(per_seed[alone])}
    runs = [(m.get("seed", i), m["accuracy"]) for i, m in enumerate(per_seed.get(name, []))]
    diffs = [acc - baseline[seed] for seed, acc in runs if seed in baseline]  # paired by seed
    if not diffs:
        return None  # trained on no seed (its teacher was unfit on every one): nothing to compare
    mean, std = mean_std(diffs)
    n = len(diffs)
    if n < 2:
        verdict = (f"{name} vs {alone}: {mean:+.3f} test accuracy on one seed; run 3 seeds or more "
                   f"(kdistill run/tune/demo --seeds 3, or seeds=range(3) in compare) to tell it from seed-to-seed "
                   f"noise.")
        significant = None
    else:
        # A paired t-test at the 5% level: |mean| beyond t(0.975, n-1) standard errors. With
        # few seeds that quantile is large (12.7 for 2 seeds, 4.3 for 3), as it must be.
        se = std / n ** 0.5
        significant = bool(abs(mean) > student_t.ppf(0.975, n - 1) * se if se > 0 else mean != 0)
        word = ("better" if mean > 0 else "worse") if significant else "no different, within noise,"
        verdict = (f"{name} vs {alone}: {mean:+.3f} ± {se:.3f} standard error (paired over {n} seeds, t-test "
                   f"at 5%): {word} {'than' if significant else 'from'} the student alone.")
    return {"model": name, "baseline": alone, "accuracy_delta": mean, "accuracy_delta_std": std,
            "seeds": n, "significant": significant, "verdict": verdict}
