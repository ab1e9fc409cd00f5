"""Shared pieces of the feature- and relation-based methods: tap options and connectors."""

from __future__ import annotations

from torch import Tensor, nn

from .base import Method, Step


def tap_pairs(student, teacher, allow_none: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Normalize the ``student=`` / ``teacher=`` options (a name or a list of names) into two
    equally long tuples. With ``allow_none``, both omitted means "use the logits" (empty)."""
    if student is None and teacher is None and allow_none:
        return (), ()
    names = {}
    for field, value in (("student", student), ("teacher", teacher)):
        value = [value] if isinstance(value, str) else value
        if not value or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"{field} must be a module name such as 'features.3' or a non-empty list of "
                             f"names, got {value!r}")
        names[field] = tuple(value)
    if len(names["student"]) != len(names["teacher"]):
        raise ValueError(f"student and teacher must name as many layers each (they are paired in order), got "
                         f"{len(names['student'])} student and {len(names['teacher'])} teacher name(s)")
    return names["student"], names["teacher"]


def connector(feat_s: Tensor, channels_t: int) -> nn.Module:
    """A learnable map from the student's feature to ``channels_t`` channels, on its device:
    a 1x1 convolution for ``(B, C, H, W)`` maps, a linear layer for ``(B, D)`` vectors."""
    if feat_s.ndim == 4:
        layer = nn.Conv2d(feat_s.shape[1], channels_t, kernel_size=1, bias=False)
    elif feat_s.ndim == 2:
        layer = nn.Linear(feat_s.shape[1], channels_t)
    else:
        raise ValueError(f"a connector needs a (batch, channels, height, width) or (batch, features) "
                         f"student feature, got shape {tuple(feat_s.shape)}")
    return layer.to(feat_s.device)


def embeddings(method: Method, step: Step) -> list[tuple[Tensor, Tensor]]:
    """The (student, teacher) tensors a relation method compares: tapped layers, else logits."""
    if not method.student_taps:
        return [(step.logits_s, step.logits_t)]
    return [(step.feats_s[s], step.feats_t[t]) for s, t in zip(method.student_taps, method.teacher_taps)]
