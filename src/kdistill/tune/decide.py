"""Never worse than alone: the sweep's answer, decided on validation with its noise measured.

A sweep's best trial is the best of many noisy draws, so its validation accuracy flatters it
(the winner's curse). The candidates — the best ``top`` distilled recipes and the best recipe of
the student alone — are therefore trained again with ``repeats`` other seeds (initial weights
and batch order; the split stays the sweep's), and only those re-runs are compared:

- the seed-to-seed standard deviation ``s`` is pooled over every candidate's re-runs
  (``top + 1`` candidates, ``repeats - 1`` degrees of freedom each);
- the best distilled candidate by mean re-run accuracy must beat the student alone's mean by
  more than ``t · s · sqrt(2 / repeats)``, with ``t`` the one-sided 5% quantile of Student's t,
  Bonferroni-corrected for the ``top`` distilled candidates it was picked from;
- otherwise the answer is the student alone.

Where the sweep chooses among several students (``tune.students``), each student's best alone
trial is a candidate too, and the best distilled candidate is compared with the student alone of
*its own* student (the same rule and margin); the answer names that student.

Each finished re-run is recorded as a trial of a third Optuna study (``<name>:repeats``) with
its candidate and seed, so an interrupted sweep runs only the missing ones. The sweep shares the
missing re-runs out among its ``--jobs`` workers itself, rather than through Optuna's queue of
enqueued trials: on SQLite two processes can pop the same queued trial, and the second one's
result then fails to record ("Cannot tell a COMPLETE trial", optuna/optuna#4621).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import t as student_t

from ..metrics import mean_std

LEVEL = 0.05


@dataclass(frozen=True)
class Candidate:
    """A sweep trial to re-run: ``kind`` is ``"distilled"`` or ``"alone"``."""

    kind: str
    number: int
    value: float
    params: dict
    student: str | None = None  # the alone trial's student (a user attribute; distilled ones hold it in params)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.number}"


def candidates(distilled, alone, top: int) -> list[Candidate]:
    """The best ``top`` finished distilled trials (distinct recipes) and the best trial of the
    student alone (of each student, where the sweep chooses among several), best first."""
    out, seen = [], []
    for trial in sorted(_complete(distilled), key=lambda t: (-t.value, t.number)):
        if trial.params not in seen and len(seen) < top:
            seen.append(trial.params)
            out.append(Candidate("distilled", trial.number, trial.value, dict(trial.params)))
    students = []
    for trial in sorted(_complete(alone), key=lambda t: (-t.value, t.number)):
        student = trial.user_attrs.get("student")
        if student not in students:
            students.append(student)
            out.append(Candidate("alone", trial.number, trial.value, dict(trial.params), student))
    return out


def _complete(study):
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def pending(repeats, cands: list[Candidate], seeds: list[int]) -> list[tuple[Candidate, int]]:
    """The (candidate, seed) re-runs the ``repeats`` study holds no finished trial of yet."""
    done = {(t.user_attrs.get("candidate"), t.user_attrs.get("seed")) for t in _complete(repeats)}
    return [(c, seed) for c in cands for seed in seeds if (c.key, seed) not in done]


def decide(repeats, cands: list[Candidate], seeds: list[int], labels: dict[str, str]) -> dict:
    """The sweep's answer from the finished re-runs; ``labels`` names each candidate's recipe."""
    runs = {}
    for t in _complete(repeats):
        key, seed = t.user_attrs.get("candidate"), t.user_attrs.get("seed")
        if seed in seeds:
            runs.setdefault(key, {})[seed] = t.value
    rows = []
    for c in cands:
        values = [runs.get(c.key, {}).get(s) for s in seeds]
        if None in values:
            raise RuntimeError(f"the re-runs of {c.key} are unfinished; run the sweep again to finish them")
        mean, std = mean_std(values)
        student = c.student if c.kind == "alone" else c.params.get("student")
        rows.append({"candidate": c.key, "kind": c.kind, "trial": c.number, "recipe": labels[c.key], "student": student,
                     "sweep_value": c.value, "values": values, "mean": mean, "std": std})
    return _verdict(rows, len(seeds))


def _verdict(rows: list[dict], n: int) -> dict:
    alones = [r for r in rows if r["kind"] == "alone"]
    distilled = [r for r in rows if r["kind"] == "distilled"]
    best = max(distilled, key=lambda r: r["mean"]) if distilled else None
    own = [r for r in alones if best is not None and r.get("student") == best.get("student")]
    alone = own[0] if own else max(alones, key=lambda r: r["mean"])  # the best distilled one's own baseline
    df = len(rows) * (n - 1)
    pooled = math.sqrt(sum(r["std"] ** 2 for r in rows) / len(rows))
    k = max(1, len(distilled))
    margin = float(student_t.ppf(1 - LEVEL / k, df)) * pooled * math.sqrt(2 / n)
    out = {"candidates": rows, "baseline": alone["candidate"], "pooled_std": pooled, "df": df, "margin": margin,
           "seeds": n, "level": LEVEL}
    if not distilled:
        return {**out, "choice": "alone", "chosen": alone["candidate"], "difference": None,
                "sentence": "Train it alone: no distilled recipe finished its trial, so the sweep's answer is the "
                            "student alone."}
    diff = best["mean"] - alone["mean"]
    whose = f" {alone['student']}" if alone.get("student") is not None else ""
    out.update(difference=diff, best_distilled=best["candidate"])
    if diff > margin:
        return {**out, "choice": "distilled", "chosen": best["candidate"],
                "sentence": f"Distil: {best['recipe']} reached {best['mean']:.4f} validation accuracy over {n} "
                            f"re-run seeds against {alone['mean']:.4f} for the student{whose} alone ({diff:+.4f}), "
                            f"more than the validation noise allows by chance (margin {margin:.4f})."}
    return {**out, "choice": "alone", "chosen": alone["candidate"],
            "sentence": f"Train it alone: no distilled recipe beat the student{whose} alone on validation by more "
                        f"than the noise (the best, {best['recipe']}, by {diff:+.4f} over {n} re-run seeds; margin "
                        f"{margin:.4f}), so the sweep's answer is the student{whose} alone."}
