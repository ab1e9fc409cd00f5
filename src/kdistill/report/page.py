"""The report of a run folder: ``report.md`` and a self-contained ``report.html``, from files alone.

Both are rendered from one list of blocks (headings, paragraphs, tables, images, lists), built
from ``results.json`` and whatever else the folder holds: ``data.json`` (class counts),
``curves-*.png``, ``confusion.png``, ``predictions.png``, ``tradeoff.png``, ``calibration.png``,
``onnx/export.json`` (written by ``kdistill export``) and the sweep's ``trials.json``,
``tune.json`` and ``tune-*.png``. The HTML embeds every image, so it can be mailed as one file.

A run folder may come from elsewhere: only regular files directly inside it that really are
PNG images (by their signature) are embedded; links, other files under a ``.png`` name and
anything outside the folder are left out with a warning, and every text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import stat
from pathlib import Path

from ..files import atomic_write
from .card import card_blocks
from .tables import slug, table_rows, trials_table

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#1b1f24;line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
table{display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left}th{background:#f3f5f7}
tr:nth-child(even) td{background:#fafbfc}img{max-width:100%;border:1px solid #e5e7eb;margin:.4em 0}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #e5e7eb}
code{background:#f3f5f7;padding:0 .25em}"""


log = logging.getLogger("kdistill")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _shown(folder: Path, name: str) -> bool:
    """Whether image ``name`` goes into the report: present and acceptable to :func:`png` (which
    warns about a link or a file that is not a PNG; an absent image is silently left out)."""
    return os.path.lexists(Path(folder) / name) and png(folder, name) is not None


def png(folder: Path, name: str) -> bytes | None:
    """The bytes of image ``name`` if it is a regular file directly inside ``folder`` (not a
    link) that starts with the PNG signature; ``None``, with a warning, otherwise."""
    path = Path(folder) / name
    try:
        info = os.lstat(path)
        if Path(name).name != name or not stat.S_ISREG(info.st_mode):
            problem = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file in the run folder"
        else:
            with open(path, "rb") as fh:  # a regular file, not a link: nothing else is opened
                data = fh.read()
            problem = None if data.startswith(PNG_SIGNATURE) else "not a PNG image"
    except OSError as exc:
        problem = f"unreadable ({exc})"
    if problem is None:
        return data
    log.warning("report: left out %s: it is %s", path, problem)
    return None


def blocks(folder) -> list[tuple]:
    """The report's content as ``(kind, ...)`` blocks, read from the run folder ``folder``.

    Raises
    ------
    ValueError
        If the folder has no ``results.json``, or its JSON files are not what kdistill writes.
    """
    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a run folder: it has no results.json")
    try:
        return _blocks(folder, json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"{folder}: its results.json, data.json, trials.json or shrink.json is not what kdistill "
                         f"writes ({type(exc).__name__}: {str(exc)[:200]}); restore the files or run the experiment "
                         f"again") from exc


def _blocks(folder: Path, results: dict) -> list[tuple]:
    out: list[tuple] = [("h1", results["title"]), ("p", _summary(results)), *card_blocks(results)]
    sweep, trials = _sweep_blocks(folder)
    out += sweep  # after a sweep, its answer comes first: it is what a user acts on
    out += _shrink_blocks(folder)
    out += _data_blocks(folder)
    header, rows = table_rows(results)
    out += [("h2", "Comparison on the test split"), ("table", header, rows)]
    out += _table_notes(results)
    out += [("h3", "Did distillation help?"), ("ul", [c["verdict"] for c in results["comparisons"]])]
    out += _teacher_blocks(results)
    if _shown(folder, "tradeoff.png"):
        out += [("h2", "Accuracy against size and latency"), ("img", "tradeoff.png", "accuracy vs size and latency")]
    kept = _kept(results)
    out += [("h2", "Training curves")] + ([("p", kept)] if kept else [])
    out += [("ul", results["still_improving"])] if results.get("still_improving") else []
    out += [("img", p.name, p.stem) for p in _curves(folder, results) if png(folder, p.name) is not None]
    for name, title in (("confusion.png", "Confusion matrices"), ("predictions.png", "Predictions on test images")):
        if _shown(folder, name):
            out += [("h2", title), ("img", name, title)]
    out += _calibration_blocks(folder, results)
    out += deployment_blocks(folder)
    out += _per_class_blocks(results)
    return out + trials


