"""What to deploy: the recommendation of a run and its model card.

:func:`recommend` reads a run's results and names one model with the reason, honestly: a
distilled student only when it beats its student alone beyond the seed-to-seed noise (a paired
t-test at 5%, see :mod:`kdistill.study.verdicts`), else the student alone it was compared with
(distilling bought nothing measurable). :func:`card_markdown` is ``model_card.md``: the
recommendation in one sentence, the files to deploy, the numbers behind it, the data per split,
and how the run was made (command, date, wall time, library versions: :func:`environment`).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import shlex
import sys
from pathlib import Path

from .tables import slug

PACKAGES = ("kdistill", "torch", "scikit-learn", "onnxruntime", "onnx", "numpy")


def environment() -> dict:
    """The versions a run was made with (Python and :data:`PACKAGES`; ``None`` if not installed)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if versions["kdistill"] is None:
        from .. import __version__

        versions["kdistill"] = __version__
    return versions


def run_record(started: float, ended: float) -> dict:
    """How the run was made: the command line that ran it, its start (UTC), wall time, versions."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    words = [f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name, *sys.argv[1:]]
    date = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds")
    return {"command": " ".join([words[0], *map(shlex.quote, words[1:])]), "date": date,
            "wall_seconds": round(ended - started, 1), "versions": environment()}


def _by_name(results: dict) -> dict:
    return {m["name"]: m for m in results.get("models", [])}


def recommend(results: dict, folder=None) -> dict | None:
    """The model to deploy and why: ``model``, ``distilled``, ``sentence``, ``weights`` and
    ``onnx`` (paths in the run folder of the first seed's files, when they exist), and the
    figures behind the sentence. ``None`` when the run has no student."""
    models = _by_name(results)
    teacher = results["models"][0] if models else None
    comparisons = [c for c in results.get("comparisons", []) if c["model"] in models and c["baseline"] in models]
    winners = [c for c in comparisons if c.get("significant") and c["accuracy_delta"] > 0]
    if winners:
        best = max(winners, key=lambda c: (models[c["model"]]["accuracy"], -(models[c["model"]]["size_mb"] or 0)))
        name, why = best["model"], (f"{_points(best['accuracy_delta'])} points vs alone, beyond the seed noise over "
                                    f"{best['seeds']} seeds")
    elif comparisons:  # the most accurate student alone; the best distilled one said
        name = max({c["baseline"] for c in comparisons}, key=lambda n: models[n]["accuracy"])
        best = max(comparisons, key=lambda c: c["accuracy_delta"])
        one = best["seeds"] < 2
        why = (f"no distilled student beat its student alone beyond the seed noise (best: {best['model']}, "
               f"{_points(best['accuracy_delta'])} points" + (" on one seed: run 3 seeds or more to tell"
                                                               if one else f" over {best['seeds']} seeds") +
               "), so the student trained without the teacher is as good and simpler")
    else:
        students = results.get("models", [])[1:]
        if not students:
            return None
        name = max(students, key=lambda m: m["accuracy"])["name"]
        why = "the most accurate student (no distilled student to compare)"
    model = models[name]
    figures = _figures(model, teacher)
    seed = results["seeds"][0]
    files = {}
    for key, sub, suffixes in (("weights", "weights", (".safetensors", ".skops")), ("onnx", "onnx", (".onnx",))):
        for suffix in suffixes:
            rel = f"{sub}/{slug(name)}-seed{seed}{suffix}"
            if folder is None or (Path(folder) / rel).is_file():
                files[key] = rel
                break
        files.setdefault(key, None)
    parts = [p for p in (figures["fewer"], figures["faster"], figures["vs_teacher"]) if p]
    sentence = f"deploy {name}: " + ", ".join(parts) + ("; " if parts else "") + why
    sentence += f" (ONNX: {files['onnx']})." if files["onnx"] else " (no ONNX file: see the warnings)."
    return {"model": name, "distilled": bool(winners), "sentence": sentence, **files, **figures}


def _points(delta: float) -> str:
    """An accuracy difference in percentage points, signed (a true minus sign)."""
    return f"{delta * 100:+.1f}".replace("-", "\u2212")


def _times(ratio: float, better: str, worse: str) -> str:
    """``12× faster``, ``1.4× faster``, ``2.0× slower``: whole numbers from 10 on."""
    word, ratio = (better, ratio) if ratio >= 1 else (worse, 1 / ratio)
    return f"{ratio:.0f}× {word}" if ratio >= 10 else f"{ratio:.1f}× {word}"


def _figures(model: dict, teacher: dict | None) -> dict:
    out = {"fewer": None, "faster": None, "vs_teacher": None}
    if teacher is None or teacher["name"] == model["name"]:
        return out
    if model.get("params") and teacher.get("params"):
        out["fewer"] = _times(teacher["params"] / model["params"], "fewer parameters", "more parameters")
    elif model.get("size_mb") and teacher.get("size_mb"):
        out["fewer"] = _times(teacher["size_mb"] / model["size_mb"], "smaller", "larger")
    if model.get("speedup"):
        out["faster"] = _times(model["speedup"], "faster", "slower") + " (ONNX, batch 64)"
    elif model.get("latency_ms") and teacher.get("latency_ms"):
        out["faster"] = _times(teacher["latency_ms"] / model["latency_ms"], "faster", "slower") + " (CPU, per sample)"
    out["vs_teacher"] = f"{_points(model['accuracy'] - teacher['accuracy'])} points vs the teacher"
    return out


def card_markdown(results: dict) -> str:
    """``model_card.md`` of a run (see the module docstring)."""
    rec = results.get("recommendation")
    lines = [f"# Model card: {results.get('title', 'kdistill run')}", ""]
    if rec is None:
        return "\n".join(lines + ["No student to recommend.", ""])
    model = _by_name(results)[rec["model"]]
    std = model.get("std", {}).get("accuracy")
    accuracy = f"{model['accuracy']:.4f}" + (f" ± {std:.4f} over {len(results['seeds'])} seeds" if std else "")
    rows = [("recommendation", rec["sentence"]), ("model", f"{rec['model']} ({model['kind']})"),
            ("files", ", ".join(f"`{f}`" for f in (rec["onnx"], rec["weights"]) if f) or "–"),
            ("test accuracy", accuracy), ("load it", "`kdistill.load(RUN_DIR)`; ONNX Runtime: "
                                                    "`kdistill.load_onnx(RUN_DIR)`"),
            ("data", data_counts(results)), ("seeds", ", ".join(map(str, results["seeds"])))]
    made = results.get("run") or {}
    if made:
        versions = ", ".join(f"{k} {v}" for k, v in made["versions"].items() if v)
        rows += [("command", f"`{made['command']}`"), ("date", made["date"]),
                 ("wall time", f"{made['wall_seconds']:.0f} s"), ("versions", versions)]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def data_counts(results: dict) -> str:
    """The samples of each split, e.g. ``digits: 1,167 train, 270 val, 360 test``."""
    sizes = results.get("split_sizes") or []
    parts = [f"{n:,} {s}" for n, s in zip(sizes, ("train", "val", "test"))]
    if results.get("unlabeled"):
        parts.append(f"{results['unlabeled']:,} unlabelled")
    return f"{results['dataset']}: " + ", ".join(parts)


def card_blocks(results: dict) -> list[tuple]:
    """The top of the report: what to deploy, and how the run was made."""
    rec = results.get("recommendation")
    if rec is None:
        return []
    made = results.get("run")
    out = [("h2", "What to deploy"), ("p", rec["sentence"][0].upper() + rec["sentence"][1:])]
    if made:
        versions = ", ".join(f"{k} {v}" for k, v in made["versions"].items() if v)
        out.append(("p", f"Run by `{made['command']}` on {made['date']} in {made['wall_seconds']:.0f} s; "
                         f"data {data_counts(results)}; {versions}. The model card is model_card.md."))
    return out
