"""The accuracy-vs-budget Pareto front of a shrink search: a table and a plot, with the teacher
and the architectures trained alone as reference points."""

from __future__ import annotations

from ..report.plots import _Display, _pyplot
from .budget import MEASURES


def front(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both the budget figure (smaller) and accuracy (higher)."""
    done = [r for r in rows if r.get("val_accuracy") is not None]
    return sorted((r for r in done if not any(o is not r and o["figure"] <= r["figure"]
                                              and o["val_accuracy"] >= r["val_accuracy"]
                                              and (o["figure"], o["val_accuracy"]) != (r["figure"], r["val_accuracy"])
                                              for o in done)), key=lambda r: r["figure"])


def table_rows(rows: list[dict], measure: str, teacher: dict, references: list[dict]) -> tuple[list, list]:
    """Header and rows: every candidate (on the front or not, stopped early or not), distilled
    and, where it was trained alone too, alone and the difference; then the teacher."""
    on_front = {id(r) for r in front(rows)}
    alone = {r["of"]: r for r in references}
    header = ["model", "kind", f"budget: {MEASURES[measure]}", "parameters", "validation accuracy, distilled",
              "alone", "distillation adds", "epochs", "state", "on the front"]
    body = []
    for r in sorted(rows, key=lambda r: r["figure"]):
        acc = "–" if r.get("val_accuracy") is None else f"{r['val_accuracy']:.4f}"
        ref = alone.get(r["name"])
        solo, adds = ("–", "–") if ref is None or r.get("val_accuracy") is None else (
            f"{ref['val_accuracy']:.4f}", f"{100 * (r['val_accuracy'] - ref['val_accuracy']):+.2f} points")
        body.append([r["name"], r["kind"], _fig(r["figure"], measure), f"{r['params']:,}", acc, solo, adds,
                     str(r.get("epochs", "–")), r["state"], "yes" if id(r) in on_front else ""])
    body.append(["teacher", "reference", _fig(teacher["figure"], measure), f"{teacher['params']:,}",
                 f"{teacher['val_accuracy']:.4f}", "", "", "", "", ""])
    return header, body


def table(rows: list[dict], measure: str, teacher: dict, references: list[dict]) -> str:
    """:func:`table_rows` as Markdown, with what *alone* means."""
    header, body = table_rows(rows, measure, teacher, references)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body]) + "\n" + ALONE_NOTE


ALONE_NOTE = ("\nAlone: the same architecture from new weights, trained on the labels alone for as many epochs "
              "as its distilled twin had (by default those on the front; the chosen one by the final study).\n")


def _fig(value: float, measure: str) -> str:
    return f"{value:,.0f}" if measure in ("params", "macs", "bytes") else f"{value:.4g}"


class ParetoDisplay(_Display):
    """Validation accuracy against the budget measure: candidates (the front joined), the teacher
    and the architectures trained alone (each joined to its distilled twin), the budget as a
    vertical line, the chosen student ringed."""

    def __init__(self, rows: list[dict], measure: str, limit: float, teacher: dict, references: list[dict],
                 chosen: str | None = None):
        self.rows, self.measure, self.limit = rows, measure, limit
        self.teacher, self.references, self.chosen = teacher, references, chosen

    def plot(self, ax=None):
        ax = self._axes(ax, (6.4, 4.6))
        for (kind, marker), color in zip((("pruned", "o"), ("family", "s")), ("tab:blue", "tab:orange")):
            for state, face in (("trained", color), ("stopped early", "none")):
                pts = [r for r in self.rows if r["kind"] == kind and r["state"] == state
                       and r.get("val_accuracy") is not None]
                if pts:  # a candidate stopped early is drawn hollow, at its last epoch's accuracy
                    ax.scatter([r["figure"] for r in pts], [r["val_accuracy"] for r in pts], marker=marker,
                               facecolors=face, edgecolors=color, label=f"{kind} (distilled, {state})", zorder=3)
        best = front(self.rows)
        ax.plot([r["figure"] for r in best], [r["val_accuracy"] for r in best], "-", color="gray", alpha=0.6,
                label="Pareto front")
        ax.scatter([self.teacher["figure"]], [self.teacher["val_accuracy"]], marker="*", s=140, color="black",
                   label="teacher", zorder=4)
        by_name = {r["name"]: r for r in self.rows}
        for i, r in enumerate(self.references):  # each beside its distilled twin, joined by a dotted line
            ax.scatter([r["figure"]], [r["val_accuracy"]], marker="x", s=60, color="tab:green", zorder=4,
                       label="same architecture alone" if i == 0 else None)
            twin = by_name.get(r.get("of"))
            if twin is not None and twin.get("val_accuracy") is not None:
                ax.plot([r["figure"], twin["figure"]], [r["val_accuracy"], twin["val_accuracy"]], ":",
                        color="tab:green", alpha=0.8, zorder=2)
        chosen = [r for r in self.rows if r["name"] == self.chosen]
        if chosen:
            ax.scatter([chosen[0]["figure"]], [chosen[0]["val_accuracy"]], s=260, facecolors="none",
                       edgecolors="red", label="chosen", zorder=5)
        ax.axvline(self.limit, color="red", ls=":", label="budget")
        ax.set_xscale("log")
        from matplotlib import ticker

        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))  # 10k, 20k, 50k: no crowded minor labels
        ax.xaxis.set_major_formatter(ticker.EngFormatter(sep="") if self.measure in ("params", "macs", "bytes")
                                     else ticker.FormatStrFormatter("%g"))  # milliseconds as they are
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(MEASURES[self.measure])
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        _pyplot().tight_layout()
        return self