def _curves(folder: Path, results: dict) -> list[Path]:
    """Curve plots in the order of the table (the study names them ``curves-<slug of model>.png``)."""
    order = [slug(m["name"]) for m in results["models"]]
    found = sorted(folder.glob("curves-*.png"))
    return sorted(found, key=lambda p: (order.index(p.stem[7:]) if p.stem[7:] in order else len(order), p.name))


def _summary(results: dict) -> str:
    sizes = results.get("split_sizes") or []
    split = ", ".join(f"{n:,} {s}" for n, s in zip(sizes, ("labelled train", "val", "test")))
    pool = results.get("unlabeled") or 0
    synthetic = results.get("synthetic")
    made = (f", {synthetic['rows']:,} of them synthetic rows ({synthetic['kind']}, {synthetic['size']:g} per labelled "
            f"training row) labelled by the teacher" if synthetic else "")
    extra = (f"; {pool:,} unlabelled training inputs{made}, seen by the distilled students only (their "
             f"distillation terms; label terms see the labelled samples)" if pool else "")
    folds = {c.get("folds") for c in results.get("teacher_checks") or []} - {None, 0}
    extra += (f"; the teacher's outputs on its own training rows are out-of-fold ({max(folds)}-fold "
              f"cross-fitting), elsewhere the full teacher's" if folds else "")
    return (f"Dataset {results['dataset']} ({len(results['classes'])} classes; {split}{extra}); "
            f"seeds {results['seeds']}" + (", mean ± std over seeds." if len(results["seeds"]) > 1 else "."))


def _teacher_blocks(results: dict) -> list[tuple]:
    """Was the teacher fit to teach (per seed), and what else the study warned about."""
    checks = results.get("teacher_checks") or []
    if not checks:
        return []
    rows = [[str(c["seed"]), f"{c['teacher_accuracy']:.3f}",
             "–" if c["alone_accuracy"] is None else f"{c['alone_accuracy']:.3f}",
             f"{c['top_class']} ({c['top_share']:.0%})", "collapsed: no distilled students" if c["collapsed"]
             else ("no better than alone" if c["message"] else "fit to teach")] for c in checks]
    out = [("h3", "Was the teacher fit to teach?"),
           ("p", f"Checked on the {checks[0]['split']} split before any student was distilled from it."),
           ("table", ["seed", "teacher accuracy", "student alone", "most predicted class", "verdict"], rows)]
    entries = [(c["seed"], e) for c in checks for e in c.get("cache", [])]
    if entries:
        out += [("h3", "Teacher-output cache"),
                ("p", "The teacher's outputs are computed once per split (per sample and view) and read back by every "
                      "distilled student; a build time of – means the entry was already there."),
                ("table", ["seed", "rows", "samples × views", "MB", "bytes per sample and view", "build s"],
                 [[str(seed), f"{e['rows']:,}", f"{e['samples']:,} × {e['views']}", f"{e['bytes'] / 1e6:.2f}",
                   str(e["bytes_per_row"]), "–" if e["build_seconds"] is None else f"{e['build_seconds']:.1f}"]
                  for seed, e in entries])]
    warnings = results.get("warnings") or []
    return out + ([("h3", "Warnings"), ("ul", warnings)] if warnings else [])


def _kept(results: dict) -> str:
    """Which epoch each model ends at (the best on validation), per seed."""
    parts = [f"{m['name']} {', '.join(str(s['epoch_kept']) for s in m['per_seed'])} of "
             f"{', '.join(str(s['epochs_trained']) for s in m['per_seed'])}"
             for m in results["models"] if m.get("per_seed") and all("epoch_kept" in s for s in m["per_seed"])]
    return ("Every model ends at its best epoch on validation, whatever the epoch it stopped at (the dotted line "
            "of its curves). Epoch kept of epochs trained, per seed: " + "; ".join(parts) + ".") if parts else ""


def _data_blocks(folder: Path) -> list[tuple]:
    path = folder / "data.json"
    if not path.is_file():
        return []
    info = json.loads(path.read_text())
    counts = info.get("class_counts") or {}
    if not counts:
        return []
    classes = info["classes"]
    rows = [[c, *[str(counts[p].get(c, 0)) for p in counts]] for c in classes]
    out = [("h2", "Data"), ("table", ["class", *counts], rows)]
    notes = []
    if "imbalance" in info:
        notes.append(f"Class imbalance (largest / smallest class): {info['imbalance']:.2f}.")
    if info.get("skipped"):
        notes.append(f"{info['skipped']} unreadable image(s) skipped, e.g. {', '.join(info['skipped_files'][:3])}.")
    return out + [("p", " ".join(notes))] if notes else out


