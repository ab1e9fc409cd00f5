"""Is the teacher fit to teach? Checked on each seed before any student is distilled from it:
collapse onto one class, no better than the students alone (the best of them named), or a
memorised training set (tables)."""

from __future__ import annotations

from ..data import Splits
from . import members


def memorization(seed: int, data: Splits, teacher, check: dict, near: float = 0.99, gap: float = 0.02) -> str | None:
    """A warning when the teacher is near-perfect on the train split (accuracy ``near`` or more)
    and at least ``gap`` better there than on validation: its outputs on its training rows are
    then the labels again, with little dark knowledge."""
    if data.val is None:
        return None
    logits, labels = members.logits(teacher, data.train, data.num_classes)
    train_accuracy = float((logits.argmax(1) == labels).float().mean())
    check["train_accuracy"] = train_accuracy
    if train_accuracy < near or train_accuracy - check["teacher_accuracy"] < gap:
        return None
    return (f"seed {seed}: the teacher is {train_accuracy:.1%} accurate on the train split against "
            f"{check['teacher_accuracy']:.1%} on validation: it has memorised its training rows, so its outputs "
            f"there are nearly the labels again. Let kdistill fit the teacher (out-of-fold outputs, teacher folds), "
            f"or add synthetic or unlabelled rows, where its outputs carry more than the labels.")


def check_teacher(seed: int, data: Splits, teacher, alone: dict, collapse: float = 0.95) -> dict:
    """Is the teacher fit to teach? On the validation split: has it collapsed onto (nearly) one
    class — at least ``collapse`` of its predictions in one class that holds at least 5 points
    less of the labels — and is it better than the students trained alone (``alone``: name ->
    model; the best of them is named)?"""
    split = data.val if data.val is not None else data.train
    logits, labels = members.logits(teacher, split, data.num_classes)
    pred = logits.argmax(1)
    top = int(pred.mode().values)
    share, truth = float((pred == top).float().mean()), float((labels == top).float().mean())
    accuracy = float((pred == labels).float().mean())
    scores = {name: float((members.logits(m, split, data.num_classes)[0].argmax(1) == labels).float().mean())
              for name, m in alone.items()}
    best_name = max(scores, key=scores.get) if scores else None
    best_alone = scores.get(best_name)
    check = {"seed": seed, "split": "val" if data.val is not None else "train", "teacher_accuracy": accuracy,
             "alone_accuracy": best_alone, "top_class": data.classes[top], "top_share": share,
             "collapsed": share >= collapse and share >= truth + 0.05, "message": None, "cache": []}
    if check["collapsed"]:
        check["message"] = (f"seed {seed}: the teacher predicts class {data.classes[top]!r} for {share:.0%} of the "
                            f"{check['split']} split, which holds {truth:.0%} of it: it has collapsed and would teach "
                            f"only that class, so no student is distilled from it on this seed. Retrain it (e.g. "
                            f"a lower learning rate or more epochs) or load a better one.")
    elif best_alone is not None and accuracy <= best_alone:
        taught = ", ".join(repr(n) for n in students_of(best_name, alone)) if len(alone) > 1 else None
        check["message"] = (f"seed {seed}: the teacher's {check['split']} accuracy ({accuracy:.3f}) is no better than "
                            f"the student alone's ({best_alone:.3f}, {best_name!r}" + (f", of {len(alone)} students "
                            f"alone: {taught}" if taught else "") + "): distilling it can pass on little but its "
                            "mistakes. Train the teacher longer or larger, or use a better one.")
        check["alone_model"] = best_name
    return check


def students_of(best: str, alone: dict) -> list[str]:
    """The students alone, the best first."""
    return [best, *(n for n in alone if n != best)]
