"""The results table: its columns, cells, rows, and its Markdown form."""

from __future__ import annotations

import re

COLUMNS = [("name", "model"), ("params", "params"), ("size_mb", "size MB"), ("hyperparams", "hyperparameters"),
           ("accuracy", "test accuracy"), ("macro_f1", "macro-F1"), ("agreement", "agreement"),
           ("kl_to_teacher", "KL(t‖s)"), ("ece", "ECE"), ("latency_ms", "latency ms/sample"),
           ("onnx_ms_b1", "ONNX ms b=1"), ("onnx_ms_b64", "ONNX ms b=64"), ("onnx_mb", "ONNX MB"),
           ("speedup", "speedup vs teacher (b=64)")]


def _cell(model: dict, key: str) -> str:
    value = model.get(key)
    if value is None:
        return "–"  # a column this run folder predates, or a number this kind of model has not
    if key == "hyperparams":
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if key == "params":
        return f"{value:,}"
    if key == "name":
        return value
    std = model.get("std", {}).get(key)
    if key == "speedup":
        return f"{value:.1f}x ± {std:.1f}" if std and round(std, 1) else f"{value:.1f}x"
    digits = 4 if key in ("latency_ms", "kl_to_teacher", "ece", "onnx_ms_b1", "onnx_ms_b64", "onnx_mb") else 3
    if std and round(std, digits) == 0:  # the same on every seed (a teacher used as loaded), up to rounding
        std = None
    return f"{value:.{digits}f} ± {std:.{digits}f}" if std else f"{value:.{digits}f}"


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table."""
    header = [label for _, label in COLUMNS]
    return header, [[_cell(m, key) for key, _ in COLUMNS] for m in results["models"]]


def results_markdown(results: dict) -> str:
    """The comparison table and the verdicts as Markdown."""
    header, rows = table_rows(results)
    n = len(results["seeds"])
    lines = [f"# {results['title']}", "",
             f"Dataset `{results['dataset']}`, test split, {n} seed(s) {results['seeds']}"
             + (" (mean ± std)." if n > 1 else "."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Did distillation help?", ""] + [f"- {c['verdict']}" for c in results["comparisons"]]
    if results.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in results["warnings"]]
    return "\n".join(lines) + "\n"


def slug(name: str) -> str:
    """A model's name as it appears in file names (``curves-<slug>.png``, ``weights/<slug>-seed0...``)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def param_text(value) -> str:
    """A sweep parameter as a table shows it: floats to 4 significant digits, nothing for ``None``."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trials_table(trials: list[dict], missing: str = "-") -> tuple[list[str], list[list[str]]]:
    """Header and rows of every sweep trial that ran (study, number, state, validation accuracy,
    seed, parameters); ``missing`` stands for a trial without a value (pruned)."""
    trials = [t for t in trials if t["state"] != "FAIL"]
    keys = sorted({k for t in trials for k in t["params"]})
    rows = [[t.get("study", ""), str(t["number"]), t["state"].lower(),
             missing if t["value"] is None else f"{t['value']:.4f}",
             "" if t.get("seed") is None else str(t["seed"]), *[param_text(t["params"].get(k)) for k in keys]]
            for t in trials]
    return ["study", "trial", "state", "val accuracy", "seed", *keys], rows