def _table_notes(results: dict) -> list[tuple]:
    notes = []
    if len(results["seeds"]) > 1:
        notes.append("Table cells are mean ± standard deviation over seeds; a verdict's ± is the standard error "
                     "of the paired mean difference.")
    if results.get("split_seed") is not None and len(results["seeds"]) > 1:
        notes.append(f"The teacher was used as loaded, so every seed used the split of seed {results['split_seed']}.")
    if any(m.get("onnx_mb") is None for m in results["models"]):
        notes.append("ONNX columns show – for models kdistill cannot convert to ONNX here (estimators without a "
                     "converter, transformers teachers, callables; see warnings); their latency is measured in "
                     "Python.")
    return [("p", " ".join(notes))] if notes else []


def _calibration_blocks(folder: Path, results: dict) -> list[tuple]:
    models = [m for m in results["models"] if m.get("ece") is not None]
    if not models:
        return []
    rows = [[m["name"], f"{m['ece']:.4f}" + (f" ± {m['std']['ece']:.4f}" if m["std"].get("ece") else "")]
            for m in models]
    out = [("h2", "Calibration"), ("p", "Expected calibration error (ECE, 15 equal-width confidence bins; 0 is "
                                        "perfectly calibrated) on the test split, and each model's reliability "
                                        "diagram (first seed)."), ("table", ["model", "ECE"], rows)]
    return out + ([("img", "calibration.png", "reliability diagrams")] if _shown(folder, "calibration.png") else [])


def deployment_blocks(folder: Path) -> list[tuple]:
    """The ``kdistill export`` table (float32 and int8 ONNX), when the run folder holds one."""
    path = folder / "onnx" / "export.json"
    if not path.is_file():
        return []
    rows = []
    for r in json.loads(path.read_text()):
        for label, row in (("float32", r), ("int8", r.get("int8"))):
            if row is not None:
                rows.append([Path(r.get("weights", row["path"])).stem, label, f"{row['size_mb']:.4f}",
                             *[f"{row['latency'][f'batch{b}']['p50_ms']:.3f}" for b in (1, 64)],
                             "–" if row.get("accuracy") is None else f"{row['accuracy']:.4f}",
                             ", ".join(row.get("quantized", [])) or ("–" if label == "int8" else "")])
    return [("h2", "Deployment (kdistill export)"),
            ("p", "onnxruntime on the CPU, p50 milliseconds per batch; accuracy on the test split."),
            ("table", ["model", "precision", "MB", "ms b=1", "ms b=64", "test accuracy", "int8 layers"], rows)]


def _per_class_blocks(results: dict) -> list[tuple]:
    out = [("h2", "Per-class report (test split, first seed)")]
    for model in results["models"]:
        rows = [[c, f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1-score']:.3f}", str(int(r["support"]))]
                for c, r in model["per_class"].items()]
        out += [("h3", model["name"]), ("table", ["class", "precision", "recall", "F1", "support"], rows)]
    return out


def _sweep_blocks(folder: Path) -> tuple[list[tuple], list[tuple]]:
    """After ``kdistill tune``: the answer, what it bought on test and cost, the re-runs it was
    decided on and the plots of the search; and (for the end of the page) every trial."""
    path, summary = folder / "trials.json", folder / "tune.json"
    if not path.is_file():
        return [], []
    trials = json.loads(path.read_text())
    out = [("h2", "Sweep of recipes")]
    if summary.is_file():  # written once the answer is decided and tested
        out += _decision_blocks(json.loads(summary.read_text()))
    for image, title in (("tune-objective.png", "Objective per trial (dashed: the student alone's best)"),
                         ("tune-space.png", "The search space")):
        if _shown(folder, image):
            out += [("h3", title), ("img", image, title)]
    return out, [("h2", "Every trial of the sweep"), ("table", *trials_table(trials, missing=""))]


def _shrink_blocks(folder: Path) -> list[tuple]:
    """After ``kdistill shrink``: the chosen student, every candidate against the budget (distilled,
    and alone where trained so) and the Pareto plot."""
    path = folder / "shrink.json"
    if not path.is_file():
        return []
    found = json.loads(path.read_text())
    chosen, budget, table = found["chosen"], found["budget"], found["table"]  # the table as shrink shows it
    said = (f"Chosen ({found['choose']}): {chosen['name']}, {chosen['params']:,} parameters, validation accuracy "
            f"{chosen['val_accuracy']:.4f}")
    if chosen.get("test_accuracy") is not None:
        said += (f", test accuracy {chosen['test_accuracy']:.4f} (the same architecture alone "
                 f"{found['alone_test_accuracy']:.4f}; the comparison below is over every seed)")
    out = [("h2", f"Shrink: the student searched within {budget['label']}"), ("p", said + "."),
           ("table", [str(h) for h in table["header"]], [[str(c) for c in row] for row in table["rows"]]),
           ("p", str(table["note"]))]
    if _shown(folder, "pareto.png"):
        out += [("img", "pareto.png", "validation accuracy against the budget")]
    return out


def _decision_blocks(tune: dict) -> list[tuple]:
    """The answer, what it bought on test and cost, and the re-runs it was decided on."""
    out = [("p", tune["answer"])] + _answer_blocks(tune)
    rows = [[c["recipe"], f"trial {c['trial']}", f"{c['sweep_value']:.4f}", ", ".join(f"{v:.4f}" for v in c["values"]),
             f"{c['mean']:.4f} ± {c['std']:.4f}"] for c in tune["decision"]["candidates"]]
    d = tune["decision"]
    return out + [("h3", "How the answer was decided (validation only)"),
            ("p", f"The best candidates were trained again with {d['seeds']} other seeds on the same split. A "
                  f"distilled recipe is the answer only if its mean beats the student alone's by more than "
                  f"{d['margin']:.4f}: a one-sided t-test at {d['level']:.0%} (Bonferroni over the distilled "
                  f"candidates) with the pooled seed-to-seed standard deviation {d['pooled_std']:.4f}."),
            ("table", ["candidate", "sweep trial", "sweep val accuracy", "re-runs", "mean ± std"], rows)]


def _answer_blocks(tune: dict) -> list[tuple]:
    gap = tune["gap_recovered"]
    cost = tune["cost"]
    rows = [[tune["chosen_model"], f"{tune['test_accuracy']:.4f}", f"{tune['alone_test_accuracy']:.4f}",
             f"{tune['teacher_test_accuracy']:.4f}", "–" if gap is None else f"{gap:.0%}",
             f"{cost['sweep_seconds']:.0f} s", str(cost["teacher_passes"]), str(cost["trainings"])]]
    verdicts = [c["verdict"] for c in tune["comparisons"]]
    return [("table", ["answer", "test accuracy", "student alone", "teacher", "teacher–alone gap recovered",
                       "sweep wall time", "teacher passes", "trainings"], rows),
            ("p", f"Test accuracy is the mean over the experiment's seeds, on the sweep's split with the sweep's "
                  f"teacher (never trained again; teacher passes count its passes over a dataset to fill the output "
                  f"cache, plus epochs it ran live). The final evaluation took {cost.get('final_seconds', 0):.0f} s."),
            ("ul", verdicts)]


# --------------------------------------------------------------------------------------------
# Rendering


def to_markdown(content: list[tuple]) -> str:
    """Markdown of ``content``; images are linked by their file name in the run folder."""
    lines: list[str] = []
    for kind, *args in content:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + args[0], ""]
        elif kind == "p":
            lines += [args[0], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in args[0]] + [""]
        elif kind == "img":
            lines += [f"![{args[1]}]({args[0]})", ""]
        elif kind == "table":
            header, rows = args
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return "\n".join(lines)


def to_html(content: list[tuple], folder) -> str:
    """A self-contained HTML page of ``content``: images embedded as base64 data URIs."""
    folder = Path(folder)
    parts: list[str] = []
    for kind, *args in content:
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{html.escape(args[0])}</{kind}>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in args[0]) + "</ul>")
        elif kind == "img":
            data = base64.b64encode(png(folder, args[0]) or b"").decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(args[1])}">')
        elif kind == "table":
            header, rows = args
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    title = html.escape(next((a[0] for k, *a in content if k == "h1"), "kdistill report"))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_report(folder) -> tuple[Path, Path]:
    """(Re)build ``report.md`` and ``report.html`` in the run folder ``folder`` from its files."""
    folder = Path(folder)
    content = blocks(folder)
    md, page = folder / "report.md", folder / "report.html"
    atomic_write(md, to_markdown(content))
    atomic_write(page, to_html(content, folder))
    return md, page
